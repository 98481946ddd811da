"""Hand-written static Envoy configs: the upstream, and the two-hop "floor".

The floor is what a person would write to forward HTTP through two Envoys with nothing
else: one HTTP connection manager with the router filter, a static route, a STATIC
cluster, Envoy's defaults everywhere else (no retry policy, no circuit-breaker overrides,
no added headers, no xDS). plait's generated sidecar config is compared against it.

The upstream answers every request itself (`direct_response`), so that it is cheaper
than any proxy in front of it and never the bottleneck.
"""

from __future__ import annotations

from typing import Any

HCM_TYPE = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
UPSTREAM_BODY = "ok\n"


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _listener(name: str, port: int, routes: dict[str, Any], absolute_url: bool) -> dict[str, Any]:
    hcm: dict[str, Any] = {
        "@type": HCM_TYPE,
        "stat_prefix": name,
        "codec_type": "AUTO",
        "route_config": routes,
        "http_filters": [
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}
        ],
    }
    if absolute_url:
        hcm["http_protocol_options"] = {"allow_absolute_url": True}
    return {
        "name": name,
        "address": _address("127.0.0.1", port),
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def _cluster(name: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _address("127.0.0.1", port)}}]}
            ],
        },
    }


def _config(listeners: list[dict[str, Any]], clusters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "admin": {"address": _address("127.0.0.1", 0)},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


def upstream(port: int) -> dict[str, Any]:
    """An Envoy that answers `200 ok` to every request on `port`."""
    routes = {
        "name": "upstream",
        "virtual_hosts": [
            {
                "name": "all",
                "domains": ["*"],
                "routes": [
                    {
                        "match": {"prefix": "/"},
                        "direct_response": {
                            "status": 200,
                            "body": {"inline_string": UPSTREAM_BODY},
                        },
                    }
                ],
            }
        ],
    }
    return _config([_listener("upstream", port, routes, absolute_url=False)], [])


def forwarder(port: int, domain: str, to_port: int, *, absolute_url: bool) -> dict[str, Any]:
    """An Envoy listening on `port` that sends requests for `domain` to 127.0.0.1:`to_port`."""
    routes = {
        "name": "forward",
        "virtual_hosts": [
            {
                "name": "target",
                "domains": [domain],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "target"}}],
            }
        ],
    }
    return _config(
        [_listener("forward", port, routes, absolute_url=absolute_url)],
        [_cluster("target", to_port)],
    )
