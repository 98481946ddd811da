"""The whole mesh's CPU under shop load: `python -m bench.shopload [--src DIR] [--seconds S]`.

Runs `plait up` on a copy of examples/shop (`--detach`, any free gateway port), then
measures, from /proc, the CPU of every process `plait up` started, in groups: plait's
Python processes (`plait up` itself, with its agents and metrics endpoints; the control
plane, with its trace store), the Envoys, and the shop's apps. First idle for
`--seconds`, then for as long under wrk sending checkouts through the gateway
(`GET /checkout?item=book&payment=invoice`, `--connections`, one thread). Reports each
group's cores idle and loaded, and the whole mesh's CPU seconds per 1,000 checkouts.

`--sampling PCT` adds a mesh ConfigMap with that trace sampling (0 turns tracing off).
`--src DIR` runs plait from another checkout's `src` (PYTHONPATH, same interpreter and
dependencies), to put the figures before and after a change side by side in one session.
`plait down` stops everything at the end, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.loadgen import Load, Request, probe, run_wrk
from bench.procs import cpu_seconds, ensure_wrk
from plait.local.statefile import state_path

SHOP = Path(__file__).resolve().parent.parent / "examples" / "shop"
CHECKOUT = "/checkout?item=book&payment=invoice"
GROUPS = ("plait up", "control plane", "envoy", "apps")
PYTHON = ("plait up", "control plane")


def _tree(pid: int) -> list[int]:
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            out += _tree(int(child))
    return out


def _group(pid: int) -> str | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    words = [a.decode(errors="replace") for a in argv if a]
    if not words:
        return None
    if Path(words[0]).name == "envoy":
        return "envoy"
    if len(words) > 3 and words[1] == "-m" and words[2] == "plait":
        return "control plane" if words[3] == "controlplane" else "plait up"
    return "apps"


def _cpu(root_pid: int) -> dict[str, float]:
    totals = dict.fromkeys(GROUPS, 0.0)
    for pid in _tree(root_pid):
        group = _group(pid)
        if group is not None:
            totals[group] += cpu_seconds(pid)
    return totals


def _cores(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    return {g: (after[g] - before[g]) / seconds for g in GROUPS}


async def _plait(env: dict[str, str], *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plait", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"plait {' '.join(args)} failed ({proc.returncode}):\n{text[-3000:]}")
    return text


MESH_CONFIG = """apiVersion: v1
kind: ConfigMap
metadata: {{name: istio, namespace: istio-system}}
data:
  mesh: |
    enableTracing: {enabled}
    defaultConfig:
      tracing:
        sampling: {sampling}
"""


async def measure(
    src: Path | None, seconds: float, connections: int, sampling: float | None = None
) -> dict[str, Any]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="plait-shopload-") as tmp:
        mesh = Path(tmp) / "shop"
        shutil.copytree(SHOP, mesh, ignore=shutil.ignore_patterns(".plait", "__pycache__"))
        if sampling is not None:  # the mesh ConfigMap's tracing settings
            text = MESH_CONFIG.format(enabled=str(sampling > 0).lower(), sampling=sampling)
            (mesh / "bench-mesh-config.yaml").write_text(text)
        try:
            out = await _plait(env, "up", str(mesh), "--detach", "--gateway-port", "0")
            gateway = next(
                line.split("gateway:", 1)[1].strip()
                for line in out.splitlines()
                if line.startswith("gateway:")
            )
            port = int(gateway.rsplit(":", 1)[1].strip("/"))
            pid = int(json.loads(state_path(mesh).read_text())["pid"])  # any version's file
            req = Request(port, CHECKOUT)
            status, body = await probe(req, timeout=10)
            if status != 200:
                raise RuntimeError(f"a checkout got HTTP {status}: {body[:300]}")
            await run_wrk(wrk, req, Load(1, connections, 2), Path(tmp))  # warm-up
            await asyncio.sleep(3)
            c0, t0 = _cpu(pid), time.monotonic()
            await asyncio.sleep(seconds)
            idle = _cores(c0, _cpu(pid), time.monotonic() - t0)
            c0, t0 = _cpu(pid), time.monotonic()
            result = await run_wrk(wrk, req, Load(1, connections, seconds), Path(tmp))
            c1 = _cpu(pid)
            elapsed = time.monotonic() - t0
            loaded = _cores(c0, c1, elapsed)
        finally:
            await _plait(env, "down", str(mesh))
    requests = float(result["requests"])
    mesh_cpu = sum(c1[g] - c0[g] for g in GROUPS)
    return {
        "src": str(src) if src is not None else "this checkout",
        "sampling": "default" if sampling is None else sampling,
        "seconds": seconds,
        "connections": connections,
        "checkouts": requests,
        "checkouts_per_s": result["rps"],
        "non_2xx": result.get("status", 0),
        "idle_cores": idle,
        "loaded_cores": loaded,
        "python_delta_cores": sum(loaded[g] - idle[g] for g in PYTHON),
        "mesh_cpu_s_per_1000": mesh_cpu / requests * 1000,
        "proxies_and_plait_cpu_s_per_1000": (
            sum(c1[g] - c0[g] for g in (*PYTHON, "envoy")) / requests * 1000
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.shopload", description=__doc__)
    parser.add_argument("--src", type=Path, help="run plait from this src directory")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--sampling", type=float, help="trace sampling %% (0: tracing off)")
    args = parser.parse_args()
    result = asyncio.run(measure(args.src, args.seconds, args.connections, args.sampling))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
