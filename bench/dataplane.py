"""Data-plane latency and throughput: direct, through plait sidecars, through hand-written Envoys.

One run, one load generator setting, five paths to the same upstream:

    direct      wrk → upstream
    plait-1     wrk → server sidecar (inbound listener) → upstream
    plait-2     wrk → client sidecar (outbound HTTP proxy) → server sidecar → upstream
    hand-1      wrk → hand-written Envoy → upstream
    hand-2      wrk → hand-written Envoy → hand-written Envoy → upstream

The plait sidecars are what `plait up` runs: plait's control plane (MeshState + AdsServer,
in this process) serves them configuration translated from YAML (a Service and a
Deployment for `bench-server` and `bench-client`, the replicas from plait's own plan,
registry entries for both), and plait's EnvoySupervisor runs them with plait's
bootstrap. The server sidecar's app port is the upstream. The hand-written pair is the
floor (see `handwritten.py`). Every Envoy runs with `--concurrency 1`, as plait runs its
sidecars.

Runs are interleaved (rep 1 of every path, then rep 2, …) so that slow drift of a shared
machine spreads over all paths; each measured run follows a short warm-up run. Besides
wrk's figures, the CPU time every Envoy used during the run is read from /proc, so each
path also gets the proxies' CPU cost per request, a figure less sensitive to the load
generator competing for the same cores.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import handwritten
from bench.loadgen import Load, Request, probe, run_wrk
from bench.meshgen import instance_of, load, service_yaml, sidecar
from bench.procs import (
    HOST,
    StaticEnvoy,
    children_cpu,
    cpu_seconds,
    ensure_wrk,
    machine_cpu,
    self_cpu,
)
from plait.agent import BootstrapOptions, EnvoySupervisor, SupervisorOptions, config_dump
from plait.api import Loaded
from plait.controlplane.state import MeshState
from plait.local.plan import make_plan
from plait.local.ports import free_port
from plait.model.proxy import Proxy
from plait.model.snapshot import build_snapshot
from plait.xds.server import AdsServer

SERVICE = "bench-server"
AUTHORITY = f"{SERVICE}:8080"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class DataplaneOptions:
    reps: int = 7
    duration_s: float = 4.0
    warmup_s: float = 1.0
    threads: int = 1
    connections: tuple[int, ...] = (1, 32)
    quiet_cores: float = 0.25  # more background CPU than this during a run: run it again
    retries: int = 2


@dataclass(frozen=True)
class Scenario:
    """One path from wrk to the upstream."""

    key: str
    title: str
    request: Request
    proxies: tuple[str, ...]  # the Envoys between wrk and the upstream, in order


@dataclass
class Rig:
    """Everything running: the upstream, plait's control plane and sidecars, the floor."""

    run_dir: Path
    envoys: dict[str, StaticEnvoy | EnvoySupervisor] = field(default_factory=dict)  # by name
    statics: list[StaticEnvoy] = field(default_factory=list)
    sidecars: list[EnvoySupervisor] = field(default_factory=list)
    server: AdsServer | None = None
    scenarios: list[Scenario] = field(default_factory=list)
    dumps: dict[str, Any] = field(default_factory=dict)

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.sidecars), return_exceptions=True)
        await asyncio.gather(*(s.stop() for s in self.statics), return_exceptions=True)
        if self.server is not None:
            await self.server.stop(0.5)


def _mesh_proxies(resources: list[Loaded], upstream_port: int) -> list[Proxy]:
    """The two replicas plait's plan makes from the YAML, as sidecars with host ports."""
    plan = make_plan(resources, build_snapshot(resources, [], 0))
    out = []
    for spec in plan.replicas:
        app = upstream_port if spec.workload == SERVICE else free_port()
        out.append(
            sidecar(spec.instance, spec.workload, spec.labels, (free_port(), app, free_port()))
        )
    return out


async def _start_static(rig: Rig, name: str, config: dict[str, Any], port: int) -> None:
    envoy = StaticEnvoy(name, config, port, rig.run_dir)
    rig.statics.append(envoy)
    await envoy.start()
    rig.envoys[name] = envoy


async def start_rig(run_dir: Path, progress: Progress) -> Rig:
    rig = Rig(run_dir)
    try:
        await _build(rig, progress)
    except BaseException:
        await rig.stop()
        raise
    return rig


async def _start_plait(rig: Rig, upstream_port: int) -> tuple[Proxy, Proxy]:
    """plait's control plane (here, in-process) and the two sidecars; (server, client)."""
    resources = load({"bench.yaml": service_yaml(SERVICE) + "---\n" + service_yaml("bench-client")})
    proxies = _mesh_proxies(resources, upstream_port)
    state = MeshState(build_snapshot(resources, [instance_of(p) for p in proxies], 1))
    rig.server = AdsServer(state)
    xds_port = await rig.server.start(HOST, 0)
    for p in proxies:
        sup = EnvoySupervisor(
            BootstrapOptions(proxy=p, admin_port=0, xds_host=HOST, xds_port=xds_port),
            rig.run_dir,
            name=p.workload,
            options=SupervisorOptions(log_level="warning"),
        )
        rig.sidecars.append(sup)
        rig.envoys[f"{p.workload} sidecar"] = sup
    await asyncio.gather(*(s.start() for s in rig.sidecars))
    await asyncio.gather(*(s.wait_ready(30) for s in rig.sidecars))
    if not await rig.server.wait_synced(state.generation, 30, min_proxies=len(proxies)):
        raise RuntimeError("the sidecars did not ACK their configuration within 30s")
    for sup in rig.sidecars:
        assert sup.admin_url is not None
        rig.dumps[sup.name] = await config_dump(sup.admin_url, include_eds=True)
    server = next(p for p in proxies if p.workload == SERVICE)
    client = next(p for p in proxies if p.workload != SERVICE)
    return server, client


async def _build(rig: Rig, progress: Progress) -> None:
    up = free_port()
    await _start_static(rig, "upstream", handwritten.upstream(up), up)
    progress("data plane: plait control plane and two sidecars")
    server, client = await _start_plait(rig, up)
    assert server.inbound_port is not None and client.outbound_port is not None
    progress("data plane: hand-written two-hop Envoys")
    hw_server, hw_client = free_port(), free_port()
    await _start_static(
        rig, "hand server", handwritten.forwarder(hw_server, "*", up, absolute_url=False), hw_server
    )
    await _start_static(
        rig,
        "hand client",
        handwritten.forwarder(hw_client, AUTHORITY, hw_server, absolute_url=True),
        hw_client,
    )
    absolute = f"http://{AUTHORITY}/"
    rig.scenarios = [
        Scenario("direct", "direct", Request(up), ()),
        Scenario("plait-1", "one plait sidecar", Request(server.inbound_port, "/", AUTHORITY),
                 ("bench-server sidecar",)),
        Scenario("hand-1", "one hand-written Envoy", Request(hw_server, "/", AUTHORITY),
                 ("hand server",)),
        Scenario("plait-2", "two plait sidecars", Request(client.outbound_port, absolute, AUTHORITY),
                 ("bench-client sidecar", "bench-server sidecar")),
        Scenario("hand-2", "two hand-written Envoys", Request(hw_client, absolute, AUTHORITY),
                 ("hand client", "hand server")),
    ]  # fmt: skip
    for sc in rig.scenarios:
        status, body = await probe(sc.request)
        if status != 200 or body != handwritten.UPSTREAM_BODY:
            raise RuntimeError(f"{sc.key}: a test request got HTTP {status} {body[:200]!r}")


def _cpu(rig: Rig) -> dict[str, float]:
    out = {}
    for name, envoy in rig.envoys.items():
        pid = envoy.pid
        out[name] = cpu_seconds(pid) if pid is not None else 0.0
    return out


@dataclass(frozen=True)
class _Clock:
    """CPU counters read just before and just after a measured run."""

    envoys: dict[str, float]
    machine: dict[str, float]
    wrk: float  # reaped children: the wrk runs so far
    bench: float  # this process: the control plane and the harness

    @classmethod
    def read(cls, rig: Rig) -> _Clock:
        return cls(_cpu(rig), machine_cpu(), children_cpu(), self_cpu())


def _usage(before: _Clock, after: _Clock, seconds: float) -> dict[str, Any]:
    """CPU used during a run: per Envoy, by wrk, and by everything else on the machine."""
    envoys = {k: after.envoys[k] - before.envoys[k] for k in after.envoys}
    wrk = after.wrk - before.wrk
    bench = after.bench - before.bench
    busy = after.machine["busy"] - before.machine["busy"]
    return {
        "envoys_s": envoys,
        "wrk_s": wrk,
        "bench_s": bench,
        "other_cores": max(0.0, busy - sum(envoys.values()) - wrk - bench) / seconds,
        "irq_cores": (after.machine["irq"] - before.machine["irq"]) / seconds,
        "steal_cores": (after.machine["steal"] - before.machine["steal"]) / seconds,
    }


async def _measure_one(
    rig: Rig, path: Scenario, conns: int, opts: DataplaneOptions, wrk: str
) -> dict[str, Any]:
    await run_wrk(wrk, path.request, Load(opts.threads, conns, opts.warmup_s), rig.run_dir)
    before = _Clock.read(rig)
    result = await run_wrk(
        wrk, path.request, Load(opts.threads, conns, opts.duration_s), rig.run_dir
    )
    usage = _usage(before, _Clock.read(rig), result["duration_us"] / 1e6)
    return {"path": path.key, "connections": conns, "wrk": result, "cpu": usage}


def _run_order(scenarios: list[Scenario], rep: int) -> list[Scenario]:
    """Each plait path runs right next to its hand-written twin (so that the paired ratio
    sees the same machine state); which of the two goes first alternates per rep."""
    out = list(scenarios)
    if rep % 2:
        for i in range(1, len(out) - 1, 2):
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


async def measure(
    rig: Rig, opts: DataplaneOptions, wrk: str, progress: Progress
) -> list[dict[str, Any]]:
    """Every (rep, connections, path) run; a run during which other processes on the
    machine used more than `opts.quiet_cores` is repeated (at most `opts.retries` times,
    within a budget of a quarter of the runs), keeping the quietest attempt."""
    runs: list[dict[str, Any]] = []
    total = opts.reps * len(opts.connections) * len(rig.scenarios)
    budget = total // 4
    for rep in range(opts.reps):
        for conns in opts.connections:
            for path in _run_order(rig.scenarios, rep):
                attempts = [await _measure_one(rig, path, conns, opts, wrk)]
                while (
                    attempts[-1]["cpu"]["other_cores"] > opts.quiet_cores
                    and len(attempts) <= opts.retries
                    and budget > 0
                ):
                    budget -= 1
                    attempts.append(await _measure_one(rig, path, conns, opts, wrk))
                run = min(attempts, key=lambda r: r["cpu"]["other_cores"])
                run.update(rep=rep, attempts=len(attempts))
                runs.append(run)
                result, usage = run["wrk"], run["cpu"]
                errors = sum(result["errors"].values())
                progress(
                    f"data plane [{len(runs)}/{total}] rep {rep + 1}, {conns} conn, {path.title}: "
                    f"{result['rps']:.0f} req/s, p50 {result['p50_us']} µs"
                    + (f" (after {len(attempts)} attempts)" if len(attempts) > 1 else "")
                    + (
                        f", other load {usage['other_cores']:.2f} cores"
                        if usage["other_cores"] > 0.1
                        else ""
                    )
                    + (f", {errors} ERRORS {result['errors']}" if errors else "")
                )
    return runs


def _proxy_cpu_per_request(run: dict[str, Any], proxies: tuple[str, ...]) -> float:
    """CPU µs the Envoys on the path (not the upstream) spent per request."""
    cpu = sum(run["cpu"]["envoys_s"][n] for n in proxies)
    return 1e6 * float(cpu) / max(1, int(run["wrk"]["requests"]))


def summarize(paths: list[Scenario], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median over repetitions per (connections, path)."""
    out = []
    conns_levels = sorted({r["connections"] for r in runs})
    for conns in conns_levels:
        for path in paths:
            rs = [r for r in runs if r["path"] == path.key and r["connections"] == conns]
            if not rs:
                continue
            rps = [r["wrk"]["rps"] for r in rs]
            other = [r["cpu"]["other_cores"] for r in rs]
            out.append({
                "path": path.key,
                "title": path.title,
                "connections": conns,
                "reps": len(rs),
                "rps": statistics.median(rps),
                "rps_min": min(rps),
                "rps_max": max(rps),
                "p50_us": statistics.median(r["wrk"]["p50_us"] for r in rs),
                "p90_us": statistics.median(r["wrk"]["p90_us"] for r in rs),
                "p99_us": statistics.median(r["wrk"]["p99_us"] for r in rs),
                "proxy_cpu_us_per_req": statistics.median(
                    _proxy_cpu_per_request(r, path.proxies) for r in rs
                ),
                "wrk_cores": statistics.median(
                    r["cpu"]["wrk_s"] / (r["wrk"]["duration_us"] / 1e6) for r in rs
                ),
                "other_cores": statistics.median(other),
                "other_cores_max": max(other),
                "attempts": sum(r["attempts"] for r in rs),
                "errors": sum(sum(r["wrk"]["errors"].values()) for r in rs),
            })  # fmt: skip
    return out


RATIOS = [
    ("one sidecar / direct", "plait-1", "direct"),
    ("two sidecars / direct", "plait-2", "direct"),
    ("plait one hop / hand-written one hop", "plait-1", "hand-1"),
    ("plait two hops / hand-written two hops", "plait-2", "hand-2"),
]


def ratios(paths: list[Scenario], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired ratios: for each rep, path A's figure over path B's from the same rep; the
    median over reps, with the range."""
    proxies = {p.key: p.proxies for p in paths}
    by = {(r["path"], r["connections"], r["rep"]): r for r in runs}
    metrics: dict[str, Callable[[dict[str, Any], str], float]] = {
        "p50": lambda r, _k: float(r["wrk"]["p50_us"]),
        "p99": lambda r, _k: float(r["wrk"]["p99_us"]),
        "rps": lambda r, _k: float(r["wrk"]["rps"]),
        "cpu": lambda r, k: _proxy_cpu_per_request(r, proxies[k]),
    }
    out = []
    for title, a, b in RATIOS:
        for conns in sorted({r["connections"] for r in runs}):
            reps = sorted(rep for (k, c, rep) in by if k == a and c == conns and (b, c, rep) in by)
            if not reps:
                continue
            entry: dict[str, Any] = {"ratio": title, "a": a, "b": b, "connections": conns}
            for name, f in metrics.items():
                if name == "cpu" and b == "direct":
                    continue  # the direct path has no proxy
                values = [f(by[a, conns, rep], a) / f(by[b, conns, rep], b) for rep in reps]
                entry[name] = {
                    "median": statistics.median(values),
                    "min": min(values),
                    "max": max(values),
                }
            out.append(entry)
    return out


async def run(opts: DataplaneOptions, out_dir: Path, progress: Progress) -> dict[str, Any]:
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="plait-bench-dp-") as tmp:
        rig = await start_rig(Path(tmp), progress)
        try:
            for name, dump in rig.dumps.items():
                (out_dir / f"config_dump.{name}.json").write_text(json.dumps(dump, indent=1))
            runs = await measure(rig, opts, wrk, progress)
        finally:
            await rig.stop()
        return {
            "options": {**opts.__dict__, "connections": list(opts.connections)},
            "paths": [
                {"key": p.key, "title": p.title, "proxies": list(p.proxies)} for p in rig.scenarios
            ],
            "runs": runs,
            "summary": summarize(rig.scenarios, runs),
            "ratios": ratios(rig.scenarios, runs),
        }
