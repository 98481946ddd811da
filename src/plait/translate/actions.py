"""What a matched rule does: forward (weighted destinations, rewrite, mirrors, timeout and
retries), redirect, or answer directly. Istio's applyHTTPRouteDestination, ApplyRedirect
and ApplyDirectResponse.

Destinations: a lone destination takes all traffic whatever its weight; among several,
weight-0 ones are left out, and if one remains it is a plain cluster. Per-destination
header operations go on that destination's weighted cluster (on the route for a lone
destination). An unknown destination names a cluster that does not exist, so Envoy
answers 503 (no cluster), as under Istio.

Rewrite: `uri` replaces the matched prefix (or the whole path of an exact match, as
Envoy's prefix_rewrite does); `uriRegexRewrite` substitutes with RE2; `authority` (or a
`host` header set through `headers`) becomes the upstream Host.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import regex_pb2
from google.protobuf import wrappers_pb2

from plait.api.destinationrule import TrafficPolicy
from plait.api.virtualservice import (
    Destination,
    HTTPDirectResponse,
    HTTPRedirect,
    HTTPRoute,
    HTTPRouteDestination,
)
from plait.translate import mirror, resilience
from plait.translate.headers import HeaderOps, header_ops

_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


@dataclass(frozen=True)
class Resolver:
    """How the action builder reaches the mesh: cluster names and DestinationRule policy."""

    cluster_of: Callable[[Destination], str]
    policy_of: Callable[[Destination], TrafficPolicy | None]


def redirect_action(redirect: HTTPRedirect, port: int | None) -> rc.RedirectAction | None:
    """None for a redirect code Envoy cannot send (300, 304, 305, 306: Istio drops them)."""
    code = _REDIRECT_CODES.get(redirect.redirect_code or 301)
    if code is None:
        return None
    out = rc.RedirectAction(host_redirect=redirect.authority or "", response_code=code)
    if redirect.prefix_rewrite is not None:
        out.prefix_rewrite = redirect.prefix_rewrite
    else:
        out.path_redirect = redirect.uri or ""
    if redirect.scheme:
        out.scheme_redirect = redirect.scheme
    target: int | None = None
    if redirect.port is not None:
        target = redirect.port
    elif redirect.derive_port == "FROM_REQUEST_PORT":
        target = port  # routes are built per listening port, so the request's port is known
    # FROM_PROTOCOL_DEFAULT (or nothing): Envoy's own behaviour
    if target is not None:
        scheme = redirect.scheme or "http"
        # no explicit :80 for http or :443 for https (Istio)
        if (target, scheme) not in ((80, "http"), (443, "https")):
            out.port_redirect = target
    return out


def direct_response(answer: HTTPDirectResponse) -> rc.DirectResponseAction:
    out = rc.DirectResponseAction(status=answer.status)
    body = answer.body
    if body is not None and body.string is not None:
        out.body.CopyFrom(base_pb2.DataSource(inline_string=body.string))
    elif body is not None and body.bytes is not None:
        out.body.CopyFrom(base_pb2.DataSource(inline_bytes=base64.b64decode(body.bytes)))
    return out


def _forwarded(rule: HTTPRoute) -> list[HTTPRouteDestination]:
    if len(rule.route) == 1:
        return list(rule.route)
    return [d for d in rule.route if d.weight]


def route_action(
    rule: HTTPRoute, route: rc.Route, authority: str, resolve: Resolver
) -> rc.RouteAction | None:
    """The forwarding action; per-destination header ops of a lone destination go on `route`."""
    dests = _forwarded(rule)
    if not dests:
        return None
    action = rc.RouteAction()
    rewrite = rule.rewrite
    if rewrite is not None and rewrite.uri_regex_rewrite is not None:
        action.regex_rewrite.pattern.CopyFrom(
            regex_pb2.RegexMatcher(regex=rewrite.uri_regex_rewrite.match)
        )
        action.regex_rewrite.substitution = rewrite.uri_regex_rewrite.rewrite
    elif rewrite is not None and rewrite.uri:
        action.prefix_rewrite = rewrite.uri
    if rewrite is not None and rewrite.authority:
        authority = rewrite.authority
    if authority:
        action.host_rewrite_literal = authority
    action.request_mirror_policies.extend(mirror.mirror_policies(rule, resolve.cluster_of))
    if len(dests) == 1:
        (dest,) = dests
        action.cluster = resolve.cluster_of(dest.destination)
        ops = header_ops(dest.headers)
        ops.apply_to(route)
        if ops.authority and not action.host_rewrite_literal:
            action.host_rewrite_literal = ops.authority
    else:
        action.weighted_clusters.clusters.extend(_weighted(d, resolve) for d in dests)
    resilience.apply(action, rule, resolve.policy_of(dests[0].destination))
    return action


def _weighted(dest: HTTPRouteDestination, resolve: Resolver) -> rc.WeightedCluster.ClusterWeight:
    out = rc.WeightedCluster.ClusterWeight(
        name=resolve.cluster_of(dest.destination),
        weight=wrappers_pb2.UInt32Value(value=dest.weight or 0),
    )
    ops: HeaderOps = header_ops(dest.headers)
    ops.apply_to(out)
    if ops.authority:
        out.host_rewrite_literal = ops.authority
    return out
