"""VirtualService `tcp` and `tls` routes for a captured sidecar's TCP service listeners.

Istio applies the first `spec.tcp` rule of the VirtualService bound to `mesh` for the
host whose match fits the connection (no match: every connection); its `route` splits
connections by `weight` over destinations (host, port, subset): a lone destination takes
every connection whatever its weight, weight-0 ones among several are left out (as for
`http` routes, `actions`). Match attributes known
when the proxy's config is built are applied: `port`, `sourceLabels`, `sourceNamespace`
and `gateways` (`mesh` or none). `destinationSubnets` and `sourceSubnet` need a filter
chain per address range and are not applied yet: a rule that uses them is skipped, so
it never takes connections it was not meant for.

`tls` rules (TLS and HTTPS ports, passed through: the sidecar reads the SNI and routes,
the app's TLS is end to end) become one filter chain per rule, matched by `sniHosts`
(Envoy's `server_names`, `*.example.com` wildcards included), in rule order; a
connection no rule matches goes to the service itself. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from plait.api.virtualservice import (
    L4MatchAttributes,
    RouteDestination,
    TCPRoute,
    TLSMatchAttributes,
)
from plait.model.proxy import Proxy
from plait.model.snapshot import MESH_GATEWAY, MeshSnapshot
from plait.translate.routes import RouteContext, destination_cluster

WeightedClusters = tuple[tuple[str, int], ...]
SniRoutes = tuple[tuple[tuple[str, ...], WeightedClusters], ...]


def _fits(match: L4MatchAttributes | TLSMatchAttributes, port: int, proxy: Proxy) -> bool:
    if match.destination_subnets or getattr(match, "source_subnet", None):
        return False
    if match.port is not None and match.port != port:
        return False
    if match.gateways and MESH_GATEWAY not in match.gateways:
        return False
    if match.source_namespace is not None and match.source_namespace != proxy.namespace:
        return False
    return all(proxy.labels.get(k) == v for k, v in match.source_labels.items())


def _applies(rule: TCPRoute, port: int, proxy: Proxy) -> bool:
    return not rule.match or any(_fits(m, port, proxy) for m in rule.match)


def tcp_route(snapshot: MeshSnapshot, host: str, port: int, proxy: Proxy) -> WeightedClusters:
    """The weighted clusters of the first `tcp` rule for (host, port) from `proxy`; empty
    when no VirtualService rule applies (the service's own cluster is used)."""
    found = snapshot.routing.mesh_by_host.get(host)
    if found is None:
        return ()
    vs = found.resource
    ctx = RouteContext(snapshot, vs.metadata.namespace, port, source=proxy)
    for rule in vs.spec.tcp:
        if not _applies(rule, port, proxy):
            continue
        return _weighted(ctx, rule.route)
    return ()


def _weighted(ctx: RouteContext, route: Sequence[RouteDestination]) -> WeightedClusters:
    dests = route if len(route) == 1 else [d for d in route if d.weight]
    out = []
    for dest in dests:
        cluster = destination_cluster(ctx, dest.destination)
        if cluster is None:
            continue  # an unknown host or port: no traffic for it, as in Istio
        out.append((cluster, dest.weight or 1))
    return tuple(out)


def tls_routes(snapshot: MeshSnapshot, host: str, port: int, proxy: Proxy) -> SniRoutes:
    """(SNI names, weighted clusters) per `tls` rule for (host, port) from `proxy`."""
    found = snapshot.routing.mesh_by_host.get(host)
    if found is None:
        return ()
    vs = found.resource
    ctx = RouteContext(snapshot, vs.metadata.namespace, port, source=proxy)
    out = []
    for rule in vs.spec.tls:
        names = tuple(sorted({n for m in rule.match if _fits(m, port, proxy) for n in m.sni_hosts}))
        clusters = _weighted(ctx, rule.route)
        if names and clusters:
            out.append((names, clusters))
    return tuple(out)
