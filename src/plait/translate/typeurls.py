"""xDS type URLs and the order in which ADS pushes them.

The order is the one place where sequencing matters (xDS protocol, "Eventual consistency
considerations": https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol):
clusters before the endpoints they name, listeners before the routes they name, and
clusters/endpoints before the listeners/routes that use them (make before break).
"""

from __future__ import annotations

CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

PUSH_ORDER: tuple[str, ...] = (CLUSTER, ENDPOINT, LISTENER, ROUTE)

# Types whose SotW response must always carry the full set (a missing name is a removal).
WILDCARD_TYPES: frozenset[str] = frozenset({CLUSTER, LISTENER})

SHORT_NAMES: dict[str, str] = {CLUSTER: "cds", ENDPOINT: "eds", LISTENER: "lds", ROUTE: "rds"}
