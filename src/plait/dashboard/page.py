"""The dashboard's one page: vanilla JavaScript drawing inline SVG, no external resources
(plait runs on machines without internet). It polls the JSON APIs every 2 s.

Graph layout: each node's column is its longest path from a node nobody calls (the
gateway first), nodes in a column stacked in name order. Every node is a rectangle filled
with `NODE_FILL`; every edge is a `<g data-edge="SOURCE->DESTINATION">` (node ids are
`WORKLOAD.NAMESPACE`), solid when mTLS, dashed otherwise, red when it saw errors.
"""

NODE_FILL = "#2b6cb0"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>plait dashboard</title>
<style>
body { font: 13px system-ui, sans-serif; margin: 0 16px; color: #1a202c; background: #f7fafc; }
h1 { font-size: 18px; margin: 10px 0; } h2 { font-size: 14px; margin: 14px 0 6px; }
section { background: #fff; border: 1px solid #e2e8f0; border-radius: 6px; padding: 8px 12px; margin-bottom: 10px; }
table { border-collapse: collapse; } td, th { padding: 2px 10px 2px 0; text-align: left; white-space: nowrap; }
.ok { color: #2f855a; } .bad { color: #c53030; } .dim { color: #718096; }
.row { display: flex; gap: 10px; } .row > section { flex: 1; min-width: 0; }
#graph text { font-size: 11px; } .node text { fill: #fff; font-weight: 600; }
tr.trace { cursor: pointer; } tr.trace:hover { background: #edf2f7; }
</style></head>
<body>
<h1>plait dashboard <span id="problem" class="bad"></span></h1>
<section><h2>Service graph <span class="dim" id="window"></span></h2><svg id="graph" width="1200" height="200"></svg></section>
<div class="row">
<section><h2>Services</h2><table id="services"></table></section>
<section><h2>Proxies</h2><table id="proxies"></table></section>
</div>
<section><h2>Config errors</h2><div id="errors" class="dim">none</div></section>
<div class="row">
<section><h2>Recent traces</h2><table id="traces"></table></section>
<section><h2>Trace <span id="traceid" class="dim"></span></h2><svg id="waterfall" width="600" height="40"></svg></section>
</div>
<script>
const NODE_FILL = "__NODE_FILL__", NS = "http://www.w3.org/2000/svg";
let chosenTrace = null;
function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function cell(tr, text, cls) { const td = tr.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; }
const pct = v => v === null ? "-" : (100 * v).toFixed(1) + "%";
const ms = v => v === null ? "-" : v.toFixed(1) + "ms";
async function get(path) { const r = await fetch(path); if (!r.ok) throw new Error(path + ": " + r.status + " " + await r.text()); return r.json(); }

function columns(nodes, edges) {
  const col = Object.fromEntries(nodes.map(n => [n.id, 0]));
  for (let i = 0; i < nodes.length; i++)
    for (const e of edges) if (col[e.destination] < col[e.source] + 1 && e.source !== e.destination) col[e.destination] = col[e.source] + 1;
  return col;
}
function drawGraph(g) {
  const svg = document.getElementById("graph"); svg.replaceChildren();
  svg.appendChild(el("defs")).appendChild(el("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto"}))
    .appendChild(el("path", {d: "M0,0 L10,5 L0,10 z", fill: "#4a5568"}));
  const col = columns(g.nodes, g.edges), rows = {}, pos = {}, W = 150, H = 34, labels = [];
  for (const n of g.nodes) { const c = Math.min(col[n.id], 6); rows[c] = (rows[c] || 0) + 1; pos[n.id] = {x: 10 + c * 240, y: 10 + (rows[c] - 1) * 70}; }
  svg.setAttribute("height", 30 + 70 * Math.max(1, ...Object.values(rows)));
  for (const e of g.edges) {
    const a = pos[e.source], b = pos[e.destination];
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const bad = e.errorRate !== null && e.errorRate > 0;
    const grp = svg.appendChild(el("g", {"class": "edge", "data-edge": e.id, "data-mtls": e.mtls}));
    grp.appendChild(el("path", {d: `M${x1},${y1} C${x1 + 40},${y1} ${x2 - 40},${y2} ${x2},${y2}`, fill: "none",
      stroke: bad ? "#c53030" : "#4a5568", "stroke-width": 1.5, "stroke-dasharray": e.mtls === "mutual_tls" ? "" : "5,4", "marker-end": "url(#arrow)"}));
    labels.push([grp, (x1 + x2) / 2, (y1 + y2) / 2, bad, [`${e.rps.toFixed(1)} rps ${pct(e.errorRate)} err`, `p99 ${ms(e.p99Ms)}${e.mtls === "mutual_tls" ? " mTLS" : ""}`]]);
  }
  for (const n of g.nodes) {
    const p = pos[n.id], grp = svg.appendChild(el("g", {"class": "node", "data-node": n.id}));
    grp.appendChild(el("rect", {x: p.x, y: p.y, width: W, height: H, rx: 6, fill: NODE_FILL, stroke: n.kind === "gateway" ? "#1a202c" : "none", "stroke-width": 2}));
    grp.appendChild(el("text", {x: p.x + 8, y: p.y + 21}, n.workload));
  }
  for (const [grp, x, y, bad, lines] of labels)  // over the nodes, with a white halo
    lines.forEach((line, i) => svg.appendChild(el("text", {x: x, y: y + 12 * i - 2, "text-anchor": "middle", "data-label": grp.dataset.edge,
      fill: bad ? "#c53030" : "#2d3748", stroke: "#fff", "stroke-width": 3, "paint-order": "stroke"}, line)));
  document.getElementById("window").textContent = g.windowSeconds ? `last ${g.windowSeconds.toFixed(1)}s` : "";
  document.getElementById("problem").textContent = g.problem || "";
}
function sparkline(history) {
  const svg = el("svg", {width: 100, height: 20}), max = Math.max(1e-9, ...history.map(h => h.rps));
  const pts = history.map((h, i) => `${i * 100 / Math.max(1, history.length - 1)},${19 - 18 * h.rps / max}`).join(" ");
  svg.appendChild(el("polyline", {points: pts, fill: "none", stroke: NODE_FILL, "stroke-width": 1.5}));
  return svg;
}
function drawServices(doc) {
  const t = document.getElementById("services"); t.replaceChildren();
  const h = t.insertRow(); for (const c of ["service", "rps", "success", "p50", "p99", "rps history"]) h.appendChild(document.createElement("th")).textContent = c;
  for (const s of doc.services) {
    const tr = t.insertRow(); tr.dataset.service = s.service + "." + s.namespace;
    cell(tr, s.service + "." + s.namespace); cell(tr, s.rps.toFixed(2));
    cell(tr, pct(s.successRate), s.successRate === null || s.successRate >= 1 ? "ok" : "bad");
    cell(tr, ms(s.p50Ms)); cell(tr, ms(s.p99Ms)); tr.insertCell().appendChild(sparkline(s.history));
  }
}
function drawProxies(doc) {
  const t = document.getElementById("proxies"); t.replaceChildren();
  for (const p of doc.proxies) {
    const tr = t.insertRow(), states = Object.values(p.sync), synced = p.connected && states.every(s => s === "SYNCED");
    cell(tr, p.name); cell(tr, synced ? "SYNCED" : states.join(" "), synced ? "ok" : "bad"); cell(tr, p.nack || "", "bad");
  }
}
function drawErrors(doc) {
  const lines = [...doc.errors.map(e => `${e.file}: ${e.kind} ${e.name}: ${e.message}`),
    ...doc.nacks.map(n => `NACK ${n.proxy}: ${n.message}`), ...doc.keptLastGood.map(k => `serving last good config for ${k}`)];
  if (doc.controlPlane) lines.push(doc.controlPlane);
  const box = document.getElementById("errors"); box.replaceChildren();
  box.className = lines.length ? "bad" : "dim";
  for (const l of lines.length ? lines : ["none"]) box.appendChild(document.createElement("div")).textContent = l;
}
function drawTraces(doc) {
  const t = document.getElementById("traces"); t.replaceChildren();
  for (const tr of doc.traces) {
    const row = t.insertRow(); row.className = "trace"; row.onclick = () => { chosenTrace = tr.traceId; refreshTrace(doc); };
    cell(row, tr.traceId.slice(0, 12)); cell(row, tr.root.service + " " + tr.root.name); cell(row, (tr.durationUs / 1000).toFixed(1) + "ms"); cell(row, tr.spanCount + " spans");
  }
  return refreshTrace(doc);
}
async function refreshTrace(doc) {
  const id = chosenTrace || (doc.traces[0] && doc.traces[0].traceId);
  if (!id) return;
  drawWaterfall(await get("/api/traces/" + id));
}
function drawWaterfall(trace) {
  document.getElementById("traceid").textContent = trace.traceId;
  const svg = document.getElementById("waterfall"); svg.replaceChildren();
  const byId = Object.fromEntries(trace.spans.map(s => [s.spanId, s]));
  const depth = s => { let d = 0; for (let p = byId[s.parentId]; p && d < 50; p = byId[p.parentId]) d++; return d; };
  const t0 = trace.startUs, span = Math.max(1, trace.durationUs), X = 230, W = 360;
  svg.setAttribute("height", 10 + 18 * trace.spans.length);
  trace.spans.forEach((s, i) => {
    const y = 5 + 18 * i, g = svg.appendChild(el("g", {"class": "span", "data-span": s.spanId}));
    g.appendChild(el("text", {x: 4 + 8 * depth(s), y: y + 11, "font-size": 11}, `${s.service} ${s.kind}`));
    g.appendChild(el("rect", {x: X + W * (s.startUs - t0) / span, y: y, height: 13, rx: 2, fill: s.kind === "CLIENT" ? "#90cdf4" : NODE_FILL,
      width: Math.max(2, W * s.durationUs / span)}));
    g.appendChild(el("title", {}, `${s.name} ${(s.durationUs / 1000).toFixed(2)}ms`));
  });
}
async function refresh() {
  const jobs = [["/api/graph", drawGraph], ["/api/services", drawServices], ["/api/proxies", drawProxies],
    ["/api/errors", drawErrors], ["/api/traces?limit=10", drawTraces]];
  await Promise.all(jobs.map(async ([path, draw]) => {
    try { await draw(await get(path)); } catch (err) { document.getElementById("problem").textContent = String(err); }
  }));
}
refresh(); setInterval(refresh, 2000);
</script>
</body></html>
""".replace("__NODE_FILL__", NODE_FILL)
