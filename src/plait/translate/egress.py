"""Traffic that leaves the registry: the outbound traffic policy and external hosts.

**Outbound traffic policy** (MeshConfig `outboundTrafficPolicy.mode`), as istiod builds it
(`buildCatchAllVirtualHost`): the sidecar's outbound table ends with a catch-all virtual
host (domains `*`) for every host no service or ServiceEntry claims.

- ALLOW_ANY (the default): `allow_any` routes to `PassthroughCluster` with no timeout;
- REGISTRY_ONLY: `block_all` answers 502 itself (a direct response, like istiod's; there
  is no cluster to count an upstream failure against).

**Passing through without traffic capture.** Istio's PassthroughCluster is ORIGINAL_DST:
iptables captured the connection, so the kernel knows where it was going. Local mode has
no capture; the app speaks to its sidecar as an HTTP proxy, and the only record of the
destination is the request's authority. So PassthroughCluster is Envoy's dynamic forward
proxy (DFP): the DFP HTTP filter resolves the authority through a DNS cache and the DFP
cluster connects to the address found. The filter is on the outbound listener always (it
does nothing for routes to other clusters), so switching the mode changes RDS only.

**ServiceEntry resolution** (clusters.py builds the clusters; this module finishes the
ones whose addresses are not in the registry):

- NONE: "connect to the address the caller asked for", i.e. pass through; the entry's
  clusters become DFP clusters on the same DNS cache, so VirtualService and
  DestinationRule policies still apply to the host (and to wildcard hosts);
- DYNAMIC_DNS (wildcard hosts, each request's host resolved when it is made): the same
  DFP clusters;
- DNS / DNS_ROUND_ROBIN: the entry's endpoint addresses are resolved (STRICT_DNS /
  LOGICAL_DNS), with per-endpoint ports, weights and subset labels; without endpoints,
  the host itself is resolved (as clusters.py already does).

Pure: no I/O; `finish_cluster` completes each cluster before it is serialized.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.clusters.dynamic_forward_proxy.v3 import cluster_pb2 as dfp_cluster_pb2
from envoy.extensions.common.dynamic_forward_proxy.v3 import dns_cache_pb2
from envoy.extensions.filters.http.dynamic_forward_proxy.v3 import (
    dynamic_forward_proxy_pb2 as dfp_filter_pb2,
)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo_pb2
from google.protobuf import any_pb2, duration_pb2

from plait.model.meshsettings import OutboundMode
from plait.model.registry import Endpoint, Resolution, Service
from plait.model.snapshot import MeshSnapshot
from plait.translate import endpoints
from plait.translate.appprotocol import HTTP_OPTIONS
from plait.translate.clusters import CONNECT_TIMEOUT

PASSTHROUGH_CLUSTER = "PassthroughCluster"
ALLOW_ANY_ROUTE = "allow_any"
BLOCK_ALL_ROUTE = "block_all"
BLOCKED_STATUS = 502  # what istiod's block_all route answers
DFP_CLUSTER_TYPE = "envoy.clusters.dynamic_forward_proxy"
DFP_FILTER = "envoy.filters.http.dynamic_forward_proxy"
DNS_CACHE = "outbound_dns_cache"

_NO_TIMEOUT = duration_pb2.Duration(seconds=0)


def dns_cache_config() -> dns_cache_pb2.DnsCacheConfig:
    """The one DNS cache that the DFP filter and every DFP cluster share (by name)."""
    return dns_cache_pb2.DnsCacheConfig(
        name=DNS_CACHE, dns_lookup_family=cluster_pb2.Cluster.V4_PREFERRED
    )


def forward_proxy_filter() -> dfp_filter_pb2.FilterConfig:
    """The outbound listener's DFP HTTP filter config (see the module docstring)."""
    return dfp_filter_pb2.FilterConfig(dns_cache_config=dns_cache_config())


def _forward_proxy_type() -> cluster_pb2.Cluster.CustomClusterType:
    config = any_pb2.Any()
    config.Pack(dfp_cluster_pb2.ClusterConfig(dns_cache_config=dns_cache_config()))
    return cluster_pb2.Cluster.CustomClusterType(name=DFP_CLUSTER_TYPE, typed_config=config)


def passthrough_cluster() -> cluster_pb2.Cluster:
    """Where `allow_any` sends unregistered hosts: the host named by the request."""
    return cluster_pb2.Cluster(
        name=PASSTHROUGH_CLUSTER,
        connect_timeout=CONNECT_TIMEOUT,
        lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED,
        cluster_type=_forward_proxy_type(),
    )


def catch_all_vhost(snapshot: MeshSnapshot, mode: OutboundMode | None = None) -> rc.VirtualHost:
    """The virtual host for every domain no service claims, per the outbound mode (`mode`:
    a Sidecar's, else the mesh's)."""
    route = rc.Route(match=rc.RouteMatch(prefix="/"))
    if (mode or snapshot.mesh.outbound_mode) is OutboundMode.REGISTRY_ONLY:
        route.name = BLOCK_ALL_ROUTE
        route.direct_response.status = BLOCKED_STATUS
        return rc.VirtualHost(name=BLOCK_ALL_ROUTE, domains=["*"], routes=[route])
    route.name = ALLOW_ANY_ROUTE
    route.route.CopyFrom(rc.RouteAction(cluster=PASSTHROUGH_CLUSTER, timeout=_NO_TIMEOUT))
    return rc.VirtualHost(name=ALLOW_ANY_ROUTE, domains=["*"], routes=[route])


def finish_cluster(
    cluster: cluster_pb2.Cluster,
    service: Service,
    eps: Sequence[Endpoint],
    labels: Mapping[str, str],
) -> None:
    """ServiceEntry resolution, applied to an outbound cluster before it is serialized:
    NONE and DYNAMIC_DNS become a dynamic-forward-proxy cluster (no EDS), DNS and
    DNS_ROUND_ROBIN resolve the entry's endpoint addresses (when it lists any) instead of
    its host."""
    if service.resolution in (Resolution.NONE, Resolution.DYNAMIC_DNS):
        _make_forward_proxy(cluster)
    elif service.resolution in (Resolution.DNS, Resolution.DNS_ROUND_ROBIN) and eps:
        _resolve_endpoints(cluster, eps, labels)


def _make_forward_proxy(cluster: cluster_pb2.Cluster) -> None:
    """Turn a cluster into a DFP cluster, keeping its connection and resilience settings."""
    cluster.ClearField("eds_cluster_config")
    cluster.ClearField("load_assignment")
    cluster.ClearField("load_balancing_policy")
    lb_config = cluster.WhichOneof("lb_config")
    if lb_config is not None:
        cluster.ClearField(lb_config)  # the DFP cluster picks the host itself
    cluster.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
    cluster.cluster_type.CopyFrom(_forward_proxy_type())
    options = cluster.typed_extension_protocol_options
    if HTTP_OPTIONS in options:
        # Envoy refuses a DFP cluster with HTTP protocol options unless they send the
        # request's host as SNI and verify it (`auto_sni`, `auto_san_validation`)
        http = hpo_pb2.HttpProtocolOptions()
        options[HTTP_OPTIONS].Unpack(http)
        http.upstream_http_protocol_options.auto_sni = True
        http.upstream_http_protocol_options.auto_san_validation = True
        options[HTTP_OPTIONS].Pack(http)


def _resolve_endpoints(
    cluster: cluster_pb2.Cluster, eps: Sequence[Endpoint], labels: Mapping[str, str]
) -> None:
    assignment = endpoints.load_assignment(cluster.name, eps, dict(labels))
    if cluster.type == cluster_pb2.Cluster.LOGICAL_DNS and not assignment.endpoints:
        cluster.type = cluster_pb2.Cluster.STRICT_DNS  # LOGICAL_DNS needs exactly one host
    cluster.load_assignment.CopyFrom(assignment)
