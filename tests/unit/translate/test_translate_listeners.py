"""Listeners: the sidecar's outbound HTTP proxy and inbound port, the gateway's ports."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from translate_kit import (
    REVIEWS_SERVICE,
    hcm,
    hcms,
    instance,
    listeners,
    routes,
    sidecar,
    snapshot,
)

from plait.translate import listeners as listener_builders
from plait.translate.httpfilters import CORS, FAULT, LOCAL_RATELIMIT
from plait.translate.inbound import inbound_routes
from plait.translate.proxy import Translator


def test_outbound_listener_is_an_http_proxy_with_rds_over_ads() -> None:
    lis = listener_builders.outbound_listener("127.0.0.1", 15001)
    assert lis.name == "virtualOutbound"
    assert (lis.address.socket_address.address, lis.address.socket_address.port_value) == (
        "127.0.0.1",
        15001,
    )
    assert lis.traffic_direction == base_pb2.OUTBOUND
    h = hcm(lis)
    assert h.http_protocol_options.allow_absolute_url.value is True
    assert h.rds.route_config_name == "outbound"
    assert h.rds.config_source.HasField("ads")
    assert h.stat_prefix == "outbound_http_proxy"
    assert [f.name for f in h.http_filters] == [
        "envoy.filters.http.fault",
        "envoy.filters.http.cors",
        "envoy.filters.http.local_ratelimit",
        "envoy.filters.http.dynamic_forward_proxy",  # egress: PassthroughCluster
        "envoy.filters.http.router",
    ]
    assert h.http_filters[-1].typed_config.Is(router_pb2.Router.DESCRIPTOR)
    assert [u.upgrade_type for u in h.upgrade_configs] == ["websocket"]


def test_inbound_listener_takes_its_route_table_over_rds() -> None:
    table = inbound_routes(9080, "sidecar~a-0.default")
    lis = listener_builders.inbound_listener("127.0.0.1", 15006, table.name)
    assert lis.name == "virtualInbound"
    assert lis.address.socket_address.port_value == 15006
    assert lis.traffic_direction == base_pb2.INBOUND
    assert len(lis.filter_chains) == 2  # PERMISSIVE by default: mTLS and plain text
    for h in hcms(lis):
        assert h.WhichOneof("route_specifier") == "rds"
        assert h.rds.route_config_name == table.name == "inbound|9080||"
        assert h.rds.config_source.HasField("ads")
        assert h.stat_prefix == "inbound_15006"


def test_gateway_listener_serves_a_server_port_on_its_host_port() -> None:
    lis = listener_builders.gateway_listener(80, "127.0.0.1", 8080)
    assert lis.name == "0.0.0.0_80"
    assert lis.address.socket_address.port_value == 8080
    h = hcm(lis)
    assert h.rds.route_config_name == "http.80"
    assert h.use_remote_address.value is True
    assert h.strip_any_host_port is True  # Host: shop.example.com:8080 matches shop.example.com
    assert h.stat_prefix == "outbound_80"


def _filter_configs(table: route_pb2.RouteConfiguration) -> set[str]:
    """Every filter name a route table carries per-filter config for."""
    names: set[str] = set()
    for vhost in table.virtual_hosts:
        names.update(vhost.typed_per_filter_config)
        for route in vhost.routes:
            names.update(route.typed_per_filter_config)
            for weighted in route.route.weighted_clusters.clusters:
                names.update(weighted.typed_per_filter_config)
    return names


FEATURES = f"""{REVIEWS_SERVICE}apiVersion: v1
kind: Service
metadata: {{name: frontend}}
spec:
  selector: {{app: frontend}}
  ports: [{{name: http, port: 8080}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - fault: {{abort: {{httpStatus: 503, percentage: {{value: 10}}}}}}
    corsPolicy: {{allowOrigins: [{{exact: https://a.example}}]}}
    route: [{{destination: {{host: reviews}}}}]
---
apiVersion: policy.plait.dev/v1alpha1
kind: RateLimit
metadata: {{name: rl}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  limits:
  - {{name: a, requests: 1, unit: second, match: [{{uri: {{prefix: /a}}}}]}}
"""


def test_every_per_filter_config_names_a_filter_of_the_hcm_that_serves_its_table() -> None:
    """Inbound HCMs leave out fault and CORS (`translate.httpfilters`): this holds only
    while no route table they serve configures them, which this checks for faults, CORS
    and rate limits on both sides of a call (Envoy would ignore such config silently)."""
    mesh = snapshot(FEATURES, [instance("reviews-0", 9080, app="reviews")])
    translator = Translator(mesh)
    seen: set[str] = set()
    for proxy in (sidecar("frontend-0"), sidecar("reviews-0")):
        config = translator.config_for(proxy)
        tables = routes(config)
        for lis in listeners(config).values():
            for h in hcms(lis):
                if not h.HasField("rds"):
                    continue
                configured = _filter_configs(tables[h.rds.route_config_name])
                seen |= configured
                assert configured <= {f.name for f in h.http_filters}, (proxy.id, lis.name)
    assert {FAULT, CORS, LOCAL_RATELIMIT} <= seen  # the check saw every kind
