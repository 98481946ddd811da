"""The sidecar's outbound route table: which VirtualService answers which host and port.

Sidecars get one table (`outbound`) for every HTTP service port in the mesh, with the
domains a caller in the proxy's namespace may use (`reviews:8080` only resolves in the
service's own namespace, as Kubernetes DNS search paths do). Gateway tables are in
`gateway.py`, the inbound table in `inbound.py`.
"""

from __future__ import annotations

from collections.abc import Mapping

from envoy.config.route.v3 import route_components_pb2, route_pb2
from google.protobuf import wrappers_pb2

from plait.api import Loaded, VirtualService
from plait.model.labels import Labels
from plait.model.proxy import Proxy
from plait.model.registry import Service, service_hostname
from plait.model.scope import Scope
from plait.model.snapshot import MeshSnapshot
from plait.translate import egress, headless, names
from plait.translate.routes import RouteContext, default_route, vs_routes

MAX_DIRECT_RESPONSE_BODY = 1024 * 1024
"""Istio's limit for `directResponse` bodies (Envoy's own default is 4 KiB)."""


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


def source_selectors(snapshot: MeshSnapshot) -> tuple[Labels, ...]:
    """Every distinct `sourceLabels` selector of an HTTP match (delegates included)."""
    found: set[Labels] = set()
    for item in snapshot.virtual_services:
        for rule in item.resource.spec.http:
            found.update(Labels.of(m.source_labels) for m in rule.match if m.source_labels)
    return tuple(sorted(found, key=lambda labels: labels.items_))


def table_key(proxy: Proxy, selectors: tuple[Labels, ...]) -> tuple[str, tuple[bool, ...]]:
    """Proxies with the same key get the same sidecar table: it depends on the caller only
    through its namespace and which `sourceLabels` selectors its labels satisfy."""
    return proxy.namespace, tuple(proxy.labels.matches(s) for s in selectors)


def mesh_virtual_services(snapshot: MeshSnapshot) -> Mapping[str, Loaded[VirtualService]]:
    """Hostname → the VirtualService bound to `mesh` for it (first by namespace/name wins)."""
    return snapshot.routing.mesh_by_host


def _primary_domains(service: Service, port: int) -> set[str]:
    return {f"{service.hostname}:{port}", *([service.hostname] if port == 80 else [])}


RouteMemo = dict[tuple[int, int], list[route_components_pb2.Route]]
"""Routes of a VirtualService (by `id` of its `Loaded`) for a port, made once per
snapshot for every table that has it (`sidecar_routes`)."""


def _source_free(vs: VirtualService) -> bool:
    """Whether the routes of `vs` do not depend on the calling proxy (no `sourceLabels`
    or `sourceNamespace` match, no delegate that might have one)."""
    return all(
        rule.delegate is None
        and not any(m.source_labels or m.source_namespace is not None for m in rule.match)
        for rule in vs.spec.http
    )


def _visible_virtual_services(
    snapshot: MeshSnapshot, scope: Scope | None
) -> Mapping[str, Loaded[VirtualService]]:
    by_host = mesh_virtual_services(snapshot)
    if scope is not None:
        by_name = snapshot.routing.by_name
        by_host = {h: by_name[k] for h, k in scope.virtual_services.items() if k in by_name}
    return by_host


def _port_routes(
    snapshot: MeshSnapshot,
    by_host: Mapping[str, Loaded[VirtualService]],
    service: Service,
    port: int,
    source: Proxy | None,
    memo: RouteMemo | None = None,
) -> list[route_pb2.Route]:
    """The routes of one host port: its VirtualService's rules (kept in `memo` when they
    do not depend on the caller), else its default route."""
    loaded = by_host.get(service.hostname)
    if loaded is not None:
        vs = loaded.resource
        key = (id(loaded), port)
        found = memo.get(key) if memo is not None else None
        if found is None:
            ctx = RouteContext(snapshot, vs.metadata.namespace, port, source=source)
            found = vs_routes(ctx, vs)
            if memo is not None and _source_free(vs):
                memo[key] = found
        return found
    rules = snapshot.host_rules(service.hostname)
    policy = rules.policy_for(port) if rules is not None else None
    return [default_route(service, port, policy)]


def _table(name: str) -> route_pb2.RouteConfiguration:
    return route_pb2.RouteConfiguration(
        name=name,
        validate_clusters=wrappers_pb2.BoolValue(value=False),
        max_direct_response_body_size_bytes=wrappers_pb2.UInt32Value(
            value=MAX_DIRECT_RESPONSE_BODY
        ),
    )


def headless_routes(
    snapshot: MeshSnapshot,
    hostname: str,
    port: int,
    source: Proxy | None = None,
    scope: Scope | None = None,
) -> route_pb2.RouteConfiguration:
    """A headless host port's table for captured sidecars (`headless`): the routes of its
    virtual host under `*`, since the connection's destination, a pod of the host, already
    chose it (a request by pod IP names no service in its Host); routes to the host itself
    go to the pod the app chose (its ORIGINAL_DST clusters)."""
    service = snapshot.services[hostname]
    table = _table(names.headless_route(hostname, port))
    routes = _port_routes(
        snapshot, _visible_virtual_services(snapshot, scope), service, port, source
    )
    table.virtual_hosts.add(name=f"{hostname}:{port}", domains=["*"], routes=routes)
    headless.to_original_dst(table, hostname)
    return table


def sidecar_routes(
    snapshot: MeshSnapshot,
    proxy_namespace: str,
    source: Proxy | None = None,
    scope: Scope | None = None,
    memo: RouteMemo | None = None,
) -> route_pb2.RouteConfiguration:
    """One virtual host per HTTP service port, for callers in `proxy_namespace` (`source`
    is the calling proxy, for `sourceLabels` / `sourceNamespace` matches); with a `scope`
    (`model.scope`), only the host ports it routes, with the VirtualServices it sees, and
    its outbound traffic policy for everything else.

    `memo` (the caller's, for one snapshot) keeps the routes of the VirtualServices
    whose routes do not depend on the caller, so that the tables of many scopes that
    route to one host make its routes once.

    Envoy rejects a table in which two virtual hosts share a domain, so a host's own name
    always wins over another service's short alias (a ServiceEntry host `reviews` beside
    the Kubernetes Service `reviews`), and an alias is used once, by the first service.
    """
    by_host = _visible_virtual_services(snapshot, scope)
    services = snapshot.services
    if scope is not None:
        services = {h: services[h] for h in scope.clusters if h in services}
    config = _table(names.OUTBOUND_ROUTE)
    taken: set[str] = set()
    for service in services.values():
        for port in service.ports:
            taken |= _primary_domains(service, port.port)
    for hostname in sorted(services):
        service = services[hostname]
        for port in service.ports:
            if not port.protocol.is_http:
                continue
            if scope is not None and not scope.routes_port(hostname, port.port):
                continue
            routes = _port_routes(snapshot, by_host, service, port.port, source, memo)
            primary = _primary_domains(service, port.port)
            domains = [
                d
                for d in service_domains(service, port.port, proxy_namespace)
                if d in primary or d not in taken
            ]
            taken.update(domains)
            config.virtual_hosts.add(name=f"{hostname}:{port.port}", domains=domains, routes=routes)
    catch_all = egress.catch_all_vhost(snapshot, scope.outbound_mode if scope is not None else None)
    if catch_all is not None:
        config.virtual_hosts.append(catch_all)
    return config
