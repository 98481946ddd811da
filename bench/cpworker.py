"""One convergence scenario in its own process: plait's control plane, its proxies, changes.

`python -m bench.cpworker '<Cell as JSON>'` prints one line `RESULT {json}` on stdout.
A process per scenario keeps the memory figures (VmRSS, VmHWM of this process: the
control plane only; the proxies run in a child process) from accumulating across
scenarios.

The control plane is plait's own: `MeshState` (the ConfigSource) and `AdsServer`, fed
either with snapshots built here from the synthetic mesh's YAML (`publish` mode: the
change enters at `MeshState.publish`) or by plait's sources and pipeline over a temporary
mesh directory (`watch` mode: the change enters as a file write). Each change is timed until
`AdsServer.wait_synced` says every proxy has ACKed the new generation. Two changes
alternate: a VirtualService weight edit (the outbound route table changes: one RDS
response per proxy) and a new service (a cluster, its endpoints and a virtual host:
CDS, EDS and RDS responses per proxy). The first change is a warm-up and not recorded.

Simulated proxies speak plain-text xDS (they only exercise the control plane). Real
Envoys run as `plait up` runs them, under agents (`bench.envoyclients`): this process
then also hosts the mesh CA, as plait's control plane does, and the ADS port speaks
mTLS and admits each Envoy only as the workload its certificate names.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import meshid
from bench.meshgen import PortSource, SnapshotBuilder, SyntheticMesh, fake_ports, load
from bench.procs import HOST, PROXY_ENVIRON, memory_kib, spawn_python, terminate, tree_cpu_seconds
from bench.simclient import proxies_to_json
from plait.aio import Stopped, until
from plait.controlplane.builder import SnapshotBuilder as ControlPlaneBuild
from plait.controlplane.main import local_sources
from plait.controlplane.pipeline import Pipeline
from plait.controlplane.security import MeshSecurity
from plait.controlplane.state import MeshState
from plait.local.identity import LocalIdentity
from plait.local.ports import free_port
from plait.sources.workloads import write_registry
from plait.xds.server import AdsServer


@dataclass(frozen=True)
class Cell:
    services: int
    proxies: int
    client: str = "sim"  # "sim" (simulated ADS clients) or "envoy" (real Envoys)
    mode: str = "publish"  # "publish" (MeshState.publish) or "watch" (file write)
    reps: int = 5
    timeout_s: float = 120.0

    @property
    def label(self) -> str:
        return f"{self.services} svc × {self.proxies} {self.client} proxies, {self.mode}"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _real_ports() -> tuple[int, int, int]:
    return free_port(), free_port(), free_port()


class Changes:
    """The sequence of changes: route edit, new service, route edit, …"""

    def __init__(self) -> None:
        self.n = 0

    def next(self) -> tuple[str, str, str]:
        """(kind, file name, new text)."""
        self.n += 1
        k = self.n // 2
        if self.n % 2:
            return ("route", *SyntheticMesh.routing_file(80 - (k % 8) * 10))  # from 90/10
        return ("service", *SyntheticMesh.extra_file(k - 1))


class Worker:
    def __init__(self, cell: Cell, run_dir: Path) -> None:
        self.cell = cell
        self.run_dir = run_dir
        ports: PortSource = fake_ports() if cell.client == "sim" else _real_ports
        self.mesh = SyntheticMesh.make(cell.services, cell.proxies, ports, extras=cell.reps + 2)
        self.result: dict[str, Any] = {"cell": asdict(cell), "route": [], "service": []}
        self.clients_pid: int | None = None

    def _clients_cpu(self) -> float:
        return tree_cpu_seconds(self.clients_pid) if self.clients_pid is not None else 0.0

    async def run(self) -> dict[str, Any]:
        self.result["rss_start_kib"] = memory_kib()["VmRSS"]
        if self.cell.mode == "publish":
            await self._run_publish()
        else:
            await self._run_watch()
        mem = memory_kib()
        self.result["rss_end_kib"], self.result["hwm_kib"] = mem["VmRSS"], mem["VmHWM"]
        return self.result

    # -- the two modes ---------------------------------------------------------------

    async def _run_publish(self) -> None:
        t = time.perf_counter()
        builder = SnapshotBuilder(self.mesh.files, self.mesh.registry)
        state = MeshState(builder.snapshot())
        self.result["initial_build_s"] = time.perf_counter() - t
        builds: list[float] = []
        async with self._serving(state) as server:
            changes = Changes()
            for i in range(1 + 2 * self.cell.reps):
                kind, name, text = changes.next()
                t0 = time.perf_counter()
                snap = builder.update(name, text)
                builds.append(time.perf_counter() - t0)
                cpu0, client0, t0 = _cpu(), self._clients_cpu(), time.perf_counter()
                gen = await state.publish(snap)
                ok = await server.wait_synced(
                    gen, self.cell.timeout_s, min_proxies=self.cell.proxies
                )
                seconds = time.perf_counter() - t0
                cpu = (_cpu() - cpu0, self._clients_cpu() - client0)
                self._record(i, kind, ok, seconds, cpu, server)
                await asyncio.sleep(0.05)  # let the proxies' last ACK-side work finish
        self.result["build_s"] = builds[1:]

    async def _run_watch(self) -> None:
        root = self.run_dir / "mesh"
        self.mesh.write(root)
        write_registry(root, self.mesh.registry)
        t = time.perf_counter()
        pipeline = Pipeline(local_sources(root), ControlPlaneBuild())
        stop = asyncio.Event()
        reload: list[float] = []
        try:
            async with asyncio.TaskGroup() as tg:
                state = MeshState(await pipeline.start(tg))
                self.result["initial_build_s"] = time.perf_counter() - t
                tg.create_task(pipeline.run(state.publish))
                tg.create_task(until(stop))
                await self._watch_changes(root, state, reload)
                stop.set()
        except* Stopped:
            pass
        self.result["write_to_publish_s"] = reload[1:]

    async def _watch_changes(self, root: Path, state: MeshState, reload: list[float]) -> None:
        async with self._serving(state) as server:
            changes = Changes()
            for i in range(1 + 2 * self.cell.reps):
                kind, name, text = changes.next()
                gen0 = state.generation
                cpu0, client0, t0 = _cpu(), self._clients_cpu(), time.perf_counter()
                (root / name).write_text(text)
                gen = await asyncio.wait_for(state.wait_for_generation(gen0), self.cell.timeout_s)
                reload.append(time.perf_counter() - t0)
                ok = await server.wait_synced(
                    gen, self.cell.timeout_s, min_proxies=self.cell.proxies
                )
                seconds = time.perf_counter() - t0
                cpu = (_cpu() - cpu0, self._clients_cpu() - client0)
                self._record(i, kind, ok, seconds, cpu, server)
                await asyncio.sleep(0.1)  # the next write must not join this batch

    # -- shared parts ------------------------------------------------------------------

    def _record(
        self,
        i: int,
        kind: str,
        ok: bool,
        seconds: float,
        cpu: tuple[float, float],
        server: AdsServer,
    ) -> None:
        """One change: wall time, and CPU time of the control plane and of the proxies'
        process tree (which keeps working after the last ACK, so its figure is a floor)."""
        if not ok:
            gen = server.source.generation
            synced = sum(1 for s in server.statuses() if (s.synced_generation or 0) >= gen)
            raise RuntimeError(
                f"{self.cell.label}: change {i} ({kind}) not ACKed by every proxy within "
                f"{self.cell.timeout_s:g}s ({synced} of {self.cell.proxies} proxies synced)"
            )
        if i > 0:  # change 0 is the warm-up
            self.result[kind].append({"s": seconds, "cpu_s": cpu[0], "proxies_cpu_s": cpu[1]})

    def _serving(self, state: MeshState) -> _Serving:
        return _Serving(self, state)


class _Serving:
    """`async with`: the ADS server and the proxies, synced at the initial generation."""

    def __init__(self, worker: Worker, state: MeshState) -> None:
        self.worker = worker
        self.state = state
        self.server = AdsServer(state)
        self.clients: asyncio.subprocess.Process | None = None
        self.security: MeshSecurity | None = None
        self.identity: LocalIdentity | None = None  # the token issuer's files, made here

    async def _start_server(self) -> int:
        """Plain-text xDS for simulated proxies; for real Envoys, the mesh CA and mTLS."""
        w = self.worker
        if w.cell.client == "sim":
            return await self.server.start(HOST, 0)
        self.identity = meshid.issuer(w.run_dir / "state")
        self.security = meshid.security(self.identity)
        await self.security.start()
        config = load(w.mesh.files)  # the Deployments the xDS server admits proxies as
        return await self.server.start(HOST, 0, tls=meshid.xds_tls(self.security, lambda: config))

    async def __aenter__(self) -> AdsServer:
        w, cell = self.worker, self.worker.cell
        try:
            port = await self._start_server()
            path = w.run_dir / "proxies.json"
            path.write_text(proxies_to_json(w.mesh.proxies))
            args = [str(port), str(path)]
            if self.security is None:
                args = ["bench.simclient", *args]
            else:
                args = ["bench.envoyclients", *args, str(w.run_dir), self.security.server.url]
            self.clients = await spawn_python(
                *args, stdout=asyncio.subprocess.DEVNULL, environ=PROXY_ENVIRON
            )
            w.clients_pid = self.clients.pid
            t0 = time.perf_counter()
            ok = await self.server.wait_synced(
                self.state.generation, cell.timeout_s, min_proxies=cell.proxies
            )
            if not ok:
                raise RuntimeError(
                    f"{cell.label}: the proxies did not sync within {cell.timeout_s:g}s"
                )
            first = min(s.connected_since for s in self.server.statuses())
            w.result["initial_sync_s"] = time.time() - first.timestamp()
            w.result["connect_and_sync_s"] = time.perf_counter() - t0
            w.result["rss_synced_kib"] = memory_kib()["VmRSS"]
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self.server

    async def __aexit__(self, *_: object) -> None:
        if self.clients is not None:
            await terminate(self.clients, grace=15)
        await self.server.stop(0.5)
        if self.security is not None:
            await self.security.stop()
        if self.identity is not None:
            self.identity.cleanup()  # its (unused) SDS socket directory


async def _main(cell: Cell) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):  # stop the proxies and clean up first
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    with tempfile.TemporaryDirectory(prefix="plait-bench-cp-") as tmp:
        return await Worker(cell, Path(tmp)).run()


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="cpworker %(levelname)s %(name)s: %(message)s"
    )
    cell = Cell(**json.loads(sys.argv[1]))
    try:
        result = asyncio.run(_main(cell))
    except asyncio.CancelledError:
        raise SystemExit(130) from None
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
