"""Envoy object names: Istio-shaped cluster names and their parser."""

from __future__ import annotations

import pytest

from plait.translate import names


def test_names() -> None:
    assert names.outbound_cluster("reviews.default.svc.cluster.local", 8080) == (
        "outbound|8080||reviews.default.svc.cluster.local"
    )
    assert names.outbound_cluster("reviews.default.svc.cluster.local", 8080, "v2") == (
        "outbound|8080|v2|reviews.default.svc.cluster.local"
    )
    assert names.inbound_cluster(9080) == "inbound|9080||"
    assert names.gateway_listener(80) == "0.0.0.0_80"
    assert names.gateway_route(80) == "http.80"


@pytest.mark.parametrize(
    "name",
    [
        names.outbound_cluster("reviews.default.svc.cluster.local", 8080, "v2"),
        names.outbound_cluster("api.example.com", 443),
        names.inbound_cluster(9080),
    ],
)
def test_parse_cluster_round_trips(name: str) -> None:
    parsed = names.parse_cluster(name)
    assert parsed is not None
    assert f"{parsed.direction}|{parsed.port}|{parsed.subset}|{parsed.host}" == name


def test_parse_cluster_fields() -> None:
    assert names.parse_cluster("outbound|8080|v2|reviews") == names.ClusterName(
        "outbound", 8080, "v2", "reviews"
    )


@pytest.mark.parametrize(
    "name", ["xds-grpc", "outbound|8080|v2", "sideways|1||h", "outbound|http||h", ""]
)
def test_parse_cluster_rejects_foreign_names(name: str) -> None:
    assert names.parse_cluster(name) is None
