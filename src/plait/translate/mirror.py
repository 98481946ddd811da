"""Traffic mirroring: `mirror` (+ `mirrorPercentage` / deprecated `mirrorPercent`) and
`mirrors`, as Envoy request mirror policies.

Istio's semantics: no percentage means every request; an explicit 0 mirrors nothing.
The mirrored cluster is resolved like a route destination. Envoy sends the copy
fire-and-forget with `-shadow` appended to the host, and the caller sees only the primary
answer. Like Istio, a mirrored request does not force trace sampling.
"""

from __future__ import annotations

from collections.abc import Callable

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from google.protobuf import wrappers_pb2

from plait.api.common import Percent
from plait.api.virtualservice import Destination, HTTPRoute
from plait.translate import percent


def _fraction(value: Percent | None) -> base_pb2.RuntimeFractionalPercent | None:
    if value is None:
        return percent.runtime(percent.of_int(100))
    return percent.runtime(percent.of_percent(value)) if value.value > 0 else None


def _legacy_fraction(rule: HTTPRoute) -> base_pb2.RuntimeFractionalPercent | None:
    if rule.mirror_percentage is not None:
        return _fraction(rule.mirror_percentage)
    if rule.mirror_percent is not None:
        return percent.runtime(percent.of_int(rule.mirror_percent)) if rule.mirror_percent else None
    return _fraction(None)


def mirror_policies(
    rule: HTTPRoute, cluster_of: Callable[[Destination], str]
) -> list[rc.RouteAction.RequestMirrorPolicy]:
    """Mirror policies of a rule; `cluster_of` names the cluster of a destination."""
    wanted: list[tuple[Destination, base_pb2.RuntimeFractionalPercent | None]] = []
    if rule.mirror is not None:
        wanted.append((rule.mirror, _legacy_fraction(rule)))
    wanted += [(m.destination, _fraction(m.percentage)) for m in rule.mirrors]
    return [
        rc.RouteAction.RequestMirrorPolicy(
            cluster=cluster_of(dest),
            runtime_fraction=fraction,
            trace_sampled=wrappers_pb2.BoolValue(value=False),
        )
        for dest, fraction in wanted
        if fraction is not None
    ]
