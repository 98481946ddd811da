"""A static Envoy around a list of HTTP filters: for `envoy --mode validate` of translated
auth filters (unit) and for real requests through them (e2e).

Each listener (127.0.0.1, a free port) has an HCM that runs the given filters, then the
router with a direct 200 `ok` response for every path; extra clusters (JWKS) are static.
`write_bootstrap` and `envoy_validate` serve any bootstrap (the translation harness too).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import json_format, wrappers_pb2

from plait.agent.envoy import find_envoy

HCM = "envoy.filters.network.http_connection_manager"


def _hcm_listener(name: str, filters: Sequence[hcm_pb2.HttpFilter]) -> listener_pb2.Listener:
    route = route_pb2.RouteConfiguration(
        name=name,
        virtual_hosts=[
            rc.VirtualHost(
                name="all",
                domains=["*"],
                routes=[
                    rc.Route(
                        match=rc.RouteMatch(prefix="/"),
                        direct_response=rc.DirectResponseAction(status=200),
                    )
                ],
            )
        ],
    )
    route.virtual_hosts[0].routes[0].direct_response.body.inline_string = "ok"
    router = hcm_pb2.HttpFilter(name="envoy.filters.http.router")
    router.typed_config.Pack(router_pb2.Router())
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=name,
        route_config=route,
        http_filters=[*filters, router],
        normalize_path=wrappers_pb2.BoolValue(value=True),  # Istio's default (BASE)
    )
    listener = listener_pb2.Listener(name=name)
    listener.address.socket_address.address = "127.0.0.1"
    listener.address.socket_address.port_value = 0
    net = listener_components_pb2.Filter(name=HCM)
    net.typed_config.Pack(hcm)
    listener.filter_chains.append(listener_components_pb2.FilterChain(filters=[net]))
    return listener


def hcm_bootstrap(
    chains: Mapping[str, Sequence[hcm_pb2.HttpFilter]],
    clusters: Sequence[cluster_pb2.Cluster] = (),
) -> bootstrap_pb2.Bootstrap:
    """One listener per name (on a free 127.0.0.1 port) running its filters, then a
    direct `200 ok`; admin on a free port."""
    out = bootstrap_pb2.Bootstrap()
    out.static_resources.listeners.extend(_hcm_listener(n, f) for n, f in chains.items())
    out.static_resources.clusters.extend(clusters)
    out.admin.address.socket_address.address = "127.0.0.1"
    out.admin.address.socket_address.port_value = 0
    return out


def write_bootstrap(path: Path, bootstrap: bootstrap_pb2.Bootstrap) -> Path:
    path.write_text(json_format.MessageToJson(bootstrap))
    return path


def envoy_validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(find_envoy()), "--mode", "validate", "--log-level", "warn", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
