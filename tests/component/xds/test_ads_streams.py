"""Make before break, reconnects, shared bytes between proxies, refused streams, shutdown."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from ads_testkit import AdsClient, ClientFactory, eventually, mesh, node_for, sidecar
from envoy.config.core.v3 import base_pb2

from plait.model.proxy import to_node_metadata
from plait.translate.resource import Resource
from plait.translate.typeurls import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE
from plait.xds import AdsServer, StaticConfigSource, framing

PROXY = sidecar()


async def test_cluster_removal_is_make_before_break(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    before = mesh({"a": [8001], "b": [8002]}, route_to="b")
    source.set({PROXY.id: before})
    client = connect(PROXY)
    await client.initial_sync(before)

    after = mesh({"a": [8001]}, route_to="a", stat_prefix="out2")  # b gone, LDS+RDS change
    gen = source.set({PROXY.id: after})
    cds, lds, rds = await client.recv_types(CLUSTER, LISTENER, ROUTE)
    assert cds.names == ["a", "b"]  # b kept while routes still point at it
    await client.ack(cds)
    await client.ack(lds)
    await client.expect_silence(0.3)  # RDS not ACKed yet: b must stay
    [status] = server.statuses()
    assert status.sync["cds"] == "STALE"

    await client.ack(rds)
    [final] = await client.recv_types(CLUSTER)
    assert final.names == ["a"]
    assert final.msg.version_info == after.version(CLUSTER)
    await client.ack(final)
    await client.request(ENDPOINT, ["a"], nonce=client.nonces[ENDPOINT])  # Envoy drops b
    assert await server.wait_synced(gen, timeout=5)
    await client.expect_silence(0.2)


async def test_removal_waits_while_lds_is_nacked(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    before = mesh({"a": [8001], "b": [8002]}, route_to="b")
    source.set({PROXY.id: before})
    client = connect(PROXY)
    await client.initial_sync(before)

    after = mesh({"a": [8001]}, route_to="a", stat_prefix="out2")
    source.set({PROXY.id: after})
    cds, lds, rds = await client.recv_types(CLUSTER, LISTENER, ROUTE)
    await client.ack(cds)
    await client.nack(lds, "listener rejected")
    await client.ack(rds)
    await client.expect_silence(0.3)  # the old listener may still use b


async def test_reconnect_gets_current_state(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    first = mesh({"a": [8001], "b": [8002]}, route_to="a")
    source.set({PROXY.id: first})
    client = connect(PROXY)
    await client.initial_sync(first)
    versions = dict(client.acked)
    await client.close()
    await eventually(lambda: not server.statuses()[0].connected)
    [gone] = server.statuses()
    assert gone.disconnected_at is not None and gone.sync["cds"] == "SYNCED"

    second = mesh({"a": [8001, 8011], "b": [8002]}, route_to="a")
    gen = source.set({PROXY.id: second})
    again = connect(PROXY)
    again.acked.update(versions)  # the new stream starts from the versions Envoy runs
    await again.subscribe_all(second)
    got = await again.recv_types(*PUSH_ORDER)
    assert got[1].names == ["a", "b"]
    assert got[1].msg.version_info == second.version(ENDPOINT)
    for r in got:
        await again.ack(r)
    assert await server.wait_synced(gen, timeout=5, min_proxies=1)
    [status] = server.statuses()
    assert status.connected and status.disconnected_at is None
    assert status.connected_since > gone.connected_since
    assert server.counters.streams_opened == 2


async def test_disconnected_proxies_are_forgotten_after_the_ttl(
    source: StaticConfigSource,
) -> None:
    server = AdsServer(source, disconnected_ttl=0)
    port = await server.start("127.0.0.1", 0)
    try:
        client = AdsClient.open(port, node_for(PROXY))
        await client.request(CLUSTER)
        await client.recv_types(CLUSTER)
        assert [s.proxy.id for s in server.statuses()] == [PROXY.id]
        await client.close()
        await eventually(lambda: server.statuses() == [])
    finally:
        await server.stop(0)


async def test_proxies_share_resource_bytes(
    server: AdsServer,
    source: StaticConfigSource,
    connect: ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared = mesh({"a": [8001], "b": [8002]}, route_to="a")
    source.set(lambda proxy: shared)
    framed: dict[str, list[tuple[Resource, ...]]] = {}
    real = framing.encode_response

    def spy(version: str, type_url: str, nonce: str, resources: Any, cp: bytes = b"") -> bytes:
        framed.setdefault(type_url, []).append(tuple(resources))
        return real(version, type_url, nonce, resources, cp)

    monkeypatch.setattr(framing, "encode_response", spy)
    one, two = connect(sidecar("reviews-v1-0")), connect(sidecar("reviews-v1-1"))
    got_one = await one.initial_sync(shared)
    got_two = await two.initial_sync(shared)

    for type_url in PUSH_ORDER:
        first, second = framed[type_url]
        assert all(x is y for x, y in zip(first, second, strict=True))
        assert all(x is shared.resources(type_url)[x.name] for x in first)
    for a, b in zip(got_one, got_two, strict=True):
        for resource in shared.resources(a.type_url).values():
            assert resource.body in a.raw and resource.body in b.raw  # byte for byte
    assert len(server.statuses()) == 2


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"NAMESPACE": "default"}, "WORKLOAD_NAME"),
        ({**to_node_metadata(PROXY), "PLAIT_PROXY_KIND": "mystery"}, "unknown proxy kind"),
        ({**to_node_metadata(PROXY), "INBOUND_PORT": "http"}, "not a port number"),
    ],
)
async def test_bad_node_metadata_is_refused(
    server: AdsServer, connect: ClientFactory, metadata: dict[str, Any], expected: str
) -> None:
    client = connect(node=node_for(PROXY, metadata))
    await client.request(CLUSTER)
    with pytest.raises(grpc.aio.AioRpcError):
        await client.recv()
    assert await client.status_code() == grpc.StatusCode.INVALID_ARGUMENT
    details = await client.details()
    assert expected in details and PROXY.id in details
    assert server.counters.streams_rejected == 1
    [rejection] = server.rejections
    assert rejection.node_id == PROXY.id and expected in rejection.message
    assert server.statuses() == []


async def test_missing_node_is_refused(server: AdsServer, connect: ClientFactory) -> None:
    client = connect(node=base_pb2.Node())
    await client.request(CLUSTER)
    with pytest.raises(grpc.aio.AioRpcError):
        await client.recv()
    assert await client.status_code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "node.id" in await client.details()


async def test_stop_ends_streams_with_unavailable(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    source.set({PROXY.id: mesh({"a": [8001]}, route_to="a")})
    client = connect(PROXY)
    await client.request(CLUSTER)
    await client.recv_types(CLUSTER)
    await server.stop(1)
    assert await client.status_code() == grpc.StatusCode.UNAVAILABLE
    assert not server.statuses()[0].connected


async def test_a_failing_config_source_ends_the_stream_with_internal(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    def broken(proxy: Any) -> Any:
        raise RuntimeError("translator exploded")

    source.set(broken)
    client = connect(PROXY)
    await client.request(CLUSTER)
    with pytest.raises(grpc.aio.AioRpcError):
        await client.recv()
    assert await client.status_code() == grpc.StatusCode.INTERNAL
    assert "translator exploded" in await client.details()
    await eventually(lambda: not server.statuses()[0].connected)
