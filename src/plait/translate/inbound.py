"""The sidecar's inbound route table: everything to its own app.

Without RateLimits it is one catch-all route. With them (`translate.ratelimit`), the
routes of matched limits come first, each naming its limit's token bucket; the virtual
host carries the local rate limit config that holds the buckets; the catch-all route
last, limited by the service-wide limit or with the filter switched off.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from plait.api.ratelimit import RateLimit
from plait.translate import names
from plait.translate.httpfilters import LOCAL_RATELIMIT
from plait.translate.ratelimit import disabled, inbound_limits
from plait.translate.routes import NO_TIMEOUT

SIDECAR_HEADER = "x-plait-sidecar"


def inbound_routes(
    app_port: int, proxy_id: str, rate_limits: Sequence[RateLimit] = ()
) -> route_pb2.RouteConfiguration:
    """Everything to the app; the request tells the app which sidecar delivered it."""
    cluster = names.inbound_cluster(app_port)
    vhost = rc.VirtualHost(name="inbound|http", domains=["*"])
    default = rc.Route(
        name="default",
        match=rc.RouteMatch(prefix="/"),
        route=rc.RouteAction(cluster=cluster, timeout=NO_TIMEOUT),
    )
    limits = inbound_limits(rate_limits)
    if limits is not None:
        vhost.typed_per_filter_config[LOCAL_RATELIMIT].Pack(limits.config)
        for limited in limits.routes:
            vhost.routes.add(
                name=limited.name,
                match=limited.match,
                route=rc.RouteAction(cluster=cluster, timeout=NO_TIMEOUT),
                metadata=limited.metadata,
            )
        if not limits.catch_all_limited:
            default.typed_per_filter_config[LOCAL_RATELIMIT].Pack(disabled())
    vhost.routes.append(default)
    return route_pb2.RouteConfiguration(
        name=cluster,
        request_headers_to_add=[
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=SIDECAR_HEADER, value=proxy_id),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
        ],
        virtual_hosts=[vhost],
    )
