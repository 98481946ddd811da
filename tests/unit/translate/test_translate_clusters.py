"""Outbound clusters (EDS, DNS, HTTP/2) and the sidecar's inbound cluster."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from plait.model.registry import Protocol, Resolution, Service, ServicePort
from plait.translate import clusters

HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
UNLIMITED = 2**32 - 1


def service(resolution: Resolution = Resolution.REGISTRY, *ports: ServicePort) -> Service:
    return Service(
        hostname="reviews.default.svc.cluster.local",
        name="reviews",
        namespace="default",
        ports=ports or (ServicePort("http", 8080),),
        resolution=resolution,
    )


def test_registry_service_port_is_an_eds_cluster_over_ads() -> None:
    svc = service()
    c = clusters.outbound_cluster(svc, svc.ports[0])
    assert c.name == "outbound|8080||reviews.default.svc.cluster.local"
    assert c.type == cluster_pb2.Cluster.EDS
    assert c.eds_cluster_config.service_name == c.name
    assert c.eds_cluster_config.eds_config.HasField("ads")
    assert c.eds_cluster_config.eds_config.resource_api_version == config_source_pb2.V3
    assert c.connect_timeout.seconds == 10
    assert c.lb_policy == cluster_pb2.Cluster.ROUND_ROBIN
    assert not c.HasField("load_assignment")
    (t,) = c.circuit_breakers.thresholds
    assert (
        t.max_connections.value,
        t.max_pending_requests.value,
        t.max_requests.value,
        t.max_retries.value,
    ) == (UNLIMITED,) * 4
    assert HTTP_OPTIONS not in c.typed_extension_protocol_options


def test_subset_cluster_name() -> None:
    svc = service()
    c = clusters.outbound_cluster(svc, svc.ports[0], "v2")
    assert c.name == "outbound|8080|v2|reviews.default.svc.cluster.local"
    assert c.eds_cluster_config.service_name == c.name


def test_static_service_entry_is_eds_too() -> None:
    svc = service(Resolution.STATIC)
    assert clusters.outbound_cluster(svc, svc.ports[0]).type == cluster_pb2.Cluster.EDS


@pytest.mark.parametrize("protocol", [Protocol.HTTP2, Protocol.GRPC])
def test_http2_and_grpc_ports_speak_http2_upstream(protocol: Protocol) -> None:
    port = ServicePort("grpc", 9000, protocol)
    c = clusters.outbound_cluster(service(Resolution.REGISTRY, port), port)
    opts = http_protocol_options_pb2.HttpProtocolOptions()
    assert c.typed_extension_protocol_options[HTTP_OPTIONS].Unpack(opts)
    assert opts.explicit_http_config.HasField("http2_protocol_options")


@pytest.mark.parametrize(
    ("resolution", "kind"),
    [
        (Resolution.DNS, cluster_pb2.Cluster.STRICT_DNS),
        (Resolution.DNS_ROUND_ROBIN, cluster_pb2.Cluster.LOGICAL_DNS),
    ],
)
def test_dns_service_entries_resolve_the_host(
    resolution: Resolution, kind: cluster_pb2.Cluster.DiscoveryType
) -> None:
    svc = Service(
        hostname="api.example.com",
        name="api.example.com",
        namespace="default",
        ports=(ServicePort("http", 80, Protocol.HTTP, 8080), ServicePort("https", 443)),
        resolution=resolution,
        external=True,
    )
    c = clusters.outbound_cluster(svc, svc.ports[0])
    assert c.type == kind
    assert c.dns_lookup_family == cluster_pb2.Cluster.V4_PREFERRED
    assert not c.HasField("eds_cluster_config")
    assert c.load_assignment.cluster_name == "outbound|80||api.example.com"
    (lb,) = c.load_assignment.endpoints[0].lb_endpoints
    sock = lb.endpoint.address.socket_address
    assert (sock.address, sock.port_value) == ("api.example.com", 8080)  # targetPort
    https = clusters.outbound_cluster(svc, svc.ports[1])
    (lb,) = https.load_assignment.endpoints[0].lb_endpoints
    assert lb.endpoint.address.socket_address.port_value == 443


def test_inbound_cluster_is_static_on_the_app_port() -> None:
    c = clusters.inbound_cluster("127.0.0.1", 9080)
    assert c.name == "inbound|9080||"
    assert c.type == cluster_pb2.Cluster.STATIC
    assert c.load_assignment.cluster_name == "inbound|9080||"
    (lb,) = c.load_assignment.endpoints[0].lb_endpoints
    sock = lb.endpoint.address.socket_address
    assert (sock.address, sock.port_value) == ("127.0.0.1", 9080)
