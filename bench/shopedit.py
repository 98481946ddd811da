"""The shop, for real: time from a YAML edit in the mesh directory to every proxy ACKing.

Runs `plait up --detach` on a copy of examples/shop (control plane, gateway and 8
sidecars: 9 real Envoys, 8 app processes), then flips the reviews VirtualService between
subsets v1 and v2 `edits` times. Each edit is timed from the file write until the control
plane reports a new generation ACKed by every proxy (its /status, polled every 5 ms).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.dataplane import Progress

SHOP = Path(__file__).resolve().parents[1] / "examples" / "shop"
VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews, subset: {subset}}}
"""


def _plait(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plait", *args], capture_output=True, text=True, timeout=180
    )


def _status(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=2) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


def _synced(status: dict[str, Any], generation: int, proxies: int) -> bool:
    ps = status["proxies"]
    return len(ps) == proxies and all(
        p["connected"] and (p.get("generation") or 0) >= generation for p in ps
    )


async def run(edits: int, progress: Progress) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="plait-bench-shop-") as tmp:
        root = Path(tmp) / "shop"
        shutil.copytree(SHOP, root, ignore=shutil.ignore_patterns(".plait", "__pycache__"))
        up = _plait("up", str(root), "--detach", "--gateway-port", "0")
        try:
            if up.returncode != 0:
                raise RuntimeError(f"plait up failed:\n{up.stdout}\n{up.stderr}")
            state = json.loads((root / ".plait" / "state.json").read_text())
            url, proxies = state["status_url"], len(state["proxies"])
            progress(f"shop up: {proxies} proxies; {edits} edits")
            times: list[float] = []
            for i in range(edits + 1):  # the first edit warms up
                before = _status(url)["controlPlane"]["generation"]
                start = time.perf_counter()
                (root / "virtual-services.yaml").write_text(VS.format(subset=f"v{1 + (i + 1) % 2}"))
                deadline = start + 10
                while True:
                    status = _status(url)
                    generation = status["controlPlane"]["generation"]
                    if generation > before and _synced(status, generation, proxies):
                        break
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"edit {i} not ACKed by every proxy within 10 s")
                    await asyncio.sleep(0.005)
                if i:
                    times.append((time.perf_counter() - start) * 1000)
            progress(f"shop edit → all ACKed: p50 {statistics.median(times):.0f} ms")
            return {"proxies": proxies, "edits_ms": times}
        finally:
            _plait("down", str(root))
