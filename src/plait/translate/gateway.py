"""Gateway route tables: one per Gateway server port, from the VirtualServices bound to it."""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from google.protobuf import wrappers_pb2

from plait.api import Gateway, VirtualService
from plait.model.snapshot import MeshSnapshot
from plait.translate import names
from plait.translate.routes import RouteContext, vs_routes
from plait.translate.vhosts import gateways_of


def _host_matches(server_host: str, vs_host: str) -> bool:
    server_host = server_host.split("/", 1)[-1]
    if server_host == "*" or server_host == vs_host:
        return True
    if server_host.startswith("*."):
        return vs_host.endswith(server_host[1:]) or vs_host == "*"
    return vs_host == "*"


def gateway_ports(snapshot: MeshSnapshot) -> list[int]:
    """Every HTTP server port of every Gateway, in first-seen order."""
    seen: list[int] = []
    for item in snapshot.gateways:
        gw: Gateway = item.resource  # type: ignore[assignment]
        for server in gw.spec.servers:
            if (
                server.port.protocol.upper() in ("HTTP", "HTTP2", "GRPC")
                and server.port.number not in seen
            ):
                seen.append(server.port.number)
    return seen


def _servers_on(snapshot: MeshSnapshot, port: int) -> dict[str, list[str]]:
    """Gateway key (ns/name) → server hosts on this port."""
    out: dict[str, list[str]] = {}
    for item in snapshot.gateways:
        gw: Gateway = item.resource  # type: ignore[assignment]
        key = f"{gw.metadata.namespace}/{gw.metadata.name}"
        for server in gw.spec.servers:
            if server.port.number == port:
                out.setdefault(key, []).extend(server.hosts)
    return out


def gateway_routes(snapshot: MeshSnapshot, port: int) -> route_pb2.RouteConfiguration:
    servers = _servers_on(snapshot, port)
    vhosts: dict[str, rc.VirtualHost] = {}
    for item in snapshot.virtual_services:
        vs: VirtualService = item.resource  # type: ignore[assignment]
        bound = [g for g in gateways_of(vs) if g in servers]
        if not bound:
            continue
        hosts = [
            h for h in vs.spec.hosts if any(_host_matches(s, h) for g in bound for s in servers[g])
        ]
        routes = vs_routes(RouteContext(snapshot, vs.metadata.namespace, None), vs)
        for host in hosts:
            vhost = vhosts.get(host)
            if vhost is None:
                vhost = vhosts[host] = rc.VirtualHost(name=f"{host}:{port}", domains=[host])
            vhost.routes.extend(routes)
    config = route_pb2.RouteConfiguration(
        name=names.gateway_route(port), validate_clusters=wrappers_pb2.BoolValue(value=False)
    )
    config.virtual_hosts.extend(vhosts[h] for h in _ordered(vhosts))
    return config


def _ordered(hosts: Iterable[str]) -> list[str]:
    return sorted(hosts, key=lambda h: (h == "*", h))
