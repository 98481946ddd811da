"""HTTP routes: VirtualService `http` rules → Envoy Routes.

The same translation serves sidecar tables (gateway `mesh`, the calling proxy known) and
gateway tables (a named Gateway, no calling proxy); only the virtual hosts differ
(`vhosts.py`, `gateway.py`). Rules go in order, delegating rules expanded in place
(`delegate.py`); each match of a rule (OR) becomes one Envoy route; matches that cannot
apply here (`match.applies`: gateways, source labels and namespace, port) are left out,
and so is everything after a catch-all route, which nothing could reach.

The per-route parts live in their own modules: `match` (RouteMatch), `actions` (forward,
redirect, direct response, rewrite), `headers`, `mirror`, `resilience` (timeout and
retries), `faults` and `cors` (per-route config of the idle filters every HCM carries).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from envoy.config.route.v3 import route_components_pb2 as rc

from plait.api import VirtualService
from plait.api.destinationrule import TrafficPolicy
from plait.api.virtualservice import Destination, HTTPMatchRequest, HTTPRoute
from plait.model.labels import Labels
from plait.model.proxy import Proxy
from plait.model.registry import Service
from plait.model.snapshot import MESH_GATEWAY, MeshSnapshot
from plait.translate import actions, delegate, faults, httpfilters, names, resilience
from plait.translate.cors import cors_policy
from plait.translate.headers import header_ops
from plait.translate.match import applies, is_catch_all, route_match
from plait.translate.resilience import (
    DEFAULT_RETRY_ON,
    NO_TIMEOUT,
    default_retry_policy,
    duration,
)

__all__ = [
    "DEFAULT_RETRY_ON",
    "NO_TIMEOUT",
    "RouteContext",
    "default_retry_policy",
    "default_route",
    "destination_cluster",
    "duration",
    "vs_routes",
]


@dataclass(frozen=True)
class RouteContext:
    """Where a VirtualService's rules are being translated.

    `gateway` is `mesh` for sidecar tables, else the Gateway (`ns/name`) whose table is
    being built; `source` is the calling proxy for sidecar tables (for `sourceLabels` and
    `sourceNamespace` matches), None for gateway tables.
    """

    snapshot: MeshSnapshot
    namespace: str  # the VirtualService's namespace, for short host names
    port: int | None  # the port of the virtual host being built (sidecars), if any
    gateway: str = MESH_GATEWAY
    source: Proxy | None = None


def destination_port(ctx: RouteContext, destination: Destination) -> tuple[str, int] | None:
    """(hostname, port) a Destination names, or None when its host or port is unknown.

    Without `port`, a single-port service's port, else the port being routed (Istio).
    """
    host = ctx.snapshot.resolve_host(destination.host, ctx.namespace)
    service = ctx.snapshot.service(host)
    if service is None:
        return None
    number = destination.port.number if destination.port is not None else None
    if number is None:
        if len(service.ports) == 1:
            number = service.ports[0].port
        elif ctx.port is not None and service.port(ctx.port) is not None:
            number = ctx.port
        else:
            return None
    if service.port(number) is None:
        return None
    return service.hostname, number


def destination_cluster(ctx: RouteContext, destination: Destination) -> str | None:
    """The cluster a Destination names, or None when its host or port cannot be resolved."""
    found = destination_port(ctx, destination)
    if found is None:
        return None
    return names.outbound_cluster(found[0], found[1], destination.subset or "")


def _resolver(ctx: RouteContext) -> actions.Resolver:
    def cluster_of(destination: Destination) -> str:
        cluster = destination_cluster(ctx, destination)
        if cluster is not None:
            return cluster
        # Unknown destination: Envoy answers 503 (no cluster), as Istio does (NC).
        return names.outbound_cluster(
            ctx.snapshot.resolve_host(destination.host, ctx.namespace),
            ctx.port or 0,
            destination.subset or "",
        )

    def policy_of(destination: Destination) -> TrafficPolicy | None:
        found = destination_port(ctx, destination)
        rules = ctx.snapshot.host_rules(found[0]) if found is not None else None
        if rules is None or found is None:
            return None
        return rules.policy_for(found[1], destination.subset or "")

    return actions.Resolver(cluster_of, policy_of)


def _route(
    ctx: RouteContext, rule: HTTPRoute, match: HTTPMatchRequest | None, name: str
) -> rc.Route | None:
    route = rc.Route(name=name, match=route_match(match))
    if match is not None and match.stat_prefix:
        route.stat_prefix = match.stat_prefix
    ops = header_ops(rule.headers)
    ops.apply_to(route)
    if rule.redirect is not None:
        redirect = actions.redirect_action(rule.redirect, ctx.port)
        if redirect is None:
            return None
        route.redirect.CopyFrom(redirect)
    elif rule.direct_response is not None:
        route.direct_response.CopyFrom(actions.direct_response(rule.direct_response))
    else:
        action = actions.route_action(rule, route, ops.authority, _resolver(ctx))
        if action is None:
            return None
        route.route.CopyFrom(action)
    if rule.fault is not None:
        fault = faults.http_fault(rule.fault)
        if fault is not None:
            route.typed_per_filter_config[httpfilters.FAULT].Pack(fault)
    if rule.cors_policy is not None:
        route.typed_per_filter_config[httpfilters.CORS].Pack(cors_policy(rule.cors_policy))
    return route


def _source(ctx: RouteContext) -> tuple[Labels, str] | None:
    return (ctx.source.labels, ctx.source.namespace) if ctx.source is not None else None


def vs_routes(ctx: RouteContext, vs: VirtualService) -> list[rc.Route]:
    """Rules in order; each match of a rule (OR) that can apply here is one Envoy route."""
    out: list[rc.Route] = []
    source = _source(ctx)
    for scoped in delegate.http_rules(ctx.snapshot, vs):
        rule_ctx = replace(ctx, namespace=scoped.namespace)
        matches: list[HTTPMatchRequest | None] = list(scoped.rule.match) or [None]
        for j, match in enumerate(matches):
            if not applies(match, gateway=ctx.gateway, port=ctx.port, source=source):
                continue
            route = _route(rule_ctx, scoped.rule, match, f"{scoped.name}/match[{j}]")
            if route is None:
                continue
            out.append(route)
            if is_catch_all(route.match):
                return out
    return out


_NO_RULE = HTTPRoute.model_construct()  # no timeout, no retries: defaults apply


def default_route(service: Service, port: int, policy: TrafficPolicy | None = None) -> rc.Route:
    """A service with no VirtualService: everything to its one cluster, with Istio's default
    retries, or the DestinationRule's plait extension `retryPolicy` / `timeout` if set."""
    action = rc.RouteAction(cluster=names.outbound_cluster(service.hostname, port))
    resilience.apply(action, _NO_RULE, policy)
    return rc.Route(name="default", match=rc.RouteMatch(prefix="/"), route=action)
