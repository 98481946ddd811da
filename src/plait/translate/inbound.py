"""The sidecar's inbound route table: everything to its own app."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from plait.translate import names
from plait.translate.routes import NO_TIMEOUT

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
