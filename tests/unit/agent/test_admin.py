"""The admin client against a fake admin API: parsing, and errors that name the endpoint."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from plait.agent import admin
from plait.errors import EnvoyError


@pytest.fixture
async def fake_admin() -> AsyncIterator[tuple[str, list[str]]]:
    posts: list[str] = []

    async def ready(_: web.Request) -> web.Response:
        return web.Response(status=503, text="PRE_INITIALIZING\n")

    async def stats(request: web.Request) -> web.Response:
        assert request.query["format"] == "json"
        assert request.query["filter"] == "^cluster_manager"
        return web.json_response(
            {
                "stats": [
                    {"name": "cluster_manager.cds.update_success", "value": 3},
                    {"name": "server.version_label", "value": "1.40.0"},
                    {"histograms": {"supported_quantiles": [0.5], "computed_quantiles": []}},
                ]
            }
        )

    async def dump(_: web.Request) -> web.Response:
        return web.json_response({"configs": []})

    async def post(request: web.Request) -> web.Response:
        posts.append(str(request.rel_url))
        return web.Response(text="OK\n")

    app = web.Application()
    app.router.add_get("/ready", ready)
    app.router.add_get("/stats", stats)
    app.router.add_get("/config_dump", dump)
    app.router.add_post("/healthcheck/fail", post)
    app.router.add_post("/drain_listeners", post)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", posts
    finally:
        await runner.cleanup()


async def test_state_stats_and_config_dump(fake_admin: tuple[str, list[str]]) -> None:
    url, _ = fake_admin

    assert await admin.server_state(url) == "PRE_INITIALIZING"
    assert await admin.stats(url, "^cluster_manager") == {"cluster_manager.cds.update_success": 3}
    assert await admin.config_dump(url) == {"configs": []}


async def test_post_keeps_the_query(fake_admin: tuple[str, list[str]]) -> None:
    url, posts = fake_admin

    await admin.post(url, "/healthcheck/fail")
    await admin.post(url, "/drain_listeners?graceful")

    assert posts == ["/healthcheck/fail", "/drain_listeners?graceful"]


async def test_unreachable_admin_is_an_envoy_error_naming_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"

    with pytest.raises(EnvoyError, match=f"127.0.0.1:{port}/ready"):
        await admin.server_state(url)
