"""A Session driven directly (no gRPC): requests handled while its pusher is idle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ads_testkit import mesh, node_for, sidecar
from envoy.service.discovery.v3 import discovery_pb2

from plait.translate.resource import ProxyConfig
from plait.translate.typeurls import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE
from plait.xds import StaticConfigSource, framing
from plait.xds.session import Session, SessionDeps, Signal
from plait.xds.status import XdsCounters

PROXY = sidecar()
NAMES = {CLUSTER: [], ENDPOINT: ["a", "b"], LISTENER: [], ROUTE: ["outbound-routes"]}


class Harness:
    """One Session over a StaticConfigSource; what it writes, decoded, in order."""

    def __init__(self, config: ProxyConfig) -> None:
        self.source = StaticConfigSource({PROXY.id: config})
        self.syncs = 0
        deps = SessionDeps(
            self.source,
            XdsCounters(),
            framing.control_plane("test"),
            framing.delta_control_plane("test"),
            self._synced,
        )
        self.session = Session(PROXY, deps)
        self.written: list[Any] = []
        self.arrived = asyncio.Event()
        self._idle: asyncio.Queue[Any] = asyncio.Queue()  # the client sends nothing else

    def _synced(self) -> None:
        self.syncs += 1

    async def write(self, data: bytes) -> None:
        self.written.append(discovery_pb2.DiscoveryResponse.FromString(data))
        self.arrived.set()

    async def requests(self) -> AsyncIterator[Any]:
        while True:
            yield await self._idle.get()

    async def wait_written(self, count: int) -> list[Any]:
        async with asyncio.timeout(5):
            while len(self.written) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.written[:count]


def request(type_url: str, response: Any = None, first: bool = False) -> Any:
    msg = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=NAMES[type_url])
    if first:
        msg.node.CopyFrom(node_for(PROXY))
    if response is not None:
        msg.version_info, msg.response_nonce = response.version_info, response.nonce
    return msg


async def settle() -> None:
    for _ in range(5):  # let every task of the session run until it waits
        await asyncio.sleep(0)


async def initial_sync(h: Harness) -> asyncio.Task[None]:
    h.session.receive(request(CLUSTER, first=True))
    task = asyncio.create_task(h.session.run(h.requests(), h.write))
    await settle()
    for type_url in PUSH_ORDER[1:]:
        h.session.receive(request(type_url))
    responses = await h.wait_written(4)
    await settle()
    for response in responses:
        h.session.receive(request(response.type_url, response))
    return task


async def test_an_ack_while_the_pusher_waits_syncs_at_once() -> None:
    h = Harness(mesh({"a": [8001], "b": [8002]}, route_to="b"))
    task = await initial_sync(h)
    # the last ACK was handled within `receive`: no task ran in between
    assert h.session.synced_generation == h.source.generation
    assert h.syncs == 1
    gen = h.source.set({PROXY.id: mesh({"a": [8001], "b": [8002, 8003]}, route_to="b")})
    [eds] = (await h.wait_written(5))[4:]
    assert eds.type_url == ENDPOINT
    await settle()
    h.session.receive(request(ENDPOINT, eds))
    assert h.session.synced_generation == gen
    assert h.syncs == 2
    await settle()
    assert len(h.written) == 5  # nothing else was sent
    task.cancel()


async def test_an_ack_that_frees_a_response_has_the_pusher_write_it() -> None:
    h = Harness(mesh({"a": [8001], "b": [8002]}, route_to="b"))
    task = await initial_sync(h)
    gen = h.source.set({PROXY.id: mesh({"a": [8001]}, route_to="a", stat_prefix="out2")})
    cds, lds, rds = (await h.wait_written(7))[4:]
    assert [r.type_url for r in (cds, lds, rds)] == [CLUSTER, LISTENER, ROUTE]
    assert len(cds.resources) == 2  # b kept while routes point at it (make before break)
    await settle()
    for response in (cds, lds):
        h.session.receive(request(response.type_url, response))
    await settle()
    assert len(h.written) == 7
    h.session.receive(request(ROUTE, rds))  # routes settled: the CDS without b is owed
    assert h.session.synced_generation != gen
    [final] = (await h.wait_written(8))[7:]
    assert final.type_url == CLUSTER and len(final.resources) == 1
    assert int(final.nonce) > int(rds.nonce)  # planned after the RDS it followed
    await settle()
    assert len(h.written) == 8
    task.cancel()


async def test_a_signal_wakes_its_waiter_and_stays_set_until_cleared() -> None:
    signal = Signal()
    signal.set()
    await asyncio.wait_for(signal.wait(), 1)  # already set: returns at once
    signal.clear()
    waiting = asyncio.create_task(signal.wait())
    await settle()
    assert not waiting.done()
    signal.set()
    await asyncio.wait_for(waiting, 1)
    assert signal.is_set()
    signal.clear()
    assert not signal.is_set()
