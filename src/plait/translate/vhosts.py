"""Route configurations: which VirtualService answers which host and port.

Sidecars get one table (`outbound`) for every HTTP service port in the mesh, with the
domains a caller in the proxy's namespace may use (`reviews:8080` only resolves in the
service's own namespace, as Kubernetes DNS search paths do). The gateway gets one table
per Gateway server port, built from the VirtualServices bound to that Gateway.
"""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from google.protobuf import wrappers_pb2

from plait.api import Gateway, Loaded, VirtualService
from plait.model.registry import Service, service_hostname
from plait.model.snapshot import MESH_GATEWAY, MeshSnapshot
from plait.translate import names
from plait.translate.routes import NO_TIMEOUT, RouteContext, default_route, vs_routes


def service_domains(service: Service, port: int, proxy_namespace: str) -> list[str]:
    """Host[:port] forms a caller can use; the bare host only for port 80.

    The short forms (`name.ns`, `name.ns.svc`, `name`) exist only for Kubernetes Service
    hostnames; a ServiceEntry host is used as written.
    """
    hosts = [service.hostname]
    if service.hostname == service_hostname(service.name, service.namespace):
        hosts += [f"{service.name}.{service.namespace}", f"{service.name}.{service.namespace}.svc"]
        if service.namespace == proxy_namespace:
            hosts.append(service.name)
    domains = [f"{h}:{port}" for h in hosts]
    if port == 80:
        domains += hosts
    return domains


def _gateways_of(vs: VirtualService) -> list[str]:
    ns = vs.metadata.namespace
    return [
        g if "/" in g or g == MESH_GATEWAY else f"{ns}/{g}"
        for g in (vs.spec.gateways or [MESH_GATEWAY])
    ]


def mesh_virtual_services(snapshot: MeshSnapshot) -> dict[str, Loaded]:
    """Hostname → the VirtualService bound to `mesh` for it (first by namespace/name wins)."""
    out: dict[str, Loaded] = {}
    for item in snapshot.virtual_services:
        vs: VirtualService = item.resource  # type: ignore[assignment]
        if MESH_GATEWAY not in _gateways_of(vs):
            continue
        for host in vs.spec.hosts:
            out.setdefault(snapshot.resolve_host(host, vs.metadata.namespace), item)
    return out


def _primary_domains(service: Service, port: int) -> set[str]:
    return {f"{service.hostname}:{port}", *([service.hostname] if port == 80 else [])}


def sidecar_routes(snapshot: MeshSnapshot, proxy_namespace: str) -> route_pb2.RouteConfiguration:
    """One virtual host per HTTP service port.

    Envoy rejects a table in which two virtual hosts share a domain, so a host's own name
    always wins over another service's short alias (a ServiceEntry host `reviews` beside
    the Kubernetes Service `reviews`), and an alias is used once, by the first service.
    """
    by_host = mesh_virtual_services(snapshot)
    config = route_pb2.RouteConfiguration(
        name=names.OUTBOUND_ROUTE, validate_clusters=wrappers_pb2.BoolValue(value=False)
    )
    taken: set[str] = set()
    for service in snapshot.services.values():
        for port in service.ports:
            taken |= _primary_domains(service, port.port)
    for hostname in sorted(snapshot.services):
        service = snapshot.services[hostname]
        for port in service.ports:
            if not port.protocol.is_http:
                continue
            loaded = by_host.get(hostname)
            if loaded is not None:
                vs: VirtualService = loaded.resource  # type: ignore[assignment]
                ctx = RouteContext(snapshot, vs.metadata.namespace, port.port)
                routes = vs_routes(ctx, vs)
            else:
                routes = [default_route(service, port.port)]
            primary = _primary_domains(service, port.port)
            domains = [
                d
                for d in service_domains(service, port.port, proxy_namespace)
                if d in primary or d not in taken
            ]
            taken.update(domains)
            config.virtual_hosts.add(name=f"{hostname}:{port.port}", domains=domains, routes=routes)
    return config


SIDECAR_HEADER = "x-plait-sidecar"


def inbound_routes(app_port: int, proxy_id: str) -> route_pb2.RouteConfiguration:
    """Everything to the app; the request tells the app which sidecar delivered it."""
    return route_pb2.RouteConfiguration(
        name=names.inbound_cluster(app_port),
        request_headers_to_add=[
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=SIDECAR_HEADER, value=proxy_id),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
        ],
        virtual_hosts=[
            rc.VirtualHost(
                name="inbound|http",
                domains=["*"],
                routes=[
                    rc.Route(
                        name="default",
                        match=rc.RouteMatch(prefix="/"),
                        route=rc.RouteAction(
                            cluster=names.inbound_cluster(app_port), timeout=NO_TIMEOUT
                        ),
                    )
                ],
            )
        ],
    )


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
        bound = [g for g in _gateways_of(vs) if g in servers]
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
