"""A real ADS server reporting to the control plane's metrics: pushes by type and reason,
push and convergence time, NACKs and refused streams, as a scrape shows them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from ads_testkit import ClientFactory, eventually, mesh, node_for, sidecar
from prometheus_client.parser import text_string_to_metric_families

from plait.controlplane.metrics import ControlPlaneMetrics
from plait.controlplane.state import MeshState
from plait.model.proxy import to_node_metadata
from plait.model.snapshot import build_snapshot
from plait.translate.typeurls import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE
from plait.xds import AdsServer, StaticConfigSource

PROXY = sidecar()
BASE = mesh({"a": [8001], "b": [8002]}, route_to="a")
ACK_DELAY = 0.3


@pytest.fixture
def metrics() -> ControlPlaneMetrics:
    return ControlPlaneMetrics()


@pytest.fixture
async def server(
    source: StaticConfigSource, metrics: ControlPlaneMetrics
) -> AsyncIterator[AdsServer]:
    """The conftest's server, reporting to `metrics` (overrides its `server` fixture)."""
    ads = AdsServer(source, observer=metrics.xds)
    metrics.watch(ads, MeshState(build_snapshot((), (), 1)), None)
    await ads.start("127.0.0.1", 0)
    yield ads
    await ads.stop(0)


def scrape(metrics: ControlPlaneMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, _ = metrics.exposition()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(metrics: ControlPlaneMetrics, name: str, **labels: str) -> float:
    return scrape(metrics).get((name, frozenset(labels.items())), 0.0)


async def test_a_config_push_and_its_ack_count_pushes_and_convergence(
    server: AdsServer,
    source: StaticConfigSource,
    connect: ClientFactory,
    metrics: ControlPlaneMetrics,
) -> None:
    source.set({PROXY.id: BASE})
    client = connect(PROXY)
    await client.initial_sync(BASE)
    await eventually(lambda: server.statuses()[0].sync["rds"] == "SYNCED")
    for t in ("cds", "eds", "lds", "rds"):
        assert value(metrics, "plait_xds_pushes_total", type=t, reason="new_connection") == 1
    assert value(metrics, "plait_xds_connected_proxies", kind="sidecar") == 1
    assert value(metrics, "pilot_xds") == 1
    assert value(metrics, "plait_xds_convergence_time_seconds_count") == 0  # no change yet
    assert value(metrics, "pilot_xds_push_time_count", type="cds") == 0

    changed = mesh({"a": [8001], "b": [8002]}, route_to="b", stat_prefix="out2")
    gen = source.set({PROXY.id: changed})  # LDS and RDS change
    lds, rds = await client.recv_types(LISTENER, ROUTE)
    await asyncio.sleep(ACK_DELAY)  # the proxy takes its time: convergence must show it
    await client.ack(lds)
    await client.ack(rds)
    assert await server.wait_synced(gen, timeout=5)

    assert value(metrics, "plait_xds_pushes_total", type="lds", reason="config") == 1
    assert value(metrics, "plait_xds_pushes_total", type="rds", reason="config") == 1
    assert value(metrics, "pilot_xds_pushes", type="lds") == 2
    assert value(metrics, "pilot_xds_pushes", type="cds") == 1  # clusters did not change
    assert value(metrics, "pilot_xds_push_time_count", type="lds") == 1
    assert value(metrics, "plait_xds_push_time_seconds_count", type="rds") == 1
    assert value(metrics, "plait_xds_push_time_seconds_sum", type="lds") < ACK_DELAY
    assert value(metrics, "pilot_proxy_convergence_time_count") == 1
    converged = value(metrics, "plait_xds_convergence_time_seconds_sum")
    assert ACK_DELAY <= converged < ACK_DELAY + 5
    assert value(metrics, "pilot_xds_config_size_bytes_count", type="lds") == 2
    assert value(metrics, "plait_xds_acks_total") == 6


async def test_an_endpoint_change_is_counted_as_such(
    server: AdsServer,
    source: StaticConfigSource,
    connect: ClientFactory,
    metrics: ControlPlaneMetrics,
) -> None:
    source.set({PROXY.id: BASE})
    client = connect(PROXY)
    await client.initial_sync(BASE)

    gen = source.set({PROXY.id: mesh({"a": [8001, 8003], "b": [8002]}, route_to="a")})
    [eds] = await client.recv_types(ENDPOINT)
    await client.ack(eds)
    assert await server.wait_synced(gen, timeout=5)

    assert value(metrics, "plait_xds_pushes_total", type="eds", reason="endpoint") == 1
    assert value(metrics, "pilot_xds_push_time_count", type="eds") == 1
    assert value(metrics, "pilot_proxy_convergence_time_count") == 1


async def test_a_nack_counts_and_stands_until_a_good_config_is_acked(
    server: AdsServer,
    source: StaticConfigSource,
    connect: ClientFactory,
    metrics: ControlPlaneMetrics,
) -> None:
    source.set({PROXY.id: BASE})
    client = connect(PROXY)
    await client.initial_sync(BASE)

    bad = mesh({"a": [8001], "b": [8002]}, route_to="a", timeouts={"a": 0})
    source.set({PROXY.id: bad})
    cds, eds = await client.recv_types(CLUSTER, ENDPOINT)
    await client.nack(cds, "cluster a: connect_timeout must be positive")
    await client.ack(eds)
    await eventually(lambda: server.statuses()[0].sync["cds"] == "NACK")

    assert value(metrics, "pilot_total_xds_rejects", type="cds") == 1
    assert value(metrics, "plait_xds_nacks_total", type="cds") == 1
    assert value(metrics, "plait_xds_proxies_with_nack") == 1
    assert value(metrics, "pilot_xds_cds_reject", node=PROXY.id) == 1
    assert value(metrics, "pilot_proxy_convergence_time_count") == 0  # not converged

    fixed = mesh({"a": [8001], "b": [8002]}, route_to="a", timeouts={"a": 2000})
    gen = source.set({PROXY.id: fixed})
    for r in await client.recv_types(CLUSTER, ENDPOINT):
        await client.ack(r)
    assert await server.wait_synced(gen, timeout=5)
    assert value(metrics, "plait_xds_proxies_with_nack") == 0
    assert value(metrics, "pilot_xds_cds_reject", node=PROXY.id) == 0
    assert value(metrics, "pilot_proxy_convergence_time_count") == 1


async def test_refused_streams_are_counted_by_reason(
    server: AdsServer, connect: ClientFactory, metrics: ControlPlaneMetrics
) -> None:
    node = node_for(PROXY, {**to_node_metadata(PROXY), "PLAIT_PROXY_KIND": "mystery"})
    client = connect(node=node)
    await client.request(CLUSTER)
    assert await client.status_code() == grpc.StatusCode.INVALID_ARGUMENT

    assert value(metrics, "plait_xds_rejected_streams_total", reason="bad_node") == 1
    assert value(metrics, "pilot_xds") == 0


async def test_pushes_to_several_proxies_are_counted_per_response(
    server: AdsServer,
    source: StaticConfigSource,
    connect: ClientFactory,
    metrics: ControlPlaneMetrics,
) -> None:
    proxies = [sidecar(f"reviews-v1-{i}") for i in range(3)]
    source.set(lambda _p: BASE)
    clients = [connect(p) for p in proxies]
    for c in clients:
        await c.initial_sync(BASE)
    assert await server.wait_synced(source.generation, timeout=5, min_proxies=3)
    assert value(metrics, "plait_xds_connected_proxies", kind="sidecar") == 3
    assert sum(
        value(metrics, "pilot_xds_pushes", type=t) for t in ("cds", "eds", "lds", "rds")
    ) == (3 * len(PUSH_ORDER))
