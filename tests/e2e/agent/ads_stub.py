"""A minimal ADS server for agent e2e tests (the real control plane lives in plait.xds).

State of the world only. Every stream answers the latest request of each type with the
resources set by `set_resources` (or holds it until some are set), records the node of
each stream, ACKs and NACKs. Enough for one Envoy to become ready; nothing more.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"


def _any(message: Message) -> any_pb2.Any:
    wrapped = any_pb2.Any()
    wrapped.Pack(message)
    return wrapped


def direct_response_listener(port: int, status: int = 200, body: str = "ok") -> Any:
    """A listener on 127.0.0.1:port whose only route answers `status` with `body`."""
    route = route_components_pb2.Route(
        match=route_components_pb2.RouteMatch(prefix="/"),
        direct_response=route_components_pb2.DirectResponseAction(
            status=status, body=base_pb2.DataSource(inline_string=body)
        ),
    )
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix="stub",
        route_config=route_pb2.RouteConfiguration(
            name="stub",
            virtual_hosts=[
                route_components_pb2.VirtualHost(name="all", domains=["*"], routes=[route])
            ],
        ),
        http_filters=[
            hcm_pb2.HttpFilter(
                name="envoy.filters.http.router", typed_config=_any(router_pb2.Router())
            )
        ],
    )
    return listener_pb2.Listener(
        name=f"stub_{port}",
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=port)
        ),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    listener_components_pb2.Filter(
                        name="envoy.filters.network.http_connection_manager",
                        typed_config=_any(hcm),
                    )
                ]
            )
        ],
    )


@dataclass
class StubAds(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    """ADS servicer; `resources` None means "hold every request" (serve nothing)."""

    resources: dict[str, list[Any]] | None = None
    nodes: list[Any] = field(default_factory=list)
    acks: list[str] = field(default_factory=list)
    nacks: list[str] = field(default_factory=list)
    _version: int = 0
    _nonces: itertools.count[int] = field(default_factory=itertools.count)
    _wakers: set[asyncio.Event] = field(default_factory=set)

    def set_resources(self, resources: dict[str, Sequence[Any]]) -> None:
        """Serve these (type URL → messages) to every stream from now on."""
        self.resources = {t: list(ms) for t, ms in resources.items()}
        self._version += 1
        for wake in self._wakers:
            wake.set()

    async def StreamAggregatedResources(  # noqa: N802 (gRPC method name)
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> None:
        wanted: set[str] = set()
        sent: dict[str, int] = {}
        wake = asyncio.Event()
        self._wakers.add(wake)

        async def read() -> None:
            async for req in request_iterator:
                if req.HasField("node") and req.node.id:
                    self.nodes.append(req.node)
                if req.error_detail.message:
                    self.nacks.append(req.error_detail.message)
                elif req.response_nonce:
                    self.acks.append(req.type_url)
                wanted.add(req.type_url)
                wake.set()

        reader = asyncio.create_task(read())
        try:
            while not reader.done():
                waker = asyncio.create_task(wake.wait())
                await asyncio.wait({reader, waker}, return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
                wake.clear()
                for type_url in (CLUSTER, LISTENER):
                    if self.resources is None or type_url not in wanted:
                        continue
                    if sent.get(type_url) == self._version:
                        continue
                    sent[type_url] = self._version
                    await context.write(
                        discovery_pb2.DiscoveryResponse(
                            version_info=str(self._version),
                            type_url=type_url,
                            nonce=str(next(self._nonces)),
                            resources=[_any(m) for m in self.resources.get(type_url, [])],
                        )
                    )
        finally:
            self._wakers.discard(wake)
            reader.cancel()


class AdsServer:
    """A grpc.aio server for a StubAds on 127.0.0.1 and a free port."""

    def __init__(self, servicer: StubAds) -> None:
        self.servicer = servicer
        self.server = grpc.aio.server()
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(servicer, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    async def __aenter__(self) -> AdsServer:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop(grace=None)
