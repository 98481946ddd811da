"""Several VirtualServices for one host on one gateway: the later ones are named, the winner too."""

from __future__ import annotations

from analysis_kit import snapshot_of, vs, warnings_of

from plait.translate.vhosts import mesh_virtual_services

ROUTE = "  http:\n  - route: [{destination: {host: reviews}}]"


def test_two_mesh_virtual_services_for_one_host_name_the_winner() -> None:
    text = (
        vs("b-reviews", ROUTE)
        + vs("a-reviews", ROUTE, hosts="[reviews.default.svc.cluster.local]")
        + vs("c-other", ROUTE, hosts="[ratings, reviews.default]")
    )
    found = warnings_of(text)
    assert [(n, p) for n, p, _ in found] == [
        ("b-reviews", "spec.hosts[0]"),
        ("c-other", "spec.hosts[1]"),
    ]
    for _, _, message in found:
        assert "default/a-reviews (mesh.yaml[" in message and "ignored" in message
    # the winner named is the one the translator uses
    winner = mesh_virtual_services(snapshot_of(text))["reviews.default.svc.cluster.local"]
    assert winner.resource.metadata.name == "a-reviews"


def test_same_host_on_a_gateway_is_merged_with_the_first_first() -> None:
    body = "  gateways: [shop-gateway]\n" + ROUTE
    text = vs("shop-2", body, hosts="[shop.example.com]") + vs(
        "shop-1", body, hosts="[shop.example.com]"
    )
    [(name, path, message)] = warnings_of(text)
    assert (name, path) == ("shop-2", "spec.hosts[0]")
    assert "default/shop-1" in message and "Gateway default/shop-gateway" in message
    assert "merged" in message


def test_one_host_on_different_gateways_or_namespaces_does_not_conflict() -> None:
    text = (
        vs("mesh-only", ROUTE)
        + vs("gw-only", "  gateways: [shop-gateway]\n" + ROUTE)
        + vs("elsewhere", ROUTE, extra=", namespace: other")  # reviews.other.svc...
    )
    assert [m for _, _, m in warnings_of(text) if "also routes" in m] == []
