"""A proxy's metrics endpoint: Envoy's stats (from a stand-in admin server) followed by
the istio_* families counted from what is appended to its access log."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind
from plait.model.registry import PortMap, WorkloadInstance
from plait.sources.workloads import read_registry, write_registry
from plait.telemetry.exporter import MeshTelemetry, Reporter

ENVOY_STATS = "# TYPE envoy_cluster_upstream_rq_total counter\nenvoy_cluster_upstream_rq_total 5\n"


@pytest.fixture
async def admin() -> AsyncIterator[str]:
    async def stats(_: web.Request) -> web.Response:
        return web.Response(text=ENVOY_STATS)

    app = web.Application()
    app.router.add_get("/stats/prometheus", stats)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def scrape(url: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    return {
        f.name: [(s.name, s.labels, s.value) for s in f.samples]
        for f in text_string_to_metric_families(text)
    }


async def test_envoy_stats_and_istio_families_from_new_log_lines(
    tmp_path: Path, admin: str
) -> None:
    log = tmp_path / ".plait" / "logs" / "echo-v1-0.access.log"
    log.parent.mkdir(parents=True)
    old = {"direction": "inbound", "response_code": 200, "duration": 1}
    log.write_text(json.dumps(old) + "\n")  # a previous run's request: not counted
    write_registry(
        tmp_path,
        [
            WorkloadInstance(
                "client-0",
                "client",
                "default",
                Labels.of({"app": "client"}),
                "client",
                "127.0.0.1",
                PortMap.all_to(1),
            )
        ],
    )
    proxy = Proxy(
        "sidecar~echo-v1-0.default", ProxyKind.SIDECAR, "echo-v1", service_account="echo",
        labels=Labels.of({"app": "echo", "version": "v1"}), access_log=str(log),
    )  # fmt: skip
    telemetry = MeshTelemetry(lambda: read_registry(tmp_path), dict, poll_s=0.05)
    url = await telemetry.attach(
        Reporter(
            "echo-v1-0", proxy, "spiffe://cluster.local/ns/default/sa/echo", log, lambda: admin
        )
    )
    try:
        new = {
            "direction": "inbound",
            "response_code": 503,
            "response_flags": "-",
            "duration": 12,
            "downstream_peer_uri_san": "spiffe://cluster.local/ns/default/sa/client",
            "source_workload": "default/client",
        }
        with log.open("a") as f:
            f.write(json.dumps(new) + "\n" + "not json\n" + json.dumps(new)[:10])  # partial line
        families = await asyncio.to_thread(scrape, url)
        assert families["envoy_cluster_upstream_rq"][0][2] == 5
        ((name, labels, value),) = families["istio_requests"]
        assert (name, value) == ("istio_requests_total", 1)
        assert labels["source_workload"] == "client" and labels["destination_workload"] == "echo-v1"
        assert labels["response_code"] == "503"
        assert labels["connection_security_policy"] == "mutual_tls"
        assert telemetry.url("echo-v1-0") == url
    finally:
        await telemetry.close()
    assert telemetry.url("echo-v1-0") is None
