"""The control plane at scale: `python -m bench.run --only scale --json PATH`.

1,000 services × 1,000 simulated proxies (State of the World or delta ADS, spread over
two client processes: `bench/simgo`, in Go, by default, or `bench.simclient` in Python
with `--sim python`; the same requests and ACKs), every proxy seeing every service,
served by plait's `MeshState` and `AdsServer` in one worker process
(`python -m bench.scale '<Scale JSON>'`, so its memory figures are the control plane's
alone), with the control plane's gRPC settings (`plait.controlplane.grpctune`; the
Python proxies run on gRPC's defaults). The ADS port speaks mutual TLS, as plait's
proxies connect: each simulated proxy presents a workload certificate from the mesh CA,
which runs in the worker as in the control plane (`--plaintext-xds`: plain text). The
proxies stand in for Envoys that would run on machines of their own; here they share the
control plane's two cores, so their CPU (`clients_cpu_s_per_change`) weighs on every
figure, and the Go ones use about half the Python ones' per endpoint change
(`docs/benchmarks.md`). Changes
enter as new snapshots built from the synthetic mesh (`bench.meshgen`), as the pipeline
would publish them (a registry change on the endpoint fast path,
`model.snapshot.with_instances`, as the control plane's builder makes it); the snapshot
build is part of each change's time and CPU.
A few real plait sidecars (`--real-envoys N`, default 3; `bench.scalereal`: each under
its agent, delta ADS as plait's bootstrap asks) connect to the same server, so it serves
`proxies + N` streams; every phase waits for all of them, and each real Envoy's config
dump is checked after every change (the run fails if one diverges).

The JSON object it writes (times in ms from the start of the change, i.e. before the
snapshot is built, to a proxy's ACK of everything the change gave it):

* `services`, `proxies`: the mesh; `clients`: the xDS flavour of the simulated proxies
  (`"sotw"`, `"delta"` (`bench.simdelta`), or `"mixed"`: half the client processes each;
  `python -m bench.run --only scale --clients delta`); `sim`: their implementation,
  `"go"` or `"python"` (`--sim`); `xds_tls`: whether the ADS port spoke mutual TLS
  (`detail.client_certs_s`: the time to issue the simulated proxies' certificates);
  `proxy_grpc`: the Python proxies' gRPC (null with
  `"go"`), `"default"` (gRPC's defaults: `--proxy-grpc default`, the default) or
  `"io-manager"` (the control plane's `grpctune` settings, `--proxy-grpc io-manager`: on
  two cores it leaves the control plane more of the machine, as proxies elsewhere would);
  `proxy_sched`: the simulated proxies' scheduling policy, `"batch"` (SCHED_BATCH, the
  default: their wake-ups do not preempt the control plane, as proxies on other machines
  cannot; `bench.procs.with_sched`) or `"normal"` (`--proxy-sched normal`); the real
  Envoys always run under the normal policy;
* `vs_edit_ack_p99_ms`: a VirtualService weight edit (the outbound route table of every
  proxy changes): p99 over every proxy of every repetition;
* `endpoint_ack_p99_ms`: a replica of one service joins or leaves the registry (its
  endpoints change for every proxy, all of which can reach it): p99 as above;
* `cp_cpu_s_per_change`: the control-plane process's CPU seconds per change (snapshot
  build, translation, pushes, ACKs), mean over both kinds of change;
* `clients_cpu_s_per_change`: the simulated proxies' processes' CPU seconds per change,
  from its start to 0.2 s after the last ACK, mean over both kinds (per change:
  `detail.KIND_clients_cpu_s`);
* `cp_rss_mib`: the control plane's peak resident memory (VmHWM) over the whole run,
  the initial sync and the reconnect storm included (with real Envoys, the mesh CA that
  signs their certificates runs in this process too, as in the control plane);
* `reconnect_all_synced_s`: the control plane restarts (a new `AdsServer` and `MeshState`
  on the same port, cold caches) and every proxy, re-connecting with a 0-0.5 s jittered
  backoff, has ACKed its full configuration;
* `scoped_edit_ack_p99_ms`, `scoped_untouched_proxies`, `scoped_non_dependent_pushes`,
  `scoped_pushes_per_edit`: with Sidecar scoping (each proxy reaches 10 services), an
  edit of one service's VirtualService: p99 to its dependents, how many other proxies
  received nothing, how many received something (0 is right) and the responses written
  per edit (`bench/scoped.py` says how each is measured); the real Envoys count among
  the proxies (real Envoy r depends on the service of scoped edit r+1);
* `real_envoys`: how many real Envoys ran (0: the `real_*` keys below are null);
* `real_vs_edit_ack_p99_ms`, `real_vs_edit_ack_max_ms`, `real_endpoint_ack_p99_ms`,
  `real_endpoint_ack_max_ms`: the same changes as above, from the start of the change to
  each real Envoy's ACK (the server's time of its stream's latest ACK of a type the change
  moved), over every real Envoy of every repetition (the simulated keys above include
  the real Envoys too: they are over all `proxies + N`);
* `real_reconnect_synced_s`: in the reconnect storm, from the new server's start to the
  last real Envoy's last ACK of its full configuration (Envoy's own reconnect backoff
  included);
* `real_scoped_edit_ack_max_ms`: the scoped edits' real dependents, start of the edit
  to their ACK, worst; `real_scoped_non_dependent_pushes`: the most real Envoys outside
  an edit's scope that were sent anything (0 is right);
* `detail`: every measured value per kind of change (p50, p99, max, n), the initial sync,
  the snapshot build times (`KIND_build_s`) and translation times (`KIND_translate_s`,
  `MeshState.publish`) per change, what the translation built for the last change of each
  kind (`KIND_built`: hosts, own resources, route tables, configs assembled, configs
  whose endpoint sets were swapped in, proxies translated again on the config fast path
  or -1), and the peak RSS after each phase
  (`hwm_after_PHASE_mib`: the phase that raised `cp_rss_mib` shows), the RSS when a
  fresh server starts (`rss_before_reconnect_mib`, `rss_before_scoped_mib`: the old one
  dropped and collected) and once synced (`rss_synced_mib`, `rss_scoped_synced_mib`);
  `real`: the real Envoys' figures per phase (`PHASE_synced_s` per Envoy: from its
  stream's start, or from the server's start after a restart, and then
  `PHASE_connected_s`, when each Envoy's new stream opened; `KIND_ack_s`: p50, p99, max, n;
  `KIND_cpu_s`: the CPU seconds of the Envoys and their agents per change; `checks`:
  config dumps read and checked; `envoy_peak_rss_mib`: each Envoy's VmHWM at the end).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench import meshid, scoped
from bench.meshgen import SnapshotBuilder, SyntheticMesh, fake_ports, instance_of, sidecar
from bench.procs import (
    HOST,
    PROXY_ENVIRON,
    cpu_seconds,
    memory_kib,
    proxy_environ,
    spawn_python,
    terminate,
    with_sched,
)
from bench.scalereal import Check, RealEnvoys, endpoint, vs_weight
from bench.simbuild import simgo
from bench.simclient import proxies_to_json
from plait.agent.process import spawn
from plait.controlplane import gctune, grpctune
from plait.controlplane.state import MeshState
from plait.model.labels import Labels
from plait.model.snapshot import MeshSnapshot
from plait.xds.server import AdsServer

Progress = Callable[[str], None]
WORKER_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Scale:
    services: int = 1000
    proxies: int = 1000
    reps: int = 5
    client_procs: int = 2
    timeout_s: float = 120.0
    clients: str = "sotw"  # the simulated proxies' ADS: "sotw", "delta", or "mixed" (half each)
    real_envoys: int = 3  # real plait sidecars next to the simulated proxies (`bench.scalereal`)
    proxy_grpc: str = "default"  # the Python simulated proxies' gRPC: "default" or "io-manager"
    sim: str = "go"  # the simulated proxies: "go" (`bench/simgo`) or "python" (`bench.simclient`)
    xds_tls: bool = True  # mutual TLS on the ADS port, as plait's proxies connect (False: plain)
    proxy_sched: str = "batch"  # the simulated proxies' scheduling policy (`procs.with_sched`)

    @property
    def connected(self) -> int:
        return self.proxies + self.real_envoys


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": _quantile(values, 0.5),
        "p99": _quantile(values, 0.99),
        "max": max(values),
        "n": len(values),
    }


class AckTimes:
    """An `XdsObserver` noting when each proxy finished ACKing a change (monotonic)."""

    def __init__(self) -> None:
        self.at: list[float] = []

    def pushed(self, type_name: str, size: int, seconds: float | None) -> None:
        pass

    def converged(self, seconds: float) -> None:
        self.at.append(time.monotonic())


class Worker:
    def __init__(self, scale: Scale, run_dir: Path) -> None:
        self.scale = scale
        self.run_dir = run_dir
        self.mesh = SyntheticMesh.make(scale.services, scale.proxies, fake_ports())
        self.real = RealEnvoys(scale.real_envoys, scale.services, run_dir)
        self.registry = list(self.mesh.registry) + self.real.instances
        self.builder = SnapshotBuilder(self.mesh.files, self.registry)
        self.acks = AckTimes()
        self.detail: dict[str, Any] = {}
        self.cpu: list[float] = []
        self.clients_cpu: list[float] = []  # the simulated proxies' CPU per change
        self.clients: list[asyncio.subprocess.Process] = []
        # the mesh CA, in this process as in the control plane's: the real Envoys'
        # certificates, and with `xds_tls` the ADS port's and the simulated proxies'
        self.identity = meshid.issuer(run_dir / "state")
        self.security = meshid.security(self.identity)
        self.tls = self.security.xds_tls(meshid.AdmitAll()) if scale.xds_tls else None
        self.certs: dict[str, meshid.CertFiles] | None = None

    async def run(self) -> dict[str, Any]:
        s = self.scale
        t = time.perf_counter()
        state = MeshState(self.builder.snapshot())
        self.detail["initial_build_s"] = time.perf_counter() - t
        gctune.tune()  # as the control-plane process does
        await self.security.start()
        if self.tls is not None:
            t = time.perf_counter()
            certs_dir = self.run_dir / "certs"
            self.certs = meshid.proxy_certs(self.security.ca, self.mesh.proxies, certs_dir)
            self.detail["client_certs_s"] = time.perf_counter() - t
        server = self.server = AdsServer(state, observer=self.acks)
        port = await server.start(HOST, 0, tls=self.tls)
        try:
            await self._start_clients(port)
            t = time.perf_counter()
            await self.real.start(port, self.security.server.url, self.tls is not None)
            await self._synced(server, state.generation, "initial sync")
            self.detail["initial_sync_s"] = time.perf_counter() - t
            await self.real.synced(server, "initial")
            self.detail["rss_synced_mib"] = memory_kib()["VmRSS"] / 1024
            self._peak("initial_sync")
            vs = await self._changes(server, state, "vs_edit", self._vs_edit, self._vs_check)
            self._peak("vs_edit")
            ep = await self._changes(
                server, state, "endpoint", self._endpoint_change, self._endpoint_check
            )
            self._peak("endpoint")
            snapshot = state.snapshot
            del server, state  # a restart is a new process: nothing of the old one stays
            reconnect_s = await self._restart(port, snapshot)
            self._peak("reconnect")
            ids = [p.id for p in self.mesh.proxies]
            scoped_result = await scoped.run(self, port, s.services, ids, s.reps, self.real)
            self._peak("scoped")
        finally:
            for proc in self.clients:
                await terminate(proc, grace=15)
            await self.real.stop()
            await self.server.stop(0.5)
            await self.security.stop()
            self.identity.cleanup()
        mem = memory_kib()
        return {
            "services": s.services,
            "proxies": s.proxies,
            "clients": s.clients,
            "sim": s.sim,
            "xds_tls": s.xds_tls,
            "proxy_sched": s.proxy_sched,
            "proxy_grpc": s.proxy_grpc if s.sim == "python" else None,
            "vs_edit_ack_p99_ms": 1e3 * vs["p99"],
            "endpoint_ack_p99_ms": 1e3 * ep["p99"],
            "cp_cpu_s_per_change": sum(self.cpu) / len(self.cpu),
            "clients_cpu_s_per_change": sum(self.clients_cpu) / len(self.clients_cpu),
            "cp_rss_mib": mem["VmHWM"] / 1024,
            "reconnect_all_synced_s": reconnect_s,
            **scoped_result,
            **self.real.result(),
            "detail": {
                **self.detail,
                "real": self.real.details(),
                "rss_end_mib": mem["VmRSS"] / 1024,
                "scale": asdict(s),
            },
        }

    def _peak(self, phase: str) -> None:
        """The peak RSS so far (VmHWM only grows: the phase that raised it shows)."""
        self.detail[f"hwm_after_{phase}_mib"] = memory_kib()["VmHWM"] / 1024

    async def _start_clients(self, port: int, *extra: str) -> None:
        n, clients = self.scale.client_procs, self.scale.clients
        binary = simgo() if self.scale.sim == "go" else None  # (built by `run` already)
        for i in range(n):
            path = self.run_dir / f"proxies-{i}.json"
            path.write_text(proxies_to_json(self.mesh.proxies[i::n], self.certs))
            delta = clients == "delta" or (clients == "mixed" and i % 2 == 1)
            args = [str(port), str(path), "--reconnect", *(["--delta"] if delta else []), *extra]
            if binary is not None:
                proc = await spawn(
                    with_sched([binary, *args], self.scale.proxy_sched),
                    stdout=asyncio.subprocess.DEVNULL,
                    env=dict(PROXY_ENVIRON),
                )
            else:
                proc = await spawn_python(
                    "bench.simclient",
                    *args,
                    stdout=asyncio.subprocess.DEVNULL,
                    environ=proxy_environ(self.scale.proxy_grpc),
                    sched=self.scale.proxy_sched,
                )
            self.clients.append(proc)

    def _clients_cpu(self) -> float:
        return sum(cpu_seconds(proc.pid) for proc in self.clients)

    async def _synced(self, server: AdsServer, generation: int, what: str) -> None:
        s = self.scale
        if not await server.wait_synced(generation, s.timeout_s, min_proxies=s.connected):
            synced = sum(1 for p in server.statuses() if (p.synced_generation or 0) >= generation)
            raise RuntimeError(
                f"{what}: {synced} of {s.connected} proxies synced within {s.timeout_s:g}s"
            )

    # -- changes -------------------------------------------------------------------------

    def _vs_edit(self, i: int) -> Any:
        name, text = SyntheticMesh.routing_file(80 - (i % 8) * 10)
        return self.builder.update(name, text)

    def _endpoint_change(self, i: int) -> Any:
        """Add a replica of svc-0001 on even steps, remove it on odd ones."""
        if i % 2 == 0:
            svc = SyntheticMesh.name(1 % self.scale.services)
            labels = Labels.of({"app": svc, "version": "v1"})
            port = 60000 + 3 * i
            extra = sidecar(f"{svc}-extra{i}", svc, labels, (port, port + 1, port + 2))
            self.registry.append(instance_of(extra))
        else:
            self.registry.pop()
        return self.builder.set_registry(self.registry)

    @staticmethod
    def _vs_check(i: int) -> list[Check]:
        return [vs_weight(80 - (i % 8) * 10)]

    @staticmethod
    def _endpoint_check(i: int) -> list[Check]:
        """Change i added the port 60000 + 3i (even i) or removed the one of i - 1."""
        return [endpoint(60000 + 3 * (i - i % 2), present=i % 2 == 0)]

    async def _changes(
        self,
        server: AdsServer,
        state: MeshState,
        kind: str,
        make: Callable[[int], Any],
        expect: Callable[[int], list[Check]],
    ) -> dict[str, float]:
        """`reps` changes (after one warm-up): per-proxy ACK latencies, CPU per change;
        the real Envoys' ACK times and their configs checked against `expect(i)`."""
        latencies: list[float] = []
        for i in range(self.scale.reps + 1):
            self.acks.at.clear()
            real_before, real_cpu0 = self.real.mark(server), self.real.cpu()
            clients_cpu0 = self._clients_cpu()
            cpu0, t0, t0_wall = _cpu(), time.monotonic(), time.time()
            snapshot = make(i)
            built = time.monotonic()
            gen = await state.publish(snapshot)
            translated = time.monotonic()
            await self._synced(server, gen, f"{kind} {i}")
            cpu = _cpu() - cpu0
            await self.real.changed(server, kind, real_before, t0_wall, expect(i), real_cpu0, i > 0)
            if i == 0:
                continue  # the warm-up
            self.cpu.append(cpu)
            self.detail.setdefault(f"{kind}_build_s", []).append(built - t0)
            self.detail.setdefault(f"{kind}_translate_s", []).append(translated - built)
            self.detail[f"{kind}_built"] = asdict(state.built) | {
                "endpoint_hosts": sorted(state.built.endpoint_hosts)
            }
            latencies += [at - t0 for at in self.acks.at]
            await asyncio.sleep(0.2)  # the proxies' last ACK-side work
            self.clients_cpu.append(self._clients_cpu() - clients_cpu0)
        stats = self.detail[kind] = _stats(latencies)
        self.detail[f"{kind}_cpu_s"] = self.cpu[-self.scale.reps :]
        self.detail[f"{kind}_clients_cpu_s"] = self.clients_cpu[-self.scale.reps :]
        return stats

    async def _restart(self, port: int, snapshot: MeshSnapshot) -> float:
        """Stop the server, start a fresh one (cold caches) on the same port, and time
        until every proxy has reconnected and ACKed everything."""
        await self.server.stop(0.5)
        fresh = MeshState(snapshot)
        server = self.server = AdsServer(fresh)  # the old one is garbage now
        gc.collect()
        self.detail["rss_before_reconnect_mib"] = memory_kib()["VmRSS"] / 1024
        t0, t0_wall = time.perf_counter(), time.time()
        await server.start(HOST, port, tls=self.tls)
        await self._synced(server, fresh.generation, "reconnect")
        seconds = time.perf_counter() - t0
        await self.real.synced(server, "reconnect", since=t0_wall)
        await self.real.check(server, self._vs_check(self.scale.reps), self.real.ids)
        await self.real.check(server, self._endpoint_check(self.scale.reps), self.real.ids)
        return seconds


async def _worker(scale: Scale) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    with tempfile.TemporaryDirectory(prefix="plait-bench-scale-") as tmp:
        return await Worker(scale, Path(tmp)).run()


async def run(
    quick: bool,
    progress: Progress,
    clients: str = "sotw",
    real_envoys: int = 3,
    proxy_grpc: str = "default",
    sim: str = "go",
    xds_tls: bool = True,
    proxy_sched: str = "batch",
) -> dict[str, Any]:
    """The scale scenario in its own process (`quick`: 100 × 100)."""
    scale = Scale(
        clients=clients,
        real_envoys=real_envoys,
        proxy_grpc=proxy_grpc,
        sim=sim,
        xds_tls=xds_tls,
        proxy_sched=proxy_sched,
    )
    if quick:
        scale = replace(scale, services=100, proxies=100, reps=3)
    if sim == "go":
        progress("scale: the Go simulated proxies (bench/simgo), built once")
        await asyncio.to_thread(simgo)
    progress(
        f"scale: {scale.services} services × {scale.proxies} simulated proxies ({clients},"
        f" {sim}, {proxy_sched}) + {real_envoys} real Envoys, xDS over"
        f" {'mTLS' if xds_tls else 'plain text'}"
    )
    proc = await spawn_python("bench.scale", json.dumps(asdict(scale)), environ=grpctune.environ())
    try:
        assert proc.stdout is not None
        out = await asyncio.wait_for(proc.stdout.read(), WORKER_TIMEOUT_S)
        await proc.wait()
    finally:
        await terminate(proc)
    for line in out.decode().splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            progress(
                f"  VS edit p99 {result['vs_edit_ack_p99_ms']:.0f} ms, endpoint p99 "
                f"{result['endpoint_ack_p99_ms']:.0f} ms, CPU/change "
                f"{result['cp_cpu_s_per_change']:.2f} s, RSS {result['cp_rss_mib']:.0f} MiB, "
                f"reconnect {result['reconnect_all_synced_s']:.1f} s, simulated proxies' "
                f"CPU/change {result['clients_cpu_s_per_change']:.2f} s"
            )
            if result["real_envoys"]:
                progress(
                    f"  real Envoys: VS edit max {result['real_vs_edit_ack_max_ms']:.0f} ms, "
                    f"endpoint max {result['real_endpoint_ack_max_ms']:.0f} ms, reconnect "
                    f"{result['real_reconnect_synced_s']:.1f} s"
                )
            return result
    raise RuntimeError(f"scale worker exited with code {proc.returncode} and no result")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="scale %(levelname)s %(name)s: %(message)s")
    scale = Scale(**json.loads(sys.argv[1]))
    try:
        result = asyncio.run(_worker(scale))
    except asyncio.CancelledError:
        raise SystemExit(130) from None
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
