"""The proxy's status port in a pod (Istio's 15021): `GET /healthz/ready`.

200 once Envoy is ready (LIVE with its first clusters and listeners from the control
plane: `EnvoySupervisor.is_ready`), 503 with the reason before that, while Envoy
restarts and once the agent is stopping, so the kubelet's startup probe holds the app
until the proxy can carry its traffic and the readiness probe takes a draining pod out
of its Services. It listens from the agent's start, before any certificate or Envoy
exists: a probe then gets an answer (503), not a refused connection.

The answer is computed per request from `ready()`; nothing here polls or caches.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from plait.agent.lifecycle import StartStop

READY_PATH = "/healthz/ready"


class HealthServer(StartStop):
    """Serves READY_PATH on host:port from `ready()`, which returns None when ready or
    the reason it is not."""

    def __init__(self, ready: Callable[[], str | None], host: str, port: int) -> None:
        self._ready = ready
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    async def _handle(self, _request: web.Request) -> web.Response:
        reason = self._ready()
        if reason is None:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {reason}\n")

    async def start(self) -> int:
        """Listen; returns the bound port (`port` 0 picks a free one)."""
        app = web.Application()
        app.router.add_get(READY_PATH, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await self.stop()
            raise
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
