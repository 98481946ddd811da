"""Each proxy's metrics endpoint: Envoy's own stats with Istio's families under Istio's names.

Envoy counts the `istio_*` families itself (`translate.metrics`); its admin
`/stats/prometheus` writes them as `envoy_istiocustom_istio_*` with raw tags. A
`ProxyExporter` is the proxy's one metrics endpoint, the role of Istio's pilot-agent
merged endpoint (15020): an aiohttp server answering `GET /stats/prometheus` by fetching
Envoy's `/stats/prometheus` at scrape time and rewriting the istio families
(`telemetry.istio.rewrite`). It does work per scrape, proportional to the number of
series, and none per request: nothing here reads access logs.

Under `plait up`, `MeshTelemetry` runs one exporter per Envoy on a free 127.0.0.1 port
(`attach` when its agent starts, `detach` when it stops, `close` at the end): the URL
`plait status -o json` gives as `metrics`. Failure model: an unreachable admin port
(Envoy restarting) answers 503, so a scrape fails visibly rather than reading as a reset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from plait.telemetry.istio import rewrite

HOST = "127.0.0.1"
PATH = "/stats/prometheus"
POD_PORT = 15020  # Istio's merged metrics port: where a pod's agent serves this endpoint


@dataclass(frozen=True)
class Reporter:
    """One Envoy to export for: a unique name and its admin URL now (it may restart)."""

    name: str
    admin: Callable[[], str | None]


async def envoy_stats(admin: str | None, timeout_s: float = 3.0) -> str | None:
    """Envoy's `/stats/prometheus` text, or None when the admin API does not answer."""
    if not admin:
        return None
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(admin.rstrip("/") + PATH) as resp,
        ):
            return await resp.text() if resp.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None


class ProxyExporter:
    def __init__(self, reporter: Reporter, host: str = HOST, port: int = 0) -> None:
        self.reporter = reporter
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{PATH}"

    async def _scrape(self, request: web.Request) -> web.Response:
        text = await envoy_stats(self.reporter.admin())
        if text is None:
            return web.Response(status=503, text="Envoy's admin API does not answer\n")
        return web.Response(
            body=rewrite(text).encode(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(PATH, self._scrape)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class MeshTelemetry:
    """Every running proxy's exporter, by reporter name."""

    def __init__(self) -> None:
        self.exporters: dict[str, ProxyExporter] = {}

    async def attach(self, reporter: Reporter) -> str:
        """Start exporting for `reporter`; returns its metrics URL."""
        exporter = ProxyExporter(reporter)
        await exporter.start()
        self.exporters[reporter.name] = exporter
        return exporter.url

    def url(self, name: str) -> str | None:
        exporter = self.exporters.get(name)
        return exporter.url if exporter is not None else None

    async def detach(self, name: str) -> None:
        exporter = self.exporters.pop(name, None)
        if exporter is not None:
            await exporter.stop()

    async def close(self) -> None:
        for name in list(self.exporters):
            await self.detach(name)
