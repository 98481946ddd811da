"""Fixtures for the shop's app tests (see shop_harness)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from shop_harness import App, FakeUpstream, Launcher

from consistencykit import checked_configs  # noqa: F401  (autouse: translated configs are consistent)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, App]]:
    """The whole shop, wired app to app without sidecars (one replica each)."""
    launcher = Launcher(tmp_path_factory.mktemp("shop"))
    try:
        apps: dict[str, App] = {}
        for name in ("risk-assessment", "inventory", "reviews-v1", "reviews-v2"):
            apps[name] = launcher.start_deployment(name, {})
        launcher.ready(*apps.values())
        urls = {name: app.url for name, app in apps.items()}
        urls["reviews"] = urls["reviews-v1"]
        for name in ("payment", "orders", "frontend"):
            apps[name] = launcher.start_deployment(name, urls)
            launcher.ready(apps[name])
            urls[name] = apps[name].url
        yield apps
    finally:
        launcher.close()


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream()
    upstream.answers = {
        "/reviews/": (200, {"service": "reviews", "reviews": [], "calls": []}),
        "/orders": (201, {"service": "orders", "order_id": "o-1", "amount": 1.0, "calls": []}),
        "/reserve": (200, {"service": "inventory", "unit_price": 2.5, "calls": []}),
        "/release": (200, {"service": "inventory", "calls": []}),
        "/charge": (200, {"service": "payment", "approved": True, "calls": []}),
        "/assess": (200, {"service": "risk-assessment", "acceptable": True, "calls": []}),
    }
    server = web.Server(upstream.handle)
    runner = web.ServerRunner(server)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        upstream.url = f"http://{host}:{port}"
        yield upstream
    finally:
        await runner.cleanup()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A URL whose port refuses connections (bound, never listening) for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
