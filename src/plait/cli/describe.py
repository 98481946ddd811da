"""`plait describe SERVICE DIR`: load DIR as `plait analyze` does, describe one service
(`plait.describe`), add the live replicas and their sync state when a mesh runs, print."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from plait.analysis import vet
from plait.cli import exitcodes
from plait.describe import RouteQuery, UnknownCaller, describe, find_service, service_names
from plait.errors import MeshStateError
from plait.model.snapshot import build_snapshot
from plait.sources.directory import DirectorySource


def live_replicas(directory: Path, workloads: set[str]) -> list[dict[str, Any]] | None:
    """The running sidecars of `workloads` (`namespace/name`) from `plait status`; None
    when no mesh runs for the directory."""
    from plait.local.status import collect_status

    try:
        data = collect_status(directory)
    except MeshStateError:
        return None
    return [
        {k: p.get(k) for k in ("name", "workload", "namespace", "inbound", "sync", "nack")}
        for p in data["proxies"]
        if f"{p.get('namespace')}/{p.get('workload')}" in workloads
    ]


def run(directory: Path, name: str, query: RouteQuery | None, live: bool) -> tuple[int, Any]:
    """(exit code, the description or an error text)."""
    view = DirectorySource(directory, check=vet).load()
    snapshot = build_snapshot(view.resources, (), 0, view.messages)
    service = find_service(snapshot, name)
    if service is None:
        known = ", ".join(service_names(snapshot)) or "none"
        return exitcodes.USAGE, f"no service '{name}' in {directory}; services: {known}"
    try:
        data = describe(snapshot, view.resources, service, query)
    except UnknownCaller as exc:
        return exitcodes.USAGE, f"--from: {exc}"
    if live:
        names = {f"{w['namespace']}/{w['name']}" for w in data["service"]["workloads"]}
        data["live"] = live_replicas(directory, names)
    return exitcodes.OK, data


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    return table


def _kv(d: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in d.items()) or "-"


def render(console: Console, data: dict[str, Any]) -> None:
    s = data["service"]
    console.print(f"[bold]Service[/] {s['hostname']}   selector: {_kv(s['selector'])}")
    ports = ", ".join(f"{p['port']}/{p['protocol']} ({p['name'] or '-'})" for p in s["ports"])
    console.print(f"  ports: {ports}")
    console.print(f"  identities: {', '.join(s['identities']) or '-'}")
    wl = _table("Workloads", "workload", "labels", "service account", "replicas", "sidecar")
    for w in s["workloads"]:
        wl.add_row(
            f"{w['namespace']}/{w['name']}",
            _kv(w["labels"]),
            w["serviceAccount"],
            str(w["replicas"]),
            "yes" if w["sidecar"] else "no",
        )
    console.print(wl)
    vs = _table("VirtualServices", "name", "gateways", "role", "http rules")
    for v in data["virtualServices"]:
        role = v["role"] + (" (sidecars use it)" if v["activeForMesh"] else "")
        rules = "\n".join(f"[{i}] {r}" for i, r in enumerate(v["rules"])) or "-"
        vs.add_row(v["name"], ",".join(v["gateways"]) or "-", role, escape(rules))
    console.print(vs if data["virtualServices"] else "VirtualServices: none (default route)")
    dr = data["destinationRules"]
    names = ", ".join(r["name"] for r in dr["rules"]) or "none"
    cl = _table(f"DestinationRules: {names}", "cluster", "subset labels", "tls", "policy")
    for c in dr["clusters"]:
        cl.add_row(c["cluster"], _kv(c["labels"]), c["tls"], escape(c["summary"]))
    console.print(cl)
    sec = _table("Security", "workload", "mTLS (per port)", "authorization", "jwt", "rate limits")
    for w in data["security"]:
        pa = w["peerAuthentication"]["ports"] or {"*": w["peerAuthentication"]["workload"]}
        modes = "\n".join(f"{p}: {d['mode']} ({d['policy'] or 'default'})" for p, d in pa.items())
        authz = "\n".join(f"{a}: {', '.join(i)}" for a, i in w["authorization"].items() if i)
        limits = "\n".join(f"{r['rateLimit']} {r['requests']}/{r['per']}" for r in w["rateLimits"])
        sec.add_row(
            w["workload"],
            modes,
            authz or "-",
            ", ".join(w["requestAuthentication"]) or "-",
            limits or "-",
        )
    console.print(sec)
    if data.get("route"):
        _render_route(console, data["route"])
    if data.get("live") is not None:
        lv = _table("Live replicas", "proxy", "inbound", "sync", "nack")
        for p in data["live"]:
            sync = " ".join(f"{k}={v}" for k, v in (p["sync"] or {}).items())
            lv.add_row(p["name"], str(p["inbound"]), sync, escape(p["nack"] or "-"))
        console.print(lv)
    for m in data["messages"]:
        style = "red" if m["severity"] == "error" else "yellow"
        where = f"{m['file']}[{m['document']}] {m['kind']}/{m['name']} {m['path']}"
        console.print(f"[{style}]{m['severity']}[/] {escape(where)}: {escape(m['message'])}")


def _render_route(console: Console, r: dict[str, Any]) -> None:
    req = r["request"]
    headers = " ".join(f"{k}={v}" for k, v in req["headers"].items())
    caller = r["caller"] or "a caller in the service's namespace"
    console.print(
        f"[bold]Route[/] {req['method']} {req['path']} {headers} from {caller} "
        "(evaluated on the caller's Envoy route table)"
    )
    if r.get("note"):
        console.print(f"  {r['note']}")
    elif r["route"] is None:
        console.print(f"  no route of {r['virtualHost']} matches: Envoy answers 404")
    elif r["clusters"]:
        console.print(f"  route {r['route']}")
        for c in r["clusters"]:
            console.print(f"  → {c['cluster']}  weight {c['weight']}")
    elif r["redirect"]:
        console.print(f"  route {r['route']}: redirect to {r['redirect']}")
    else:
        console.print(f"  route {r['route']}: direct response {r['directResponse']}")
