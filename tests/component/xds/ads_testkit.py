"""A test ADS client on grpc.aio, and builders of real Envoy resources."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import json_format, struct_pb2

from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind, node_id, to_node_metadata
from plait.translate.resource import ProxyConfig, Resource
from plait.translate.typeurls import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE
from plait.xds import AdsServer

METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
TIMEOUT = 5.0

# --- Envoy resources -----------------------------------------------------------------


def _ads() -> config_source_pb2.ConfigSource:
    source = config_source_pb2.ConfigSource(resource_api_version=config_source_pb2.V3)
    source.ads.SetInParent()
    return source


def cluster(name: str, timeout_ms: int = 1000) -> Resource:
    c = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    c.connect_timeout.FromMilliseconds(timeout_ms)
    c.eds_cluster_config.eds_config.CopyFrom(_ads())
    return Resource.pack(name, c)


def endpoints(name: str, ports: Iterable[int]) -> Resource:
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    group = cla.endpoints.add()
    for port in ports:
        lb = endpoint_components_pb2.LbEndpoint()
        lb.endpoint.address.socket_address.address = "127.0.0.1"
        lb.endpoint.address.socket_address.port_value = port
        group.lb_endpoints.append(lb)
    return Resource.pack(name, cla)


def listener(name: str, port: int, route_name: str, stat_prefix: str = "outbound") -> Resource:
    manager = hcm_pb2.HttpConnectionManager(stat_prefix=stat_prefix)
    manager.rds.route_config_name = route_name
    manager.rds.config_source.CopyFrom(_ads())
    router = manager.http_filters.add(name="envoy.filters.http.router")
    router.typed_config.Pack(router_pb2.Router())
    chain = listener_components_pb2.FilterChain()
    f = chain.filters.add(name="envoy.filters.network.http_connection_manager")
    f.typed_config.Pack(manager)
    lis = listener_pb2.Listener(
        name=name,
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=port)
        ),
        filter_chains=[chain],
    )
    return Resource.pack(name, lis)


def routes(name: str, to_cluster: str) -> Resource:
    rc = route_pb2.RouteConfiguration(name=name)
    vh = rc.virtual_hosts.add(name="all", domains=["*"])
    r = route_components_pb2.Route()
    r.match.prefix = "/"
    r.route.cluster = to_cluster
    vh.routes.append(r)
    return Resource.pack(name, rc)


def mesh(
    clusters: Mapping[str, Sequence[int]],
    route_to: str,
    *,
    timeouts: Mapping[str, int] | None = None,
    stat_prefix: str = "outbound",
) -> ProxyConfig:
    """One outbound listener on 15001 routing everything to `route_to`."""
    res = [cluster(n, (timeouts or {}).get(n, 1000)) for n in clusters]
    res += [endpoints(n, ports) for n, ports in clusters.items()]
    res += [
        listener("outbound", 15001, "outbound-routes", stat_prefix),
        routes("outbound-routes", route_to),
    ]
    return ProxyConfig.of(res)


def sidecar(name: str = "reviews-v1-0") -> Proxy:
    return Proxy(
        id=f"sidecar~{name}.default",
        kind=ProxyKind.SIDECAR,
        workload="reviews-v1",
        service_account="reviews",
        labels=Labels.of({"app": "reviews"}),
        inbound_port=15006,
        outbound_port=15001,
    )


def node_for(proxy: Proxy, metadata: Mapping[str, Any] | None = None) -> base_pb2.Node:
    meta = struct_pb2.Struct()
    json_format.ParseDict(dict(metadata if metadata is not None else to_node_metadata(proxy)), meta)
    return base_pb2.Node(id=proxy.id, metadata=meta)


# --- the client ------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    raw: bytes
    msg: discovery_pb2.DiscoveryResponse

    @property
    def type_url(self) -> str:
        return str(self.msg.type_url)

    @property
    def names(self) -> list[str]:
        return [_name_of(a) for a in self.msg.resources]


def _name_of(any_msg: Any) -> str:
    for cls, field in (
        (cluster_pb2.Cluster, "name"),
        (endpoint_pb2.ClusterLoadAssignment, "cluster_name"),
        (listener_pb2.Listener, "name"),
        (route_pb2.RouteConfiguration, "name"),
    ):
        if any_msg.Is(cls.DESCRIPTOR):
            m = cls()
            any_msg.Unpack(m)
            return str(getattr(m, field))
    raise AssertionError(f"unexpected resource {any_msg.type_url}")


class AdsClient:
    """An xDS client that speaks ADS like Envoy; each step is explicit in the test."""

    def __init__(self, channel: grpc.aio.Channel, node: base_pb2.Node) -> None:
        self._channel = channel
        self.node = node
        self._call = channel.stream_stream(
            METHOD,
            request_serializer=discovery_pb2.DiscoveryRequest.SerializeToString,
            response_deserializer=lambda b: b,
        )()
        self._inbox: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())
        self._sent_node = False
        self.names: dict[str, list[str]] = {}  # current subscription per type
        self.acked: dict[str, str] = {}  # last ACKed version per type
        self.nonces: dict[str, str] = {}  # last received nonce per type

    @classmethod
    def open(cls, port: int, node: base_pb2.Node) -> AdsClient:
        return cls(grpc.aio.insecure_channel(f"127.0.0.1:{port}"), node)

    async def _read(self) -> None:
        try:
            async for raw in self._call:
                await self._inbox.put(raw)
        except BaseException as exc:  # handed to the test through recv()
            await self._inbox.put(exc)
            raise

    async def request(
        self,
        type_url: str,
        names: Sequence[str] = (),
        *,
        version: str | None = None,
        nonce: str = "",
        error: str | None = None,
    ) -> None:
        self.names[type_url] = list(names)
        req = discovery_pb2.DiscoveryRequest(
            type_url=type_url,
            resource_names=list(names),
            response_nonce=nonce,
            version_info=self.acked.get(type_url, "") if version is None else version,
        )
        if not self._sent_node:
            req.node.CopyFrom(self.node)
            self._sent_node = True
        if error is not None:
            req.error_detail.code = 3
            req.error_detail.message = error
        await self._call.write(req)

    async def recv(self, timeout: float = TIMEOUT) -> Received:
        item = await asyncio.wait_for(self._inbox.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        got = Received(item, discovery_pb2.DiscoveryResponse.FromString(item))
        self.nonces[got.type_url] = got.msg.nonce
        return got

    async def recv_types(self, *type_urls: str) -> list[Received]:
        """Receive one response per given type, asserting that order."""
        got = [await self.recv() for _ in type_urls]
        assert [short(r.type_url) for r in got] == [short(t) for t in type_urls]
        return got

    async def expect_silence(self, seconds: float = 0.5) -> None:
        """Nothing arrives within `seconds` (a bounded wait, for "must not send")."""
        try:
            item = await asyncio.wait_for(self._inbox.get(), seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message: {_describe(item)}")

    async def ack(self, resp: Received, names: Sequence[str] | None = None) -> None:
        t = resp.type_url
        self.acked[t] = resp.msg.version_info
        await self.request(
            t, self.names.get(t, []) if names is None else names, nonce=resp.msg.nonce
        )

    async def nack(self, resp: Received, message: str) -> None:
        t = resp.type_url
        await self.request(t, self.names.get(t, []), nonce=resp.msg.nonce, error=message)

    async def subscribe_all(self, config: ProxyConfig) -> None:
        """Request every type as Envoy would after learning the names from CDS/LDS."""
        for t in PUSH_ORDER:
            names = [] if t in (CLUSTER, LISTENER) else sorted(config.resources(t))
            await self.request(t, names)

    async def initial_sync(self, config: ProxyConfig) -> list[Received]:
        await self.subscribe_all(config)
        got = await self.recv_types(*PUSH_ORDER)
        for r in got:
            await self.ack(r)
        return got

    async def status_code(self) -> grpc.StatusCode:
        code: grpc.StatusCode = await asyncio.wait_for(self._call.code(), TIMEOUT)
        return code

    async def details(self) -> str:
        return str(await asyncio.wait_for(self._call.details(), TIMEOUT))

    async def close(self) -> None:
        self._call.cancel()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._channel.close()


ClientFactory = Callable[..., AdsClient]
"""The `connect` fixture: `connect(proxy=None, node=None) -> AdsClient`."""

SHORT = {CLUSTER: "cds", ENDPOINT: "eds", LISTENER: "lds", ROUTE: "rds"}


def short(type_url: str) -> str:
    return SHORT.get(type_url, type_url)


def _describe(item: bytes | BaseException) -> str:
    if isinstance(item, BaseException):
        return repr(item)
    msg = discovery_pb2.DiscoveryResponse.FromString(item)
    return f"{short(msg.type_url)} version={msg.version_info} nonce={msg.nonce}"


async def eventually(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait for `predicate` to hold, checking every few milliseconds, within `timeout`."""

    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def proxy(name: str, port: int) -> Proxy:
    """A sidecar of the default namespace named like a replica (`frontend-0`), with its
    inbound, app and outbound ports at `port`, `port + 1` and `port + 2`."""
    return Proxy(
        id=node_id(ProxyKind.SIDECAR, name, "default"),
        kind=ProxyKind.SIDECAR,
        workload=name.rsplit("-", 1)[0],
        labels=Labels.of({"app": name.split("-")[0]}),
        inbound_port=port,
        app_port=port + 1,
        outbound_port=port + 2,
    )


async def counted(server: AdsServer, responses: int, timeout: float = 5.0) -> None:
    """Wait until the server has counted `responses` pushes: it counts one once its write
    completed, which can be after the client read it."""
    async with asyncio.timeout(timeout):
        while sum(server.counters.pushes.values()) < responses:
            await asyncio.sleep(0.01)
    assert sum(server.counters.pushes.values()) == responses, server.counters.pushes
