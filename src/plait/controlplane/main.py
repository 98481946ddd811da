"""The control plane process: sources → pipeline → MeshState → xDS server (and CA, status).

Concurrency: one event loop, one task group. The pipeline's sources (the mesh directory,
the workload registry and the OpenID discovery of JWT issuers, `plait.sources`; the last
learns which issuers to resolve from each snapshot published) and its publishing loop are children of the
group; the gRPC, CA and status servers run their own listeners and are stopped in
reverse order on the way out. A source that fails is retried by the pipeline and shown
in `/status`; a failure of the pipeline loop itself ends the group, and so the process,
with its traceback in the log (`plait up` restarts the control plane; Envoys keep their
config meanwhile). SIGTERM/SIGINT end the group through `aio.until`. A bad file is
reported in status and the last good config stays in force (see sources.directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from plait.aio import Stopped, until
from plait.analysis import vet
from plait.controlplane import gctune
from plait.controlplane.builder import SnapshotBuilder
from plait.controlplane.debug import DebugServer
from plait.controlplane.metrics import ControlPlaneMetrics
from plait.controlplane.pipeline import Pipeline
from plait.controlplane.security import MeshSecurity, SecurityOptions, workload_check
from plait.controlplane.state import MeshState
from plait.controlplane.tracestore import TraceStore
from plait.model.snapshot import MeshSnapshot
from plait.sources.events import Source
from plait.sources.meshdir import MeshDirectorySource
from plait.sources.oidc import OidcDiscovery, issuers
from plait.sources.workloads import RegistrySource
from plait.xds.auth import ProxyAdmission
from plait.xds.server import AdsServer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControlPlaneOptions:
    root: Path | None = None  # the mesh directory (local mode; None with another platform)
    host: str = "127.0.0.1"
    xds_host: str | None = None  # where xDS listens, if not `host` (pods reach it over a bridge)
    xds_port: int = 15010
    debug_port: int = 15014
    security: SecurityOptions | None = None  # None: plaintext xDS and no CA (tests, bench)


def local_sources(root: Path) -> list[Source]:
    """Local mode's sources: the mesh directory (validated by `analysis.vet` as each file
    loads) and the workload registry `plait up` writes."""
    return [MeshDirectorySource(root, check=vet), RegistrySource(root)]


class Part(Protocol):
    """A server that uses the control plane's credentials (Kubernetes: the injector)."""

    async def start(self) -> int: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Platform:
    """What differs between local mode and Kubernetes: the sources the pipeline reads,
    the admission of proxies (given the pipeline, whose current config it may consult),
    where the CA directory comes from before the CA loads it (`restore_ca(trust_domain)`;
    Kubernetes: a Secret) and the parts started with the CA's serving certificate."""

    sources: list[Source]
    admission: Callable[[Pipeline], ProxyAdmission]
    restore_ca: Callable[[str], Awaitable[object]] | None = None
    parts: Callable[[MeshSecurity], Sequence[Part]] = field(default=lambda _: ())


def local_platform(root: Path) -> Platform:
    return Platform(local_sources(root), lambda p: workload_check(lambda: p.store.config.resources))


async def serve(
    opts: ControlPlaneOptions, stop: asyncio.Event, platform: Platform | None = None
) -> None:
    """Run the control plane until `stop` is set (local mode unless `platform` says)."""
    if platform is None:
        if opts.root is None:
            raise ValueError("local mode needs the mesh directory (ControlPlaneOptions.root)")
        platform = local_platform(opts.root)
    builder = SnapshotBuilder()
    if opts.debug_port:
        builder.local_collector = (opts.host, opts.debug_port)
    discovery = OidcDiscovery()  # every platform: the issuers of the config's jwtRules
    pipeline = Pipeline([*platform.sources, discovery], builder)
    try:
        async with contextlib.AsyncExitStack() as servers, asyncio.TaskGroup() as tg:
            state = MeshState(await pipeline.start(tg))
            gctune.tune()
            discovery.want(issuers(state.snapshot))

            async def publish(snapshot: MeshSnapshot) -> int:
                discovery.want(issuers(snapshot))  # the issuers of the config in force
                return await state.publish(snapshot)

            metrics = ControlPlaneMetrics()
            server = AdsServer(state, observer=metrics.xds)
            security = None
            tls = None
            if opts.security is not None:
                trust_domain = state.snapshot.mesh.trust_domain
                if platform.restore_ca is not None:
                    await platform.restore_ca(trust_domain)
                security = MeshSecurity(opts.security, trust_domain, opts.host)
                ca_port = await security.start()
                servers.push_async_callback(security.stop)
                log.info("CA for %s on https://%s:%d", trust_domain, opts.host, ca_port)
                tls = security.xds_tls(platform.admission(pipeline))
                for part in platform.parts(security):
                    port = await part.start()
                    servers.push_async_callback(part.stop)
                    log.info("%s on port %d", type(part).__name__, port)
            xds_port = await server.start(opts.xds_host or opts.host, opts.xds_port, tls=tls)
            servers.push_async_callback(server.stop, 1.0)
            metrics.watch(server, state, security)
            debug = DebugServer(server, state, pipeline, builder, security, metrics, TraceStore())
            debug_port = await debug.start(opts.host, opts.debug_port)
            servers.push_async_callback(debug.stop)
            if builder.local_collector != (opts.host, debug_port):  # port 0: known only now
                builder.local_collector = (opts.host, debug_port)
                await publish(await asyncio.to_thread(builder, pipeline.store))
            log.info(
                "control plane: xds %s:%d (%s), status http://%s:%d/status, metrics /metrics",
                opts.host,
                xds_port,
                "mTLS" if tls is not None else "plaintext",
                opts.host,
                debug_port,
            )
            tg.create_task(pipeline.run(publish), name="pipeline")
            tg.create_task(until(stop), name="until stopped")
    except* Stopped:
        pass


async def run(opts: ControlPlaneOptions) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(opts, stop)


def main(opts: ControlPlaneOptions) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(run(opts))
