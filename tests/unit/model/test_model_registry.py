"""The service registry values and Istio's protocol selection from port names."""

from __future__ import annotations

import pytest

from plait.model.labels import Labels
from plait.model.registry import (
    Endpoint,
    PortMap,
    Protocol,
    Service,
    ServicePort,
    WorkloadInstance,
    protocol_of,
    service_hostname,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("http", Protocol.HTTP),
        ("http-web", Protocol.HTTP),
        ("HTTP", Protocol.HTTP),
        ("http2", Protocol.HTTP2),
        ("http2-api", Protocol.HTTP2),
        ("h2c", Protocol.HTTP2),
        ("grpc", Protocol.GRPC),
        ("grpc-recommend", Protocol.GRPC),
        ("grpc-web", Protocol.GRPC),
        ("grpc-web-ui", Protocol.GRPC),
        ("https", Protocol.HTTPS),
        ("https-admin", Protocol.HTTPS),
        ("tcp-db", Protocol.TCP),
        ("tls", Protocol.TLS),
        ("udp-dns", Protocol.UDP),
        # mongo/mysql/redis: Istio's protocol filters are off by default → opaque TCP
        ("mongo", Protocol.TCP),
        ("redis-cache", Protocol.TCP),
        ("mysql", Protocol.TCP),
    ],
)
def test_port_name_prefix_selects_the_protocol(name: str, expected: Protocol) -> None:
    assert protocol_of(name, None) is expected


@pytest.mark.parametrize(
    ("name", "app_protocol", "expected"),
    [
        ("http", "grpc", Protocol.GRPC),
        ("tcp", "HTTP", Protocol.HTTP),
        ("", "http2", Protocol.HTTP2),
        (None, "grpc", Protocol.GRPC),
        ("http", "grpc-web", Protocol.GRPC),
        ("grpc", "tcp", Protocol.TCP),
        ("http", "kubernetes.io/h2c", Protocol.HTTP2),
        ("tcp", "kubernetes.io/ws", Protocol.HTTP),
        ("http", "kubernetes.io/wss", Protocol.HTTPS),
        # an appProtocol plait does not know still wins: the name is not consulted
        ("grpc", "custom", Protocol.UNKNOWN),
        ("http", "example.com/proto", Protocol.UNKNOWN),
    ],
)
def test_app_protocol_wins_over_the_port_name(
    name: str | None, app_protocol: str, expected: Protocol
) -> None:
    assert protocol_of(name, app_protocol) is expected


@pytest.mark.parametrize("name", [None, "", "web", "httpx", "metrics", "kubernetes.io/h2c"])
def test_undeclared_protocol_is_unknown(name: str | None) -> None:
    """No sniffing: no declared protocol is UNKNOWN (kubernetes.io/… counts only as appProtocol)."""
    assert protocol_of(name, None) is Protocol.UNKNOWN
    assert protocol_of(name, "") is Protocol.UNKNOWN


def test_http_family() -> None:
    """UNKNOWN is routed as HTTP (the sidecar is an HTTP proxy); only h2/gRPC speak h2 to apps."""
    assert {p for p in Protocol if p.is_http} == {
        Protocol.HTTP,
        Protocol.HTTP2,
        Protocol.GRPC,
        Protocol.UNKNOWN,
    }
    assert {p for p in Protocol if p.is_http2} == {Protocol.HTTP2, Protocol.GRPC}


def test_service_hostname_is_the_kubernetes_fqdn() -> None:
    assert service_hostname("reviews", "shop") == "reviews.shop.svc.cluster.local"


def test_service_port_lookup() -> None:
    svc = Service(
        hostname="a.default.svc.cluster.local",
        name="a",
        namespace="default",
        ports=(ServicePort("http", 80), ServicePort("grpc", 9000, Protocol.GRPC)),
    )
    assert svc.port(9000) == ServicePort("grpc", 9000, Protocol.GRPC)
    assert svc.port(81) is None


def test_workload_instance_endpoint_is_its_sidecar_inbound_port() -> None:
    labels = Labels.of({"app": "reviews", "version": "v2"})
    inst = WorkloadInstance(
        name="reviews-v2-0",
        workload="reviews-v2",
        namespace="shop",
        labels=labels,
        service_account="reviews",
        address="127.0.0.1",
        ports=PortMap.all_to(20001),
    )
    assert inst.endpoint(ServicePort("http", 9080, target_port=8080)) == Endpoint(
        address="127.0.0.1",
        port=20001,
        labels=labels,
        instance="reviews-v2-0",
        workload="reviews-v2",
        namespace="shop",
        service_account="reviews",
        weight=1,
        sidecar=True,
    )
