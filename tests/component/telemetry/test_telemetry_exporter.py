"""A proxy's metrics endpoint: Envoy's `/stats/prometheus` (from a stand-in admin server
writing what Envoy writes) served with the istiocustom families under Istio's names."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from istiokit import FakeProxy
from plait.telemetry.exporter import MeshTelemetry, Reporter

ECHO = "echo.default.svc.cluster.local"


@pytest.fixture
async def admin() -> AsyncIterator[tuple[str, FakeProxy]]:
    envoy = FakeProxy()

    async def stats(_: web.Request) -> web.Response:
        return web.Response(text=envoy.envoy_text())

    app = web.Application()
    app.router.add_get("/stats/prometheus", stats)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", envoy
    await runner.cleanup()


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


async def test_envoy_stats_and_istio_families_under_istios_names(
    admin: tuple[str, FakeProxy],
) -> None:
    url, envoy = admin
    telemetry = MeshTelemetry()
    try:
        metrics = await telemetry.attach(Reporter("echo-v1-0", lambda: url))
        assert metrics == telemetry.url("echo-v1-0") and metrics.endswith("/stats/prometheus")
        labels = {"reporter": "destination", "destination_service": ECHO, "response_code": "200"}
        envoy.count(4, 2, labels | {"source_workload": "client", "source_app": "client"})
        text = await asyncio.to_thread(fetch, metrics)
        families = {f.name: f.samples for f in text_string_to_metric_families(text)}
        assert families["envoy_cluster_upstream_rq"][0].value == 99
        (sample,) = families["istio_requests"]
        assert sample.value == 4 and sample.labels["source_workload"] == "client"
        assert not any(name.startswith("envoy_istiocustom") for name in families)
    finally:
        await telemetry.close()
    assert telemetry.url("echo-v1-0") is None


async def test_an_unreachable_envoy_fails_the_scrape_visibly() -> None:
    telemetry = MeshTelemetry()
    try:
        metrics = await telemetry.attach(Reporter("gone", lambda: None))
        with pytest.raises(urllib.error.HTTPError) as err:
            await asyncio.to_thread(fetch, metrics)
        assert err.value.code == 503
    finally:
        await telemetry.close()
