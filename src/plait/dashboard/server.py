"""The dashboard's HTTP server: the page (`page.PAGE`) and its JSON APIs.

A background task scrapes every proxy each `interval_s` (`local.scrape.scrape_mesh`, in
threads) and keeps the newest graph and the services' history; the other APIs ask the
running mesh when called: `/api/proxies` and `/api/errors` from `collect_status`,
`/api/traces` and `/api/traces/{id}` from the control plane's trace store (its status
server, `state.json` `status_url`). Blocking calls run in a thread pool, so one slow
proxy never stalls the page. A mesh that stops answers 503 with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.error
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from plait.dashboard.model import ServiceHistory, Workload, graph_json
from plait.dashboard.page import PAGE
from plait.errors import MeshStateError
from plait.local.scrape import scrape_mesh
from plait.local.statefile import read_state
from plait.local.status import collect_status, get_json
from plait.telemetry.top import Scrape, compute

log = logging.getLogger(__name__)
T = TypeVar("T")
TRACE_LIMIT = 20


class Dashboard:
    """The state behind the APIs of one mesh directory."""

    def __init__(self, root: Path, interval_s: float = 2.0) -> None:
        self.root = root
        self.interval_s = interval_s
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="plait-dashboard")
        self.history = ServiceHistory()
        self.graph: dict[str, Any] = {"windowSeconds": 0, "nodes": [], "edges": []}
        self.problem: str | None = None  # why the last scrape failed

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def _workloads(self) -> list[Workload]:
        return [Workload(p.workload, p.namespace, p.kind) for p in read_state(self.root).proxies]

    async def poll(self) -> None:
        """Scrape forever; each frame covers the window since the previous scrape."""
        prev: Scrape | None = None
        while True:
            try:
                cur = await self._run(scrape_mesh, self.root, self.pool)
                workloads = await self._run(self._workloads)
                base = prev or cur
                self.graph = graph_json(base, cur, workloads)
                if prev is not None:
                    self.history.add(compute(prev, cur), time.time())
                prev, self.problem = cur, None
            except MeshStateError as exc:
                self.problem = str(exc)
            except Exception as exc:  # noqa: BLE001 - shown on the page, tried again next time
                log.exception("dashboard: scrape failed")
                self.problem = f"scrape failed: {type(exc).__name__}: {exc}"
            await asyncio.sleep(self.interval_s)

    async def _status(self) -> dict[str, Any]:
        try:
            return await self._run(collect_status, self.root)
        except MeshStateError as exc:
            raise web.HTTPServiceUnavailable(text=str(exc)) from exc

    async def _trace_store(self, path: str) -> Any:
        try:
            base = (await self._run(read_state, self.root)).status_url
            return await self._run(get_json, urllib.parse.urljoin(base, path))
        except urllib.error.HTTPError as exc:
            raise web.HTTPNotFound(text=f"trace store: {exc}") from exc
        except (MeshStateError, OSError, ValueError) as exc:
            raise web.HTTPServiceUnavailable(text=f"trace store: {exc}") from exc

    async def page(self, _: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def api_graph(self, _: web.Request) -> web.Response:
        return web.json_response({**self.graph, "problem": self.problem})

    async def api_services(self, _: web.Request) -> web.Response:
        return web.json_response(self.history.to_json())

    async def api_proxies(self, _: web.Request) -> web.Response:
        status = await self._status()
        keys = ("name", "kind", "workload", "namespace", "connected", "sync", "nack", "generation")
        rows = [{k: p.get(k) for k in keys} for p in status["proxies"]]
        return web.json_response({"phase": status["phase"], "proxies": rows})

    async def api_errors(self, _: web.Request) -> web.Response:
        status = await self._status()
        nacks = [
            {"proxy": p["name"], "message": p["nack"]} for p in status["proxies"] if p.get("nack")
        ]
        return web.json_response(
            {
                "errors": status["errors"],
                "warnings": status["warnings"],
                "nacks": nacks,
                "keptLastGood": status["keptLastGood"],
                "controlPlane": status["controlPlane"].get("error"),
            }
        )

    async def api_traces(self, request: web.Request) -> web.Response:
        limit = request.query.get("limit", str(TRACE_LIMIT))
        if not limit.isdigit():
            raise web.HTTPBadRequest(text="limit is a number")
        return web.json_response(await self._trace_store(f"/traces?limit={limit}"))

    async def api_trace(self, request: web.Request) -> web.Response:
        trace_id = request.match_info["trace_id"]
        if not trace_id.isalnum():
            raise web.HTTPBadRequest(text="a trace id is hex digits")
        return web.json_response(await self._trace_store(f"/traces/{trace_id}"))


def make_app(dashboard: Dashboard) -> web.Application:
    """The aiohttp application; the scraping task lives as long as the app."""
    app = web.Application()
    app.router.add_get("/", dashboard.page)
    app.router.add_get("/api/graph", dashboard.api_graph)
    app.router.add_get("/api/services", dashboard.api_services)
    app.router.add_get("/api/proxies", dashboard.api_proxies)
    app.router.add_get("/api/errors", dashboard.api_errors)
    app.router.add_get("/api/traces", dashboard.api_traces)
    app.router.add_get("/api/traces/{trace_id}", dashboard.api_trace)

    async def poller(_: web.Application) -> Any:
        # Owner: the app's lifetime (cancelled at cleanup); `poll` shows its failures as
        # `problem` on the page and goes on.
        task = asyncio.create_task(dashboard.poll(), name="dashboard scrape")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        dashboard.pool.shutdown(wait=False, cancel_futures=True)

    app.cleanup_ctx.append(poller)
    return app


async def serve(root: Path, port: int, announce: Callable[[str], None]) -> None:
    """Serve on 127.0.0.1:`port` (0: any free port) until cancelled; `announce` gets the URL."""
    runner = web.AppRunner(make_app(Dashboard(root)), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        bound = runner.addresses[0][1]
        announce(f"http://127.0.0.1:{bound}/")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
