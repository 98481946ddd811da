"""Warnings for references that lead nowhere: hosts, ports, subsets, gateways, delegates."""

from __future__ import annotations

from analysis_kit import vs, warnings_of

ROUTE = "  http:\n  - route: [{{destination: {dest}}}]"


def route_to(dest: str, name: str = "r", hosts: str = "[reviews]", gateways: str = "") -> str:
    return vs(
        name, (f"  gateways: {gateways}\n" if gateways else "") + ROUTE.format(dest=dest), hosts
    )


def test_known_hosts_ports_and_subsets_are_fine() -> None:
    text = (
        route_to("{host: reviews, subset: v2}")
        + route_to(
            "{host: ratings.default.svc.cluster.local, port: {number: 9090}}", "b", "[ratings]"
        )
        + route_to(
            "{host: reviews.default, port: {number: 8080}}",
            "c",
            "[x.example.com]",
            "[shop-gateway]",
        )
    )
    assert warnings_of(text) == []


def test_an_unknown_destination_host_warns_at_its_path() -> None:
    [(name, path, message)] = warnings_of(route_to("{host: reveiws}"))
    assert (name, path) == ("r", "spec.http[0].route[0].destination.host")
    assert "reveiws.default.svc.cluster.local" in message and "503" in message


def test_unknown_hosts_of_mirrors_and_tcp_routes_warn_too() -> None:
    body = (
        "  http:\n  - match: [{uri: {prefix: /a}}]\n"
        "    route: [{destination: {host: reviews}}]\n"
        "    mirror: {host: nowhere}\n"
        "  - route: [{destination: {host: reviews}}]\n"
        "    mirrors: [{destination: {host: reviews}}, {destination: {host: gone}}]\n"
        "  tcp:\n  - route: [{destination: {host: lost}}]"
    )
    assert [path for _, path, _ in warnings_of(vs("r", body))] == [
        "spec.http[0].mirror.host",
        "spec.http[1].mirrors[1].destination.host",
        "spec.tcp[0].route[0].destination.host",
    ]


def test_a_short_name_resolves_in_the_virtual_services_namespace() -> None:
    text = vs("r", ROUTE.format(dest="{host: reviews}"), extra=", namespace: other")
    [(_, path, message)] = warnings_of(text)
    assert path == "spec.http[0].route[0].destination.host"
    assert "reviews.other.svc.cluster.local" in message


def test_an_undefined_subset_warns_and_lists_the_defined_ones() -> None:
    [(_, path, message)] = warnings_of(route_to("{host: reviews, subset: v3}"))
    assert path == "spec.http[0].route[0].destination.subset"
    assert "'v3'" in message and "v1, v2" in message and "default/reviews" in message


def test_a_subset_of_a_host_without_destination_rule_warns() -> None:
    [(_, path, message)] = warnings_of(route_to("{host: ratings, subset: v1}", hosts="[ratings]"))
    assert path == "spec.http[0].route[0].destination.subset"
    assert "no DestinationRule applies" in message


def test_a_port_the_service_does_not_have_warns() -> None:
    [(_, path, message)] = warnings_of(route_to("{host: reviews, port: {number: 9999}}"))
    assert path == "spec.http[0].route[0].destination.port.number"
    assert "8080" in message


def test_a_gateway_route_to_a_multi_port_service_needs_a_port() -> None:
    gateway_bound = route_to("{host: ratings}", "g", "[x.example.com]", "[shop-gateway]")
    mesh_bound = route_to("{host: ratings}", "m", "[ratings]")  # the request's port is used
    [(name, path, message)] = warnings_of(gateway_bound + mesh_bound)
    assert (name, path) == ("g", "spec.http[0].route[0].destination.host")
    assert "8080, 9090" in message


def test_a_missing_gateway_warns_in_spec_and_in_matches() -> None:
    body = (
        "  gateways: [shop-gateway, mesh, shop-gatewy, istio-system/ingress]\n"
        "  http:\n  - match: [{gateways: [mesh]}, {gateways: [nope]}]\n"
        "    route: [{destination: {host: reviews}}]"
    )
    found = warnings_of(vs("r", body, hosts="[reviews]"))
    assert [path for _, path, _ in found] == [
        "spec.gateways[2]",
        "spec.gateways[3]",
        "spec.http[0].match[1].gateways[0]",
    ]
    assert "default/shop-gatewy does not exist" in found[0][2]
    assert "default/shop-gateway" in found[0][2]  # the ones that do exist


def test_a_delegate_that_is_missing_or_has_hosts_warns() -> None:
    root = (
        "  http:\n  - match: [{uri: {prefix: /a}}]\n    delegate: {name: child}\n"
        "  - match: [{uri: {prefix: /b}}]\n    delegate: {name: missing}\n"
        "  - match: [{uri: {prefix: /c}}]\n    delegate: {name: other}"
    )
    child = ROUTE.format(dest="{host: reviews}")
    text = vs("root", root) + vs("child", child, hosts="[]") + vs("other", child, hosts="[ratings]")
    found = warnings_of(text)
    assert [(n, p) for n, p, _ in found] == [
        ("root", "spec.http[1].delegate"),
        ("root", "spec.http[2].delegate"),
    ]
    assert "default/missing does not exist" in found[0][2]
    assert "has 'hosts'" in found[1][2]


def test_a_destination_rule_for_an_unknown_host_warns() -> None:
    text = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: typo}
spec: {host: ratngs}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: wild}
spec: {host: "*.svc.cluster.local"}
"""
    [(name, path, message)] = warnings_of(text)
    assert (name, path) == ("typo", "spec.host")
    assert "ratngs.default.svc.cluster.local" in message and "no effect" in message
