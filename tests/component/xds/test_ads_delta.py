"""DeltaAggregatedResources over gRPC, next to the State of the World on the same server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import grpc
import pytest
from ads_testkit import ClientFactory, cluster, endpoints, eventually, mesh, node_for, sidecar
from envoy.service.discovery.v3 import discovery_pb2

from plait.translate.resource import ProxyConfig
from plait.translate.typeurls import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE
from plait.xds import AdsServer, StaticConfigSource, SyncState

DELTA = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
Response = discovery_pb2.DeltaDiscoveryResponse


class DeltaClient:
    """A delta ADS client whose every request is explicit in the test."""

    def __init__(self, port: int, node_id: str = "reviews-v1-0") -> None:
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.call = self.channel.stream_stream(
            DELTA,
            request_serializer=discovery_pb2.DeltaDiscoveryRequest.SerializeToString,
            response_deserializer=Response.FromString,
        )()
        self.node = node_for(sidecar(node_id))

    async def send(
        self,
        type_url: str,
        *,
        subscribe: Sequence[str] = (),
        unsubscribe: Sequence[str] = (),
        nonce: str = "",
        error: str | None = None,
        initial: Mapping[str, str] | None = None,
    ) -> None:
        req = discovery_pb2.DeltaDiscoveryRequest(
            type_url=type_url,
            resource_names_subscribe=list(subscribe),
            resource_names_unsubscribe=list(unsubscribe),
            response_nonce=nonce,
            initial_resource_versions=dict(initial or {}),
        )
        if self.node is not None:
            req.node.CopyFrom(self.node)
            self.node = None
        if error is not None:
            req.error_detail.message = error
        await self.call.write(req)

    async def recv(self) -> Response:
        msg: Response = await asyncio.wait_for(self.call.read(), 5)
        return msg

    async def ack(self, resp: Response) -> None:
        await self.send(resp.type_url, nonce=resp.nonce)

    async def sync(self, config: ProxyConfig) -> dict[str, Response]:
        for t in PUSH_ORDER:
            named = t in (ENDPOINT, ROUTE)
            await self.send(t, subscribe=sorted(config.resources(t)) if named else ())
        got = {}
        for _ in PUSH_ORDER:
            resp = await self.recv()
            got[resp.type_url] = resp
            await self.ack(resp)
        return got


@pytest.fixture
async def delta(server: AdsServer) -> AsyncIterator[type[DeltaClient]]:
    opened: list[DeltaClient] = []

    class Opened(DeltaClient):
        def __init__(self, port: int, node_id: str = "reviews-v1-0") -> None:
            super().__init__(port, node_id)
            opened.append(self)

    yield Opened
    for client in opened:
        client.call.cancel()
        await client.channel.close()


async def test_delta_and_sotw_clients_share_a_server(
    server: AdsServer,
    source: StaticConfigSource,
    connect: ClientFactory,
    delta: type[DeltaClient],
) -> None:
    config = mesh({"a": [8001]}, route_to="a")
    source.set(lambda proxy: config)
    assert server.port is not None
    incremental = delta(server.port, "reviews-v1-0")
    got = await incremental.sync(config)
    sotw = await connect(sidecar("reviews-v1-1")).initial_sync(config)

    for type_url, resp in got.items():
        want = config.resources(type_url)
        assert {r.name: r.version for r in resp.resources} == {n: r.digest for n, r in want.items()}
        assert [r.resource.SerializeToString() for r in resp.resources] == [
            r.body for r in want.values()
        ]
        assert resp.system_version_info == config.version(type_url)
        assert resp.control_plane.identifier == "plait"
    assert [r.type_url for r in sotw] == list(PUSH_ORDER)
    assert await server.wait_synced(source.generation, 5, min_proxies=2)


async def test_a_stale_nonce_subscription_is_answered(
    server: AdsServer, source: StaticConfigSource, delta: type[DeltaClient]
) -> None:
    config = ProxyConfig.of([cluster("a"), cluster("b"), endpoints("a", [1]), endpoints("b", [2])])
    source.set(lambda proxy: config)
    assert server.port is not None
    client = delta(server.port)
    await client.send(CLUSTER)
    cds = await client.recv()
    await client.send(ENDPOINT, subscribe=["a"])
    first = await client.recv()
    await client.ack(first)
    await eventually(lambda: server.counters.acks == 1)  # (read after the change: stale)
    source.set(lambda proxy: ProxyConfig.of([*config.resources(CLUSTER).values(),
                                            endpoints("a", [3]), endpoints("b", [2])]))  # fmt: skip
    changed = await client.recv()
    assert [r.name for r in changed.resources] == ["a"]

    await client.send(ENDPOINT, subscribe=["b"], nonce=first.nonce)  # stale: not the latest

    resp = await client.recv()
    assert [r.name for r in resp.resources] == ["b"]
    assert cds.type_url == CLUSTER and server.counters.stale_requests == 1


async def test_a_nack_over_the_wire_shows_in_the_status(
    server: AdsServer, source: StaticConfigSource, delta: type[DeltaClient]
) -> None:
    source.set(lambda proxy: ProxyConfig.of([cluster("a"), cluster("b")]))
    assert server.port is not None
    client = delta(server.port)
    await client.send(CLUSTER)
    await client.ack(await client.recv())
    await client.send(LISTENER)
    await client.ack(await client.recv())
    source.set(lambda proxy: ProxyConfig.of([cluster("a", 200), cluster("b", 300)]))
    resp = await client.recv()
    assert sorted(r.name for r in resp.resources) == ["a", "b"]

    await client.send(CLUSTER, nonce=resp.nonce, error="Error adding/updating cluster(s) b: no")
    await asyncio.wait_for(_until(lambda: server.counters.nacks["cds"] == 1), 5)

    [status] = server.statuses()
    assert status.types["cds"].state is SyncState.NACK
    assert status.nack == "Error adding/updating cluster(s) b: no"


async def _until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0.01)


async def test_a_delta_stream_not_woken_by_an_equal_config_shows_synced(
    server: AdsServer, source: StaticConfigSource, delta: type[DeltaClient]
) -> None:
    config = mesh({"a": [8001]}, route_to="a")
    source.set(lambda proxy: config)
    assert server.port is not None
    await delta(server.port).sync(config)
    assert await server.wait_synced(source.generation, 5, min_proxies=1)

    again = mesh({"a": [8001]}, route_to="a")  # equal content, other mapping objects
    gen = source.set(lambda proxy: again)
    assert await server.wait_synced(gen, 5, min_proxies=1)
    [status] = server.statuses()
    assert status.synced_generation == gen
    assert status.sync == dict.fromkeys(("cds", "eds", "lds", "rds"), "SYNCED")
