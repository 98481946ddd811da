"""Running the proxy in a pod: the health server first, then the agent (certificate,
SDS, Envoy) and the merged metrics endpoint, until asked to stop. See `settings` for what
is run and why; the failure model is there too.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from plait.agent.health import HealthServer
from plait.agent.sidecar import SidecarAgent
from plait.errors import PodProxyError
from plait.podproxy.settings import PodInfo, PodProxyOptions, sidecar_options
from plait.telemetry.exporter import ProxyExporter, Reporter

log = logging.getLogger(__name__)

ANY = "0.0.0.0"  # noqa: S104 - probed and scraped at the pod IP


async def resolve(host: str) -> str:
    """An IPv4 address of `host` by the system resolver (the pod's hosts file and DNS)."""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            host, None, family=socket.AF_INET, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        raise PodProxyError(f"cannot resolve the control plane {host!r}: {exc}") from exc
    return str(found[0][4][0])


class PodProxy:
    """The health server, then the agent; `run()` until `stop` is set."""

    def __init__(self, opts: PodProxyOptions, pod: PodInfo) -> None:
        self.opts, self.pod = opts, pod
        self.agent: SidecarAgent | None = None
        self._stopping = False
        self.health = HealthServer(self._not_ready, ANY, opts.health_port)

    def _not_ready(self) -> str | None:
        agent = self.agent
        if self._stopping:
            return "stopping"
        if agent is None:
            return "no workload certificate yet"
        if not agent.envoy.is_ready():
            return "Envoy has not received its configuration"
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Serve health, get the certificate, start Envoy; stop everything on `stop`."""
        await self.health.start()
        try:
            host, _ = self.opts.xds_host_port()
            options = sidecar_options(self.opts, self.pod, await resolve(host))
            agent = SidecarAgent(options)
            log.info(
                "%s %s: %s, xDS %s (%s), CA %s",
                self.opts.kind.value, options.proxy.id, options.ca.identity,
                self.opts.xds_address, options.xds_host, self.opts.ca_address,
            )  # fmt: skip
            starting = asyncio.create_task(agent.start(), name="agent start")
            stopped = asyncio.create_task(stop.wait(), name="stop requested")
            try:
                await asyncio.wait([starting, stopped], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
                if not starting.done():  # asked to stop first: start() cleans up on cancel
                    starting.cancel()
                await asyncio.wait([starting])
            if starting.cancelled():
                return
            starting.result()  # raises what start() raised (nothing is left running then)
            self.agent = agent
            metrics = ProxyExporter(
                Reporter(options.proxy.id, lambda: agent.envoy.admin_url),
                ANY,
                self.opts.merged_metrics_port,
            )
            try:
                await metrics.start()
                await stop.wait()
            finally:
                self._stopping = True
                await metrics.stop()
                await agent.stop()
        finally:
            await self.health.stop()
