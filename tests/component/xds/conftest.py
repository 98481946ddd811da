"""Fixtures: an ADS server on 127.0.0.1:0 over a StaticConfigSource, and test clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from ads_testkit import AdsClient, ClientFactory, node_for, sidecar
from envoy.config.core.v3 import base_pb2

from plait.model.proxy import Proxy
from plait.xds import AdsServer, StaticConfigSource


@pytest.fixture
def source() -> StaticConfigSource:
    return StaticConfigSource()


@pytest.fixture
async def server(source: StaticConfigSource) -> AsyncIterator[AdsServer]:
    ads = AdsServer(source)
    await ads.start("127.0.0.1", 0)
    yield ads
    await ads.stop(0)


@pytest.fixture
async def connect(server: AdsServer) -> AsyncIterator[ClientFactory]:
    """Open a client for a proxy (default: a sidecar); every client is closed afterwards."""
    clients: list[AdsClient] = []

    def open_client(proxy: Proxy | None = None, node: base_pb2.Node | None = None) -> AdsClient:
        assert server.port is not None
        node = node if node is not None else node_for(proxy or sidecar())
        client = AdsClient.open(server.port, node)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()
