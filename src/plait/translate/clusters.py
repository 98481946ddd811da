"""Clusters: one outbound cluster per service port and subset, one inbound cluster per sidecar."""

from __future__ import annotations

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2, protocol_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from plait.model.registry import Protocol, Resolution, Service, ServicePort
from plait.translate import names

# Istio's default: 10 s to connect, and circuit-breaker thresholds raised to the maximum so
# that Envoy's own defaults (1024 connections/requests) never cap a mesh silently.
CONNECT_TIMEOUT = duration_pb2.Duration(seconds=10)
_UNLIMITED = 4294967295


def _open_thresholds() -> circuit_breaker_pb2.CircuitBreakers:
    t = circuit_breaker_pb2.CircuitBreakers.Thresholds(
        max_connections=wrappers_pb2.UInt32Value(value=_UNLIMITED),
        max_pending_requests=wrappers_pb2.UInt32Value(value=_UNLIMITED),
        max_requests=wrappers_pb2.UInt32Value(value=_UNLIMITED),
        max_retries=wrappers_pb2.UInt32Value(value=_UNLIMITED),
        track_remaining=True,
    )
    return circuit_breaker_pb2.CircuitBreakers(thresholds=[t])


def _ads() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )


def _set_protocol(cluster: cluster_pb2.Cluster, protocol: Protocol) -> None:
    if protocol not in (Protocol.HTTP2, Protocol.GRPC):
        return
    opts = http_protocol_options_pb2.HttpProtocolOptions(
        explicit_http_config=http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig(
            http2_protocol_options=protocol_pb2.Http2ProtocolOptions()
        )
    )
    cluster.typed_extension_protocol_options[
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ].Pack(opts)


def outbound_cluster(service: Service, port: ServicePort, subset: str = "") -> cluster_pb2.Cluster:
    """EDS for registry and STATIC services; DNS resolution for DNS ServiceEntries."""
    name = names.outbound_cluster(service.hostname, port.port, subset)
    cluster = cluster_pb2.Cluster(
        name=name,
        connect_timeout=CONNECT_TIMEOUT,
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
        circuit_breakers=_open_thresholds(),
    )
    if service.resolution in (Resolution.DNS, Resolution.DNS_ROUND_ROBIN):
        cluster.type = (
            cluster_pb2.Cluster.STRICT_DNS
            if service.resolution == Resolution.DNS
            else cluster_pb2.Cluster.LOGICAL_DNS
        )
        cluster.dns_lookup_family = cluster_pb2.Cluster.V4_PREFERRED
        target = port.target_port if isinstance(port.target_port, int) else port.port
        cluster.load_assignment.CopyFrom(
            endpoint_pb2.ClusterLoadAssignment(
                cluster_name=name,
                endpoints=[
                    endpoint_components_pb2.LocalityLbEndpoints(
                        lb_endpoints=[_lb_endpoint(service.hostname, target or port.port)]
                    )
                ],
            )
        )
    else:
        cluster.type = cluster_pb2.Cluster.EDS
        cluster.eds_cluster_config.CopyFrom(
            cluster_pb2.Cluster.EdsClusterConfig(eds_config=_ads(), service_name=name)
        )
    _set_protocol(cluster, port.protocol)
    return cluster


def _lb_endpoint(address: str, port: int) -> endpoint_components_pb2.LbEndpoint:
    return endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(
            address=address_pb2.Address(
                socket_address=address_pb2.SocketAddress(address=address, port_value=port)
            )
        )
    )


def inbound_cluster(app_address: str, app_port: int) -> cluster_pb2.Cluster:
    """The sidecar's route to its own app: a static cluster on the app's port."""
    name = names.inbound_cluster(app_port)
    return cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=CONNECT_TIMEOUT,
        circuit_breakers=_open_thresholds(),
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(
                    lb_endpoints=[_lb_endpoint(app_address, app_port)]
                )
            ],
        ),
    )
