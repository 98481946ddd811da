"""The control plane's status endpoints: `GET /status` → JSON for `plait status`,
`GET /debug/config_dump?proxyID=ID` → what it sends that proxy (see `configdump.py`),
`GET /metrics` → Prometheus metrics (see `metrics.py`), and the trace store's collector
and query routes (see `tracestore.py`).

Read-only and cheap: it reads the xDS server's live stream states and the current
snapshot's config messages; it never blocks the event loop on I/O of its own.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aiohttp import web

from plait.controlplane import tracestore
from plait.controlplane.configdump import config_dump
from plait.errors import Severity

if TYPE_CHECKING:
    from plait.controlplane.builder import SnapshotBuilder
    from plait.controlplane.metrics import ControlPlaneMetrics
    from plait.controlplane.pipeline import Pipeline
    from plait.controlplane.security import MeshSecurity
    from plait.controlplane.state import MeshState
    from plait.xds.server import AdsServer


class DebugServer:
    def __init__(
        self,
        server: AdsServer,
        state: MeshState,
        pipeline: Pipeline,
        builder: SnapshotBuilder,
        security: MeshSecurity | None = None,
        metrics: ControlPlaneMetrics | None = None,
        traces: tracestore.TraceStore | None = None,
    ) -> None:
        self.traces = traces
        self.metrics = metrics
        self.security = security
        self.server = server
        self.state = state
        self.pipeline = pipeline
        self.builder = builder
        self._runner: web.AppRunner | None = None

    def status(self) -> dict[str, Any]:
        messages = self.state.snapshot.messages
        return {
            "controlPlane": {
                "pid": os.getpid(),
                "generation": self.state.generation,
                "snapshotVersion": self.state.snapshot.version,
                "instances": self.builder.instance_names,
            },
            "proxies": [s.to_json() for s in self.server.statuses()],
            "errors": [m.to_json() for m in messages if m.severity == Severity.ERROR],
            "warnings": [m.to_json() for m in messages if m.severity == Severity.WARNING],
            "keptLastGood": list(self.builder.kept),
            "translationErrors": dict(self.state.translation_errors),
            "internalError": self.pipeline.internal_error,
            # a source that cannot read its input (its last good input stays in force),
            # or whose task failed and is being retried
            "sourceErrors": {**self.pipeline.store.errors, **self.pipeline.problems},
            "ca": self.security.status() if self.security is not None else None,
            "refusedProxies": [
                {
                    "at": r.at.isoformat(),
                    "peer": r.peer,
                    "node": r.node_id,
                    "claimed": r.claimed,
                    "identity": r.identity,
                    "reason": r.message,
                }
                for r in self.server.rejections
            ],
        }

    async def _status(self, _request: web.Request) -> web.Response:
        return web.json_response(self.status())

    async def _config_dump(self, request: web.Request) -> web.Response:
        proxy_id = request.query.get("proxyID", "")
        config = self.server.config_of(proxy_id)
        if config is None:
            known = ", ".join(s.proxy.id for s in self.server.statuses()) or "none"
            raise web.HTTPNotFound(text=f"no proxy '{proxy_id}'; proxies: {known}")
        return web.json_response(config_dump(config))

    async def _metrics(self, request: web.Request) -> web.Response:
        assert self.metrics is not None
        body, content_type = self.metrics.exposition(request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def start(self, host: str, port: int) -> int:
        app = web.Application()
        app.router.add_get("/status", self._status)
        app.router.add_get("/debug/config_dump", self._config_dump)
        if self.metrics is not None:
            app.router.add_get("/metrics", self._metrics)
        if self.traces is not None:
            tracestore.add_routes(app, self.traces)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
