"""Two sidecars in transparent mode next to explicit-proxy mode, in one run (root, Linux).

`python -m bench.transparent [--reps 3] [--seconds 10]` runs the same two-workload mesh
twice at once, with `plait up --detach` and `plait up --transparent --detach`:

    explicit     wrk → client sidecar (its outbound HTTP proxy, absolute URL) ═mTLS═►
                 server sidecar → upstream
    transparent  wrk in the client's pod, `http://bench-server:8080/` → (iptables) client
                 sidecar :15001 ═mTLS═► (iptables) server sidecar :15006 → upstream

The upstream of both is the same: an Envoy answering every request itself
(`direct_response`, as `bench.handwritten`'s), started by plait as the server
Deployment's app. Runs alternate between the modes (a warm-up run, then rep 1 of each,
rep 2 of each, …), with one wrk setting. The transparent path adds the two iptables
redirections, the veth/bridge hop between pods and original-destination handling; the
explicit path adds loopback only. Results are printed as JSON and as a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from bench.loadgen import Load, Request, run_wrk

UPSTREAM = r"""
import json, os, subprocess, sys, tempfile
from plait.agent.envoy import find_envoy
port = int(os.environ["PORT"])
config = {"static_resources": {"listeners": [{
    "name": "upstream",
    "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
    "filter_chains": [{"filters": [{
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "upstream",
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
            "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
                "match": {"prefix": "/"},
                "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}]}]}}}]}]}]}}
path = os.path.join(tempfile.mkdtemp(), "upstream.json")
with open(path, "w") as fh:
    json.dump(config, fh)
envoy = str(find_envoy())
os.execv(envoy, [envoy, "-c", path, "--concurrency", "1", "--disable-hot-restart", "-l", "warn"])
"""

MESH = """apiVersion: v1
kind: Service
metadata: {name: bench-server}
spec:
  selector: {app: bench-server}
  ports: [{name: http, port: 8080, appProtocol: http}]
"""

DEPLOYMENT = """---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      serviceAccountName: {name}
      containers: [{{name: app, image: none, command: [python, upstream.py]}}]
"""


def _mesh(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "upstream.py").write_text(UPSTREAM)
    text = MESH + "".join(DEPLOYMENT.format(name=n) for n in ("bench-server", "bench-client"))
    (root / "mesh.yaml").write_text(text)
    return root


def _plait(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plait", *args], capture_output=True, text=True, timeout=180
    )


def _state(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / ".plait" / "state.json").read_text())
    return data


def _client_netns(root: Path) -> str:
    made = json.loads((root / ".plait" / "podnet.json").read_text())["made"]
    return str(
        next(e["name"] for e in made if e["kind"] == "netns" and "bench-client" in e["name"])
    )


def _handshakes(root: Path) -> int:
    """TLS handshakes the server sidecar's listeners completed (its admin stats)."""
    server = next(p for p in _state(root)["proxies"] if p["workload"] == "bench-server")
    url = f"http://{server['admin']}/stats?format=json&filter=^listener\\..*ssl\\.handshake$"
    with urllib.request.urlopen(url, timeout=5) as resp:
        stats = json.loads(resp.read())["stats"]
    return sum(int(s.get("value", 0)) for s in stats if "admin" not in s["name"])


def _row(mode: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    errors = sum(sum(r["errors"].values()) for r in runs)
    return {
        "mode": mode,
        "rps": round(med("rps")),
        "p50_ms": round(med("p50_us") / 1000, 2),
        "p90_ms": round(med("p90_us") / 1000, 2),
        "p99_ms": round(med("p99_us") / 1000, 2),
        "errors": errors,
        "runs": len(runs),
    }


async def measure(reps: int, seconds: float, connections: int) -> list[dict[str, Any]]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="plait-bench-transparent-"))
    explicit, transparent = _mesh(work / "explicit"), _mesh(work / "transparent")
    started: list[Path] = []
    try:
        for root, extra in ((explicit, ()), (transparent, ("--transparent",))):
            up = _plait("up", str(root), "--detach", "--gateway-port", "0", *extra)
            started.append(root)
            if up.returncode != 0:
                raise SystemExit(f"plait up {root} failed:\n{up.stdout}\n{up.stderr}")
        client = next(p for p in _state(explicit)["proxies"] if p["workload"] == "bench-client")
        port = int(client["outbound"].rsplit(":", 1)[1])
        paths = {
            "explicit": (Request(port, "http://bench-server:8080/", "bench-server:8080"), {}),
            "transparent": (
                Request(8080, "/", "bench-server:8080"),
                {
                    "url": "http://bench-server:8080/",
                    "prefix": ("ip", "netns", "exec", _client_netns(transparent)),
                },
            ),
        }
        load = Load(threads=1, connections=connections, duration_s=seconds)
        warm = Load(threads=1, connections=connections, duration_s=2)
        results: dict[str, list[dict[str, Any]]] = {m: [] for m in paths}
        for req, how in paths.values():
            await run_wrk(wrk, req, warm, work, **how)  # type: ignore[arg-type]
        for rep in range(reps):
            order = list(paths) if rep % 2 == 0 else list(reversed(paths))
            for mode in order:
                req, how = paths[mode]
                result = await run_wrk(wrk, req, load, work, **how)  # type: ignore[arg-type]
                print(f"{mode} rep {rep + 1}: {result['rps']:.0f} rps", file=sys.stderr)
                results[mode].append(result)
        rows = [_row(mode, runs) for mode, runs in results.items()]
        for row, root in zip(rows, (explicit, transparent), strict=True):
            row["server_tls_handshakes"] = _handshakes(root)  # mTLS really was on
        return rows
    finally:
        for root in started:
            _plait("down", str(root))
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.transparent", description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("transparent mode needs root (network namespaces, iptables)")
    rows = asyncio.run(measure(args.reps, args.seconds, args.connections))
    print(json.dumps(rows, indent=1))
    print("| mode | requests/s | p50 ms | p90 ms | p99 ms | errors | server TLS handshakes |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['rps']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} "
            f"| {r['errors']} | {r['server_tls_handshakes']} |"
        )


if __name__ == "__main__":
    main()
