"""The control-plane process: watch the mesh directory, rebuild snapshots, serve xDS.

Concurrency: one event loop. The watcher task reloads config/registry on file changes
(watchfiles groups bursts: it yields once no change has arrived for `step` ms, at most
`debounce` ms after the first), builds a snapshot and publishes it; the xDS server's
streams pick the new generation up and push only what changed. Failure: a bad file is
reported in status and the last good config stays in force (see sources.directory).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from plait.analysis import analyze, vet
from plait.api import Loaded
from plait.controlplane.debug import DebugServer
from plait.controlplane.metrics import ControlPlaneMetrics
from plait.controlplane.security import MeshSecurity, SecurityOptions, workload_check
from plait.controlplane.state import MeshState
from plait.controlplane.tracestore import TraceStore
from plait.errors import ConfigMessage
from plait.model.meshsettings import with_local_collector
from plait.model.snapshot import MeshSnapshot, build_snapshot
from plait.sources.directory import DirectorySource, is_config_path
from plait.sources.workloads import STATE_DIR, WORKLOADS_FILE, read_registry
from plait.xds.server import AdsServer

log = logging.getLogger(__name__)

DEBOUNCE_STEP_MS = 30
DEBOUNCE_MAX_MS = 300


@dataclass(frozen=True)
class ControlPlaneOptions:
    root: Path
    host: str = "127.0.0.1"
    xds_port: int = 15010
    debug_port: int = 15014
    security: SecurityOptions | None = None  # None: plaintext xDS and no CA (tests, bench)


def _is_registry(path: str) -> bool:
    p = Path(path)
    return p.name == WORKLOADS_FILE and p.parent.name == STATE_DIR


class Watcher:
    """Owns the directory source and builds snapshots; one instance per control plane.

    Semantic validation (`plait.analysis`) happens here, before anything is translated: a
    resource with an error is dropped as each file loads (its last good version, if any,
    stays in force, as for a YAML error), and the cross-resource warnings are computed once
    per config change (they do not depend on the registry).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.source = DirectorySource(root, check=vet)
        self.version = 0
        self.kept: tuple[str, ...] = ()
        self.internal_error: str | None = None
        # the status server's address, where its trace store takes spans (tracestore.py)
        self.local_collector: tuple[str, int] | None = None
        self._view = self.source.load()
        self._instances = read_registry(root)
        self._warnings: tuple[ConfigMessage, ...] | None = None  # analysis of self._view

    def config(self) -> tuple[Loaded, ...]:
        """The resources in force (for the xDS admission check)."""
        return tuple(self._view.resources)

    @property
    def instance_names(self) -> list[str]:
        """Registered replicas (from .plait/workloads.json) in the current snapshot."""
        return sorted(i.name for i in self._instances)

    def snapshot(self) -> MeshSnapshot:
        self.version += 1
        self.kept = self._view.kept
        snapshot = build_snapshot(
            self._view.resources, self._instances, self.version, self._view.messages
        )
        if self._warnings is None:
            self._warnings = tuple(analyze(snapshot, self._view.resources))
        mesh = snapshot.mesh
        if self.local_collector is not None:
            mesh = with_local_collector(mesh, *self.local_collector)
        messages = (*snapshot.messages, *self._warnings)
        return dataclasses.replace(snapshot, messages=messages, mesh=mesh)

    def apply(self, changed: set[str]) -> bool:
        config = any(is_config_path(p, self.root) for p in changed)
        registry = any(_is_registry(p) for p in changed)
        if config:
            self._view = self.source.load()
            self._warnings = None
        if registry:
            self._instances = read_registry(self.root)
        return config or registry

    def _rebuild(self, changed: set[str]) -> MeshSnapshot | None:
        return self.snapshot() if self.apply(changed) else None

    async def run(self, state: MeshState, stop: asyncio.Event) -> None:
        async for changes in watchfiles.awatch(
            self.root,
            step=DEBOUNCE_STEP_MS,
            debounce=DEBOUNCE_MAX_MS,
            stop_event=stop,
            watch_filter=lambda _c, p: is_config_path(p, self.root) or _is_registry(p),
        ):
            try:
                # Parsing and indexing a large mesh takes a while: off the event loop, so
                # ADS streams and /status keep answering. Only this task touches the watcher.
                snapshot = await asyncio.to_thread(self._rebuild, {p for _, p in changes})
                if snapshot is None:
                    continue
            except Exception as exc:  # noqa: BLE001 - a bug here must not stop the mesh
                # Keep serving the last snapshot; status shows why nothing changed.
                log.exception("cannot build a snapshot; keeping the last one")
                self.internal_error = f"{type(exc).__name__}: {exc}"
                continue
            self.internal_error = None
            gen = await state.publish(snapshot)
            log.info("published generation %d (%d file changes)", gen, len(changes))


async def run(opts: ControlPlaneOptions) -> None:
    watcher = Watcher(opts.root)
    if opts.debug_port:
        watcher.local_collector = (opts.host, opts.debug_port)
    state = MeshState(watcher.snapshot())
    metrics = ControlPlaneMetrics()
    server = AdsServer(state, observer=metrics.xds)
    security = None
    tls = None
    if opts.security is not None:
        trust_domain = state.snapshot.mesh.trust_domain
        security = MeshSecurity(opts.security, trust_domain, opts.host)
        ca_port = await security.start()
        log.info("CA for %s on https://%s:%d", trust_domain, opts.host, ca_port)
        tls = security.xds_tls(workload_check(watcher.config))
    xds_port = await server.start(opts.host, opts.xds_port, tls=tls)
    metrics.watch(server, state, security)
    debug = DebugServer(server, state, watcher, security, metrics, TraceStore())
    debug_port = await debug.start(opts.host, opts.debug_port)
    if watcher.local_collector != (opts.host, debug_port):  # port 0: known only now
        watcher.local_collector = (opts.host, debug_port)
        await state.publish(watcher.snapshot())
    log.info(
        "control plane: xds %s:%d (%s), status http://%s:%d/status, metrics /metrics",
        opts.host,
        xds_port,
        "mTLS" if tls is not None else "plaintext",
        opts.host,
        debug_port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await watcher.run(state, stop)
    finally:
        await debug.stop()
        await server.stop(1.0)
        if security is not None:
            await security.stop()


def main(opts: ControlPlaneOptions) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(run(opts))
