"""The HTTP filter chain of every HTTP connection manager plait builds.

Istio's order: the security filters when policies select the proxy (jwt_authn, then
RBAC), then fault injection, CORS, local rate limit, and the router. Each filter after the
security ones is always present and does nothing until a route (or virtual host) carries
its per-route config (`typed_per_filter_config` under the filter's name), so that a
VirtualService edit changes only RDS: a listener change would only reach new connections,
and an edit must apply to the keep-alive connections already open. The cost of an idle filter is a map
lookup per request (measured in docs/benchmarks.md).

Departure from istiod: a sidecar's *inbound* HCM has no fault or CORS filter. Its route
table (`translate.inbound`) is plait's own and never carries their per-route config —
VirtualService faults and CORS apply where the route is chosen, at the caller's sidecar
or the gateway — so there they would only cost each request (about 1% each of the
server sidecar's instructions, `bench/pathcost.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf.message import Message

from plait.translate import egress

FAULT = "envoy.filters.http.fault"
CORS = "envoy.filters.http.cors"
LOCAL_RATELIMIT = "envoy.filters.http.local_ratelimit"
ROUTER = "envoy.filters.http.router"

RATELIMIT_STAT_PREFIX = "http_local_rate_limiter"


def _filter(name: str, config: Message) -> hcm_pb2.HttpFilter:
    f = hcm_pb2.HttpFilter(name=name)
    f.typed_config.Pack(config)
    return f


def http_filters(
    *,
    outbound: bool = False,
    inbound: bool = False,
    security: Sequence[hcm_pb2.HttpFilter] = (),
) -> list[hcm_pb2.HttpFilter]:
    """security → fault → cors → local rate limit → router; all but `security` idle until
    a route enables them. `inbound` (the sidecar's inbound HCMs) leaves out fault and cors,
    which its route table never enables (module docstring).

    `security` (authentication and authorization filters, in order) run first, so that a
    request they refuse never reaches a fault or the app. `outbound` (the sidecar's
    outbound listener) adds the dynamic forward proxy before the router, for routes to
    PassthroughCluster and resolution-NONE hosts (see `egress`).
    """
    forward_proxy = [_filter(egress.DFP_FILTER, egress.forward_proxy_filter())] if outbound else []
    route_features = (
        [] if inbound else [_filter(FAULT, fault_pb2.HTTPFault()), _filter(CORS, cors_pb2.Cors())]
    )
    return [
        *security,
        *route_features,
        _filter(
            LOCAL_RATELIMIT, local_rate_limit_pb2.LocalRateLimit(stat_prefix=RATELIMIT_STAT_PREFIX)
        ),
        *forward_proxy,
        _filter(ROUTER, router_pb2.Router()),
    ]


def upgrade_configs() -> list[hcm_pb2.HttpConnectionManager.UpgradeConfig]:
    """WebSocket upgrades pass through every HTTP hop, as under Istio."""
    return [hcm_pb2.HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")]
