"""Control-plane convergence and memory: the scenarios, each in its own process.

Every scenario (`cpworker.Cell`) runs in a fresh `python -m bench.cpworker` process, so
its memory figures are its own. Three groups:

* the grid: 10 / 100 / 1000 services × 1 / 10 / 100 simulated proxies, change applied
  with `MeshState.publish`;
* realism check: the same changes with 3 real Envoys (plait sidecars under plait's
  EnvoySupervisor) next to 3 simulated proxies, at 10 / 100 / 1000 services;
* the whole path: a YAML file written into a mesh directory watched by plait's `Watcher`
  (watchfiles, 30 ms step), until every proxy has ACKed.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from bench.cpworker import Cell
from bench.procs import spawn_python, terminate
from plait.controlplane import grpctune

Progress = Callable[[str], None]
CELL_TIMEOUT_S = 300.0


def cells(quick: bool) -> list[tuple[str, Cell]]:
    reps = 2 if quick else 5
    sizes = (10, 100) if quick else (10, 100, 1000)
    fanout = (1, 10) if quick else (1, 10, 100)
    out: list[tuple[str, Cell]] = [("grid", Cell(s, p, reps=reps)) for s in sizes for p in fanout]
    for s in (10,) if quick else sizes:
        out.append(("real", Cell(s, 3, client="envoy", reps=reps)))
        out.append(("real", Cell(s, 3, client="sim", reps=reps)))
    for s, p in ((10, 10),) if quick else ((10, 10), (100, 10), (1000, 10), (1000, 100)):
        out.append(("watch", Cell(s, p, mode="watch", reps=reps)))
    return out


async def run_cell(cell: Cell) -> dict[str, Any]:
    proc = await spawn_python(
        "bench.cpworker", json.dumps(asdict(cell)), environ=grpctune.environ()
    )
    try:
        assert proc.stdout is not None
        out = await asyncio.wait_for(proc.stdout.read(), CELL_TIMEOUT_S)
        await proc.wait()
    finally:
        await terminate(proc)
    for line in out.decode().splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return result
    raise RuntimeError(f"{cell.label}: the worker exited with code {proc.returncode} and no result")


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"p50": float(statistics.median(values)), "max": max(values), "n": len(values)}


def summarize(group: str, r: dict[str, Any]) -> dict[str, Any]:
    cell = r["cell"]
    changes = r["route"] + r["service"]
    pre = r.get("build_s") if cell["mode"] == "publish" else r.get("write_to_publish_s")
    return {
        "group": group,
        **cell,
        "route_s": _stats([c["s"] for c in r["route"]]),
        "service_s": _stats([c["s"] for c in r["service"]]),
        "cpu_per_change_s": _stats([c["cpu_s"] for c in changes]),
        "proxies_cpu_per_change_s": _stats([c["proxies_cpu_s"] for c in changes]),
        "before_publish_s": _stats(pre or []),
        "initial_build_s": r["initial_build_s"],
        "initial_sync_s": r["initial_sync_s"],
        "rss_start_mib": r["rss_start_kib"] / 1024,
        "rss_synced_mib": r["rss_synced_kib"] / 1024,
        "rss_end_mib": r["rss_end_kib"] / 1024,
        "peak_rss_mib": r["hwm_kib"] / 1024,
    }


async def run(quick: bool, progress: Progress) -> dict[str, Any]:
    todo = cells(quick)
    raw: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    failures: list[str] = []
    for i, (group, cell) in enumerate(todo, 1):
        progress(f"control plane [{i}/{len(todo)}] {cell.label}")
        try:
            result = await run_cell(cell)
        except (RuntimeError, TimeoutError) as exc:
            progress(f"  failed: {exc}")
            failures.append(f"{cell.label}: {exc}")
            continue
        raw.append({"group": group, **result})
        s = summarize(group, result)
        summary.append(s)
        progress(
            f"  route edit p50 {1e3 * s['route_s']['p50']:.1f} ms, new service p50 "
            f"{1e3 * s['service_s']['p50']:.1f} ms, peak RSS {s['peak_rss_mib']:.0f} MiB"
        )
    return {"cells": raw, "summary": summary, "failures": failures}
