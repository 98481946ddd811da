"""Proxy ↔ Envoy node metadata: the round trip the agent and the xDS server rely on."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2

from plait.model.labels import Labels
from plait.model.proxy import (
    NodeMetadataError,
    Proxy,
    ProxyKind,
    Traffic,
    from_node_metadata,
    node_id,
    to_node_metadata,
)

SIDECAR = Proxy(
    id=node_id(ProxyKind.SIDECAR, "reviews-v1-0", "shop"),
    kind=ProxyKind.SIDECAR,
    workload="reviews-v1",
    namespace="shop",
    service_account="reviews",
    labels=Labels.of({"app": "reviews", "version": "v1"}),
    address="127.0.0.2",
    inbound_port=15006,
    app_port=9080,
    outbound_port=15001,
)
GATEWAY = Proxy(
    id=node_id(ProxyKind.GATEWAY, "istio-ingressgateway", "istio-system"),
    kind=ProxyKind.GATEWAY,
    workload="istio-ingressgateway",
    namespace="istio-system",
    gateway_ports=((80, 8080), (443, 8443)),
)


def test_node_id_is_istio_shaped_without_the_ip() -> None:
    assert node_id(ProxyKind.SIDECAR, "reviews-v1-0", "shop") == "sidecar~reviews-v1-0.shop"
    assert node_id(ProxyKind.GATEWAY, "gw", "istio-system") == "gateway~gw.istio-system"


def test_metadata_uses_istio_key_names_and_string_ports() -> None:
    meta = to_node_metadata(SIDECAR)
    assert meta == {
        "PLAIT_PROXY_KIND": "sidecar",
        "WORKLOAD_NAME": "reviews-v1",
        "NAMESPACE": "shop",
        "SERVICE_ACCOUNT": "reviews",
        "LABELS": {"app": "reviews", "version": "v1"},
        "INSTANCE_IP": "127.0.0.2",
        "INBOUND_PORT": "15006",
        "APP_PORT": "9080",
        "OUTBOUND_PORT": "15001",
    }
    assert to_node_metadata(GATEWAY)["GATEWAY_PORTS"] == {"80": "8080", "443": "8443"}
    assert "INBOUND_PORT" not in to_node_metadata(GATEWAY)


@pytest.mark.parametrize("proxy", [SIDECAR, GATEWAY], ids=["sidecar", "gateway"])
def test_round_trip_through_a_protobuf_struct(proxy: Proxy) -> None:
    """Envoy carries metadata as a google.protobuf.Struct (numbers become floats)."""
    struct = json_format.ParseDict(to_node_metadata(proxy), struct_pb2.Struct())
    back = from_node_metadata(proxy.id, json_format.MessageToDict(struct))
    assert back == proxy


def test_traffic_is_explicit_unless_the_node_says_it_is_captured() -> None:
    """Istio's INTERCEPTION_MODE: REDIRECT is captured; absent (or NONE) is explicit."""
    assert SIDECAR.traffic is Traffic.EXPLICIT
    assert "INTERCEPTION_MODE" not in to_node_metadata(SIDECAR)
    assert from_node_metadata("n", {"WORKLOAD_NAME": "w", "INTERCEPTION_MODE": "NONE"}).traffic is (
        Traffic.EXPLICIT
    )
    captured = replace(SIDECAR, traffic=Traffic.CAPTURED)
    meta = to_node_metadata(captured)
    assert meta["INTERCEPTION_MODE"] == "REDIRECT"
    struct = json_format.ParseDict(meta, struct_pb2.Struct())
    assert from_node_metadata(captured.id, json_format.MessageToDict(struct)) == captured


def test_gateway_host_port_lookup() -> None:
    assert GATEWAY.host_port_for_gateway_port(443) == 8443
    assert GATEWAY.host_port_for_gateway_port(8080) is None


def test_minimal_metadata_takes_defaults() -> None:
    proxy = from_node_metadata("n", {"WORKLOAD_NAME": "w"})
    assert proxy == Proxy(id="n", kind=ProxyKind.SIDECAR, workload="w")
    assert proxy.namespace == "default"
    assert proxy.service_account == "default"
    assert proxy.address == "127.0.0.1"


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ({}, "WORKLOAD_NAME"),
        ({"WORKLOAD_NAME": ""}, "WORKLOAD_NAME"),
        ({"WORKLOAD_NAME": "w", "PLAIT_PROXY_KIND": "waypoint"}, "waypoint"),
        ({"WORKLOAD_NAME": "w", "LABELS": ["app"]}, "LABELS"),
        ({"WORKLOAD_NAME": "w", "INBOUND_PORT": "http"}, "INBOUND_PORT"),
        ({"WORKLOAD_NAME": "w", "GATEWAY_PORTS": [80]}, "GATEWAY_PORTS"),
        ({"WORKLOAD_NAME": "w", "GATEWAY_PORTS": {"80": "x"}}, "GATEWAY_PORTS"),
        ({"WORKLOAD_NAME": "w", "INTERCEPTION_MODE": "TPROXY"}, "INTERCEPTION_MODE"),
    ],
)
def test_bad_metadata_raises_node_metadata_error(meta: dict[str, Any], needle: str) -> None:
    with pytest.raises(NodeMetadataError, match=needle):
        from_node_metadata("n", meta)
