"""Listeners: the sidecar's outbound HTTP proxy and inbound port, the gateway's ports."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from translate_kit import hcm, hcms

from plait.translate import listeners
from plait.translate.inbound import inbound_routes


def test_outbound_listener_is_an_http_proxy_with_rds_over_ads() -> None:
    lis = listeners.outbound_listener("127.0.0.1", 15001)
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
    lis = listeners.inbound_listener("127.0.0.1", 15006, table.name)
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
    lis = listeners.gateway_listener(80, "127.0.0.1", 8080)
    assert lis.name == "0.0.0.0_80"
    assert lis.address.socket_address.port_value == 8080
    h = hcm(lis)
    assert h.rds.route_config_name == "http.80"
    assert h.use_remote_address.value is True
    assert h.strip_any_host_port is True  # Host: shop.example.com:8080 matches shop.example.com
    assert h.stat_prefix == "outbound_80"
