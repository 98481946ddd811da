"""The service registry values and Istio's protocol selection from port names."""

from __future__ import annotations

import pytest

from plait.model.labels import Labels
from plait.model.registry import (
    Endpoint,
    Protocol,
    Service,
    ServicePort,
    WorkloadInstance,
    protocol_of,
    service_hostname,
)


@pytest.mark.parametrize(
    ("name", "app_protocol", "expected"),
    [
        ("http", None, Protocol.HTTP),
        ("http-web", None, Protocol.HTTP),
        ("HTTP", None, Protocol.HTTP),
        ("http2", None, Protocol.HTTP2),
        ("http2-api", None, Protocol.HTTP2),
        ("grpc", None, Protocol.GRPC),
        ("grpc-web", None, Protocol.GRPC),
        ("https", None, Protocol.HTTPS),
        ("tcp-db", None, Protocol.TCP),
        ("tls", None, Protocol.TLS),
        ("mongo", None, Protocol.TCP),
        ("redis-cache", None, Protocol.TCP),
        ("mysql", None, Protocol.TCP),
        # appProtocol wins over the name
        ("http", "grpc", Protocol.GRPC),
        ("tcp", "HTTP", Protocol.HTTP),
        ("", "http2", Protocol.HTTP2),
        ("http", "grpc-web", Protocol.GRPC),
        # an unrecognised appProtocol falls back to the name, then is UNKNOWN
        ("http", "custom", Protocol.HTTP),
        ("web", "custom", Protocol.UNKNOWN),
        # unnamed or unprefixed ports are HTTP in local mode (no sniffing)
        (None, None, Protocol.HTTP),
        ("", None, Protocol.HTTP),
        ("web", None, Protocol.HTTP),
        ("httpx", None, Protocol.HTTP),
    ],
)
def test_protocol_of(name: str | None, app_protocol: str | None, expected: Protocol) -> None:
    assert protocol_of(name, app_protocol) is expected


def test_http_family() -> None:
    assert {p for p in Protocol if p.is_http} == {Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC}


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
        inbound_port=20001,
    )
    assert inst.endpoint() == Endpoint(
        address="127.0.0.1",
        port=20001,
        labels=labels,
        instance="reviews-v2-0",
        workload="reviews-v2",
        namespace="shop",
        service_account="reviews",
        weight=1,
    )
