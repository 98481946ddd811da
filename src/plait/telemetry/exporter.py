"""Each proxy's metrics endpoint in `plait up`: Envoy's own stats plus Istio's families.

`MeshTelemetry` runs in the `plait up` process, one `ProxyExporter` per running Envoy
(`attach` when its agent starts, `detach` when it stops, `close` at the end). An exporter
is an aiohttp server on a free 127.0.0.1 port answering `GET /stats/prometheus` with
Envoy's `/stats/prometheus` (fetched from its admin port at scrape time) followed by the
`istio_*` families of `telemetry.istio` — the URL `plait status -o json` gives as
`metrics`, so one scrape job sees both, as with an Istio sidecar's merged endpoint.

Feeding: the exporter tails its proxy's JSON access log (`telemetry.tail.Tail`), from
the end of the file at attach (the file is appended across runs), every `poll_s` and
again before each scrape; each record becomes labels (`telemetry.labels`) looked up in a
`MeshView` made from the registered workload instances (`workloads`, given by `plait up`),
the attached proxies and the current services. Envoy flushes its log every second, so a request shows up in
the counters within about a second. Failure model: an unreachable admin port yields just
the istio_* families (Envoy restarting); a bad log line is skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from plait.model.proxy import Proxy
from plait.model.registry import Service, WorkloadInstance
from plait.telemetry.istio import RequestMetrics
from plait.telemetry.labels import MeshView, Workload, request_labels
from plait.telemetry.tail import Tail

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
PATH = "/stats/prometheus"


@dataclass(frozen=True)
class Reporter:
    """One Envoy to export for: what it is, its SPIFFE ID, log file and admin URL."""

    name: str  # unique per Envoy (a gateway replacement has its own)
    proxy: Proxy
    identity: str | None
    access_log: Path
    admin: Callable[[], str | None]  # Envoy's admin URL now (it may restart elsewhere)

    @property
    def workload(self) -> Workload:
        p = self.proxy
        return Workload(p.workload, p.namespace, p.service_account, p.labels.as_dict())


class ProxyExporter:
    def __init__(self, reporter: Reporter, view: Callable[[], MeshView]) -> None:
        self.reporter = reporter
        self.view = view
        self.metrics = RequestMetrics()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.metrics)
        self.tail = Tail(reporter.access_log)
        self.tail.skip_to_end()
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{PATH}"

    def feed(self) -> int:
        """Count the records appended since the last call; returns how many."""
        lines = self.tail.lines()
        if not lines:
            return 0
        view, me, n = self.view(), self.reporter.workload, 0
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            labels = request_labels(record, me, self.reporter.identity, view)
            if labels is not None:
                self.metrics.observe(labels, record)
                n += 1
        return n

    async def _envoy_stats(self) -> bytes:
        admin = self.reporter.admin()
        if not admin:
            return b""
        try:
            timeout = aiohttp.ClientTimeout(total=3)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(admin.rstrip("/") + PATH) as resp,
            ):
                return await resp.read() if resp.status == 200 else b""
        except (aiohttp.ClientError, TimeoutError, OSError):
            return b""

    async def _scrape(self, request: web.Request) -> web.Response:
        self.feed()
        envoy = await self._envoy_stats()
        if envoy and not envoy.endswith(b"\n"):
            envoy += b"\n"
        body = envoy + generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(PATH, self._scrape)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class MeshTelemetry:
    """Every proxy's exporter; `workloads` returns the registered workload instances and
    `services` the mesh's services (hostname → Service)."""

    def __init__(
        self,
        workloads: Callable[[], Iterable[WorkloadInstance]],
        services: Callable[[], Mapping[str, Service]],
        poll_s: float = 0.5,
        view_ttl_s: float = 1.0,
    ) -> None:
        self.workloads = workloads
        self.services = services
        self.poll_s = poll_s
        self.view_ttl_s = view_ttl_s
        self.exporters: dict[str, ProxyExporter] = {}
        self._view: tuple[float, MeshView] | None = None
        self._poller: asyncio.Task[None] | None = None

    def view(self) -> MeshView:
        """The current MeshView, rebuilt at most every `view_ttl_s`."""
        now = time.monotonic()
        if self._view is not None and now - self._view[0] < self.view_ttl_s:
            return self._view[1]
        workloads: dict[tuple[str, str], Workload] = {}
        addresses: dict[str, Workload] = {}
        for i in self.workloads():
            w = Workload(i.workload, i.namespace, i.service_account, i.labels.as_dict())
            workloads.setdefault((w.namespace, w.name), w)
            addresses[f"{i.address}:{i.ports.every}"] = w
        for e in self.exporters.values():
            w = e.reporter.workload
            workloads.setdefault((w.namespace, w.name), w)
        view = MeshView(tuple(workloads.values()), addresses, dict(self.services()))
        self._view = (now, view)
        return view

    async def attach(self, reporter: Reporter) -> str:
        """Start exporting for `reporter`; returns its metrics URL."""
        exporter = ProxyExporter(reporter, self.view)
        await exporter.start()
        self.exporters[reporter.name] = exporter
        self._view = None
        if self._poller is None:
            # Owner: this object (`close` cancels it); `_poll` logs a failure and goes on.
            self._poller = asyncio.create_task(self._poll(), name="access-log poller")
        return exporter.url

    def url(self, name: str) -> str | None:
        exporter = self.exporters.get(name)
        return exporter.url if exporter is not None else None

    async def detach(self, name: str) -> None:
        exporter = self.exporters.pop(name, None)
        if exporter is not None:
            await exporter.stop()
            self._view = None

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        for name in list(self.exporters):
            await self.detach(name)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            for exporter in list(self.exporters.values()):
                try:
                    exporter.feed()
                except OSError:
                    pass  # the log is being rotated or not written yet: next poll
                except Exception:  # noqa: BLE001 - one bad proxy must not stop the counting
                    log.exception("feeding %s's metrics failed", exporter.reporter.name)
