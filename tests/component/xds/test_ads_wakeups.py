"""A new generation wakes only the streams whose proxy's configuration it changed."""

from __future__ import annotations

from collections import Counter

from ads_testkit import AdsClient, ClientFactory, counted, mesh, sidecar

from plait.model.proxy import Proxy
from plait.translate.resource import ProxyConfig
from plait.translate.typeurls import ENDPOINT, PUSH_ORDER
from plait.xds import AdsServer, StaticConfigSource

A, B = sidecar("a-0"), sidecar("b-0")


class Counted:
    """Configs by node id, and how often each was looked up."""

    def __init__(self, configs: dict[str, ProxyConfig], looked_up: Counter[str] | None = None):
        self.configs = configs
        self.looked_up: Counter[str] = Counter() if looked_up is None else looked_up

    def then(self, configs: dict[str, ProxyConfig]) -> Counted:
        """Other configs, counted with these."""
        return Counted(configs, self.looked_up)

    def __call__(self, proxy: Proxy) -> ProxyConfig:
        self.looked_up[proxy.id] += 1
        return self.configs[proxy.id]


async def synced_pair(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory, configs: Counted
) -> AdsClient:
    """A and B connected and in sync with `configs`; A's client."""
    gen = source.set(configs)
    clients = []
    for proxy in (A, B):
        client = connect(proxy)
        await client.subscribe_all(configs.configs[proxy.id])
        for r in await client.recv_types(*PUSH_ORDER):
            await client.ack(r)
        clients.append(client)
    assert await server.wait_synced(gen, timeout=5, min_proxies=2)
    return clients[0]


async def test_a_stream_whose_config_is_unchanged_is_not_woken(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    first = {A.id: mesh({"a": [8001]}, route_to="a"), B.id: mesh({"a": [8001]}, route_to="a")}
    configs = Counted(first)
    client_of_a = await synced_pair(server, source, connect, configs)
    await counted(server, 2 * len(PUSH_ORDER))  # what the two clients read
    pushes = dict(server.counters.pushes)

    configs = configs.then({**first, A.id: mesh({"a": [8001, 8003]}, route_to="a")})  # A's EDS
    gen = source.set(configs)
    looked_up = configs.looked_up[B.id]  # (set() compares with the old configs)

    [eds] = await client_of_a.recv_types(ENDPOINT)
    await client_of_a.ack(eds)
    assert await server.wait_synced(gen, timeout=5, min_proxies=2)
    assert configs.looked_up[B.id] == looked_up  # B's stream did not look
    assert server.counters.pushes["eds"] == pushes["eds"] + 1  # A's alone
    by_id = {s.proxy.id: s for s in server.statuses()}
    assert by_id[A.id].synced_generation == gen
    assert by_id[B.id].synced_generation == gen  # B runs gen's config without a push


async def test_a_generation_that_changes_nobody_still_ends_wait_synced(
    server: AdsServer, source: StaticConfigSource, connect: ClientFactory
) -> None:
    first = {A.id: mesh({"a": [8001]}, route_to="a"), B.id: mesh({"b": [8002]}, route_to="b")}
    configs = Counted(first)
    await synced_pair(server, source, connect, configs)
    await counted(server, 2 * len(PUSH_ORDER))  # what the two clients read
    pushes = dict(server.counters.pushes)
    configs = configs.then({A.id: mesh({"a": [8001]}, route_to="a"), B.id: first[B.id]})

    gen = source.set(configs)  # equal content in new objects: nobody is owed anything
    looked_up = dict(configs.looked_up)  # (set() compares with the old configs)
    assert await server.wait_synced(gen, timeout=5, min_proxies=2)
    assert configs.looked_up == looked_up  # no stream looked
    assert server.counters.pushes == pushes
    assert {s.synced_generation for s in server.statuses()} == {gen}
