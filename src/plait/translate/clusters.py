"""Clusters: one outbound cluster per service port and subset, one inbound cluster per sidecar.

An outbound cluster carries the DestinationRule policy in force for its (host, port,
subset) — `model.policy.HostRules.policy_for` — translated aspect by aspect: load
balancing (`lb`), connection pool and retry budget (`connpool`), outlier detection
(`outlier`) and client TLS (`clienttls`), in istiod's order; then mesh mTLS (`mtls`: auto
mTLS, or DestinationRule ISTIO_MUTUAL), which needs the destination's identities.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo_pb2

from plait.api.common import is_ip
from plait.api.destinationrule import TrafficPolicy
from plait.model.registry import Protocol, Resolution, Service, ServicePort
from plait.translate import clienttls, connpool, lb, mtls, names, outlier
from plait.translate.appprotocol import HTTP_OPTIONS, upstream_http_options

# Istio's default: 10 s to connect, and circuit-breaker thresholds raised to the maximum so
# that Envoy's own defaults (1024 connections/requests) never cap a mesh silently.
CONNECT_TIMEOUT = connpool.CONNECT_TIMEOUT


def _open_thresholds() -> circuit_breaker_pb2.CircuitBreakers:
    return connpool.circuit_breakers(None)


def _ads() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )


def _http_options(port: ServicePort, policy: TrafficPolicy | None) -> hpo_pb2.HttpProtocolOptions:
    """The upstream HTTP options: the port's protocol, then the policy's pool, TLS and hash."""
    options = hpo_pb2.HttpProtocolOptions()
    if port.protocol in (Protocol.HTTP2, Protocol.GRPC):
        options.explicit_http_config.http2_protocol_options.SetInParent()
    if policy is None:
        return options
    connpool.apply_http_options(options, policy.connection_pool)
    clienttls.apply_auto_sni(options, policy.tls)
    options.hash_policy.extend(lb.hash_policies(policy.load_balancer))
    return options


def _set_http_options(cluster: cluster_pb2.Cluster, options: hpo_pb2.HttpProtocolOptions) -> None:
    if not options.ListFields():
        return
    if options.WhichOneof("upstream_protocol_options") is None:
        options.explicit_http_config.http_protocol_options.SetInParent()  # HTTP/1.1, required
    cluster.typed_extension_protocol_options[HTTP_OPTIONS].Pack(options)


def outbound_cluster(
    service: Service,
    port: ServicePort,
    subset: str = "",
    policy: TrafficPolicy | None = None,
    identities: Sequence[str] = (),
) -> cluster_pb2.Cluster:
    """EDS for registry and STATIC services; DNS resolution for DNS ServiceEntries.

    `policy` is the effective DestinationRule traffic policy of this cluster, if any;
    `identities` are the SPIFFE IDs its mTLS peers may present (`mtls.identities`).
    """
    name = names.outbound_cluster(service.hostname, port.port, subset)
    pool = policy.connection_pool if policy is not None else None
    cluster = cluster_pb2.Cluster(
        name=name,
        connect_timeout=connpool.connect_timeout(policy),
        circuit_breakers=connpool.circuit_breakers(
            pool, policy.retry_budget if policy is not None else None
        ),
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
    keepalive = connpool.upstream_connection_options(pool.tcp if pool is not None else None)
    if keepalive is not None:
        cluster.upstream_connection_options.CopyFrom(keepalive)
    options = _http_options(port, policy)
    _set_http_options(cluster, options)
    if policy is not None:
        outlier.apply_outlier_detection(cluster, policy.outlier_detection)
    lb.apply_load_balancer(cluster, policy.load_balancer if policy is not None else None)
    tls = policy.tls if policy is not None else None
    socket = clienttls.transport_socket(tls)
    if socket is not None:
        cluster.transport_socket.CopyFrom(socket)
    http2 = options.explicit_http_config.HasField("http2_protocol_options")
    server_name = mtls.sni(service.hostname, port.port, subset)
    mtls.apply_upstream(cluster, service, server_name, tls, identities, http2=http2)
    return cluster


def _lb_endpoint(address: str, port: int) -> endpoint_components_pb2.LbEndpoint:
    return endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(
            address=address_pb2.Address(
                socket_address=address_pb2.SocketAddress(address=address, port_value=port)
            )
        )
    )


def host_cluster(name: str, host: str, port: int, connect_timeout_s: int) -> cluster_pb2.Cluster:
    """A cluster to one `host:port` outside the registry (a JWKS server, a trace
    collector): STATIC for an IP address, STRICT_DNS (IPv4 first) for a name."""
    ip = is_ip(host)
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.STATIC if ip else cluster_pb2.Cluster.STRICT_DNS,
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[_lb_endpoint(host, port)])
            ],
        ),
    )
    cluster.connect_timeout.FromSeconds(connect_timeout_s)
    if not ip:
        cluster.dns_lookup_family = cluster_pb2.Cluster.V4_PREFERRED
    return cluster


def inbound_cluster(
    app_address: str, app_port: int, protocol: Protocol = Protocol.HTTP
) -> cluster_pb2.Cluster:
    """The sidecar's route to its own app: a static cluster on the app's port, speaking the
    app port's protocol (`appprotocol.app_protocol`: h2c to a gRPC/HTTP2 app)."""
    name = names.inbound_cluster(app_port)
    cluster = cluster_pb2.Cluster(
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
    options = upstream_http_options(protocol)
    if options is not None:
        cluster.typed_extension_protocol_options[HTTP_OPTIONS].Pack(options)
    return cluster
