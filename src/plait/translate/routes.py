"""HTTP routes: VirtualService rules → Envoy Routes, and the virtual hosts that hold them.

The same rule translation serves sidecars (hosts bound to the `mesh` gateway) and the
ingress gateway (hosts bound to a named Gateway); only the virtual hosts differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from plait.api import Duration, VirtualService
from plait.api.common import StringMatch
from plait.api.virtualservice import Destination, HTTPMatchRequest, HTTPRetry, HTTPRoute
from plait.model.proxy import Proxy
from plait.model.registry import Service
from plait.model.snapshot import MESH_GATEWAY, MeshSnapshot
from plait.translate import names

NO_TIMEOUT = duration_pb2.Duration(seconds=0)
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"


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


def default_retry_policy() -> rc.RetryPolicy:
    """Istio's retry policy when a route sets none: 2 attempts on connection-level failures."""
    policy = rc.RetryPolicy(
        retry_on=DEFAULT_RETRY_ON,
        num_retries=wrappers_pb2.UInt32Value(value=2),
        retriable_status_codes=[503],
        host_selection_retry_max_attempts=5,
    )
    pred = policy.retry_host_predicate.add(name="envoy.retry_host_predicates.previous_hosts")
    pred.typed_config.Pack(previous_hosts_pb2.PreviousHostsPredicate())
    return policy


def duration(value: Duration) -> duration_pb2.Duration:
    seconds, nanos = value.seconds_nanos()
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


def _retry_policy(retries: HTTPRetry | None) -> rc.RetryPolicy | None:
    if retries is None:
        return default_retry_policy()
    if not retries.attempts:
        return None
    policy = default_retry_policy()
    policy.num_retries.value = retries.attempts
    if retries.per_try_timeout:
        policy.per_try_timeout.CopyFrom(duration(retries.per_try_timeout))
    retry_on = retries.retry_on
    if retry_on:
        conditions, codes = [], []
        for part in (p.strip() for p in retry_on.split(",") if p.strip()):
            if part.isdigit():
                codes.append(int(part))
            else:
                conditions.append(part)
        if codes and "retriable-status-codes" not in conditions:
            conditions.append("retriable-status-codes")
        policy.retry_on = ",".join(conditions)
        del policy.retriable_status_codes[:]
        policy.retriable_status_codes.extend(codes)
    return policy


def _string_matcher(m: StringMatch) -> string_pb2.StringMatcher:
    if m.exact is not None:
        return string_pb2.StringMatcher(exact=m.exact)
    if m.prefix is not None:
        return string_pb2.StringMatcher(prefix=m.prefix)
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=m.regex or ""))


def _route_match(match: HTTPMatchRequest | None) -> rc.RouteMatch:
    out = rc.RouteMatch()
    uri = match.uri if match is not None else None
    if uri is None:
        out.prefix = "/"
    elif uri.exact is not None:
        out.path = uri.exact
    elif uri.prefix is not None:
        out.prefix = uri.prefix
    else:
        out.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=uri.regex or ""))
    if match is None:
        return out
    for name, sm in sorted(match.headers.items()):
        out.headers.add(name=name.lower(), string_match=_string_matcher(sm))
    if match.method is not None:
        out.headers.add(name=":method", string_match=_string_matcher(match.method))
    return out


def destination_cluster(ctx: RouteContext, destination: Destination) -> str | None:
    """The cluster a Destination names, or None when its host or port cannot be resolved."""
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
    return names.outbound_cluster(service.hostname, number, destination.subset or "")


def _route_action(ctx: RouteContext, rule: HTTPRoute) -> rc.RouteAction | None:
    dests = list(rule.route)
    if not dests:
        return None
    action = rc.RouteAction(timeout=NO_TIMEOUT)
    if rule.timeout:
        action.timeout.CopyFrom(duration(rule.timeout))
    retry = _retry_policy(rule.retries)
    if retry is not None:
        action.retry_policy.CopyFrom(retry)
    clusters: list[tuple[str, int]] = []
    for d in dests:
        cluster = destination_cluster(ctx, d.destination)
        # A lone destination takes all traffic whatever its weight, as in Istio.
        weight = 100 if len(dests) == 1 else (d.weight or 0)
        if cluster is None:
            # Unknown destination: Envoy answers 503 (no cluster), as Istio does (NC).
            cluster = names.outbound_cluster(
                ctx.snapshot.resolve_host(d.destination.host, ctx.namespace),
                ctx.port or 0,
                d.destination.subset or "",
            )
        if weight > 0:
            clusters.append((cluster, weight))
    if not clusters:
        return None
    if len(clusters) == 1:
        action.cluster = clusters[0][0]
    else:
        action.weighted_clusters.clusters.extend(
            rc.WeightedCluster.ClusterWeight(name=c, weight=wrappers_pb2.UInt32Value(value=w))
            for c, w in clusters
        )
    return action


def vs_routes(ctx: RouteContext, vs: VirtualService) -> list[rc.Route]:
    """Rules in order; each match of a rule (OR) becomes one Envoy route."""
    out: list[rc.Route] = []
    for i, rule in enumerate(vs.spec.http):
        action = _route_action(ctx, rule)
        if action is None:
            continue
        matches: Sequence[HTTPMatchRequest | None] = list(rule.match) or [None]
        for j, match in enumerate(matches):
            route = rc.Route(
                name=f"{vs.metadata.namespace}/{vs.metadata.name}/http[{i}]/match[{j}]",
                match=_route_match(match),
                route=action,
            )
            out.append(route)
    return out


def default_route(service: Service, port: int) -> rc.Route:
    """A service with no VirtualService: everything to its one cluster."""
    return rc.Route(
        name="default",
        match=rc.RouteMatch(prefix="/"),
        route=rc.RouteAction(
            cluster=names.outbound_cluster(service.hostname, port),
            timeout=NO_TIMEOUT,
            retry_policy=default_retry_policy(),
        ),
    )
