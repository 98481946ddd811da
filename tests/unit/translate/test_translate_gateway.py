"""Gateway route tables and ports."""

from __future__ import annotations

from envoy.config.route.v3 import route_pb2
from translate_kit import REVIEWS, REVIEWS_SERVICE, snapshot, virtual_service

from plait.translate.gateway import gateway_ports, gateway_routes

SERVICES = REVIEWS_SERVICE


def vhosts(config: route_pb2.RouteConfiguration) -> dict[str, list[str]]:
    return {v.name: list(v.domains) for v in config.virtual_hosts}


GATEWAYS = """---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.example.com"]
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: cert}
  - port: {number: 9000, name: grpc, protocol: GRPC}
    hosts: ["edge/api.example.com"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 81, name: tcp, protocol: TCP}
    hosts: ["*"]
"""


def test_gateway_ports_are_http_server_ports_in_first_seen_order() -> None:
    assert gateway_ports(snapshot(SERVICES + GATEWAYS)) == [80, 9000]  # default/… before edge/…


def test_gateway_vhosts_for_virtual_services_bound_by_name_and_by_namespace_name() -> None:
    snap = snapshot(
        SERVICES
        + GATEWAYS
        + virtual_service("v1", "[shop-gateway]", hosts='["*"]')
        + virtual_service("v2", "[edge/public]", hosts="[api.example.com, other.org]")
        + virtual_service("v3", "[public]", hosts="[www.example.com]", ns="edge")
        + virtual_service("v4", "[mesh]", hosts="[reviews]")
    )
    config = gateway_routes(snap, 80)
    assert config.name == "http.80"
    assert config.validate_clusters.value is False
    got = {v.name: (list(v.domains), [r.name for r in v.routes]) for v in config.virtual_hosts}
    assert got == {
        # other.org is not served by edge/public (*.example.com); `*` comes last
        "api.example.com:80": (["api.example.com"], ["default/v2/http[0]/match[0]"]),
        "www.example.com:80": (["www.example.com"], ["edge/v3/http[0]/match[0]"]),
        "*:80": (["*"], ["default/v1/http[0]/match[0]"]),
    }
    assert list(got)[-1] == "*:80"
    route = config.virtual_hosts[-1].routes[0]
    assert route.route.cluster == f"outbound|8080|v1|{REVIEWS}"


def test_gateway_server_host_with_namespace_prefix_matches_the_host() -> None:
    snap = snapshot(
        SERVICES + GATEWAYS + virtual_service("v2", "[edge/public]", hosts="[api.example.com]")
    )
    assert vhosts(gateway_routes(snap, 9000)) == {"api.example.com:9000": ["api.example.com"]}


def test_gateway_port_without_bound_virtual_services_is_empty() -> None:
    assert len(gateway_routes(snapshot(SERVICES + GATEWAYS), 80).virtual_hosts) == 0


def test_two_virtual_services_for_one_gateway_host_share_a_vhost_in_order() -> None:
    snap = snapshot(
        SERVICES
        + GATEWAYS
        + virtual_service("v1", "[shop-gateway]", hosts="[shop.local]")
        + virtual_service("v2", "[shop-gateway]", hosts="[shop.local]")
    )
    (vhost,) = gateway_routes(snap, 80).virtual_hosts
    assert [r.name for r in vhost.routes] == [
        "default/v1/http[0]/match[0]",
        "default/v2/http[0]/match[0]",
    ]
