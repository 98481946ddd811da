"""What captured traffic needs on both sides: Istio's passthrough and black-hole
clusters, the listener filters that recover and sniff a redirected connection, and a TCP
proxy filter chain.

A captured connection reached the proxy through iptables REDIRECT (`plait capture
apply`), so the kernel still knows where the app sent it (SO_ORIGINAL_DST):
`original_dst` restores that address on the socket, ORIGINAL_DST clusters connect to it.
`http_inspector` sniffs HTTP on ports whose protocol nobody declared; it waits for the
client's first bytes, so it is enabled only on such ports and bounded by a detection
timeout after which the connection continues as opaque TCP: a server-first protocol
(MySQL, Redis, Postgres greetings) on a declared port never waits (Istio issue #10062).
Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.type.v3 import range_pb2
from google.protobuf import duration_pb2

from plait.translate.clusters import CONNECT_TIMEOUT

PASSTHROUGH_CLUSTER = "PassthroughCluster"  # as egress.PASSTHROUGH_CLUSTER, ORIGINAL_DST here
BLACKHOLE_CLUSTER = "BlackHoleCluster"
INBOUND_PASSTHROUGH_CLUSTER = "InboundPassthroughCluster"
INBOUND_PASSTHROUGH_SOURCE = "127.0.0.6"
"""The source the proxy binds to reach its app; the capture rules let it through (Istio's)."""
ORIGINAL_DST = "envoy.filters.listener.original_dst"
HTTP_INSPECTOR = "envoy.filters.listener.http_inspector"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
SNIFFED_HTTP = ("http/1.1", "http/1.0", "h2c")
"""What http_inspector reports as the application protocol of plain-text HTTP."""
DETECTION_TIMEOUT = duration_pb2.Duration(nanos=100_000_000)
"""Istio's former protocolDetectionTimeout: the most a sniffed connection waits."""


def original_dst() -> lc.ListenerFilter:
    listener_filter = lc.ListenerFilter(name=ORIGINAL_DST)
    listener_filter.typed_config.Pack(original_dst_pb2.OriginalDst())
    return listener_filter


def http_inspector(sniffed_ports: Iterable[int]) -> lc.ListenerFilter:
    """Sniffs HTTP on `sniffed_ports` only: disabled for every other destination port."""
    listener_filter = lc.ListenerFilter(name=HTTP_INSPECTOR)
    listener_filter.typed_config.Pack(http_inspector_pb2.HttpInspector())
    ranges = [
        lc.ListenerFilterChainMatchPredicate(
            destination_port_range=range_pb2.Int32Range(start=port, end=port + 1)
        )
        for port in sorted(set(sniffed_ports))
    ]
    enabled = (
        ranges[0]
        if len(ranges) == 1
        else lc.ListenerFilterChainMatchPredicate(
            or_match=lc.ListenerFilterChainMatchPredicate.MatchSet(rules=ranges)
        )
    )
    listener_filter.filter_disabled.not_match.CopyFrom(enabled)
    return listener_filter


def tcp_chain(cluster: str, stat_prefix: str, name: str = "") -> lc.FilterChain:
    chain = lc.FilterChain(name=name)
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix, cluster=cluster)
    chain.filters.add(name=TCP_PROXY).typed_config.Pack(proxy)
    return chain


def weighted_tcp_chain(
    clusters: Sequence[tuple[str, int]], stat_prefix: str, name: str = ""
) -> lc.FilterChain:
    """tcp_proxy splitting connections over (cluster, weight) pairs."""
    chain = lc.FilterChain(name=name)
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix)
    for cluster, weight in clusters:
        proxy.weighted_clusters.clusters.add(name=cluster, weight=weight)
    chain.filters.add(name=TCP_PROXY).typed_config.Pack(proxy)
    return chain


def _original_dst_cluster(name: str) -> cluster_pb2.Cluster:
    return cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.ORIGINAL_DST,
        lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED,
        connect_timeout=CONNECT_TIMEOUT,
    )


def passthrough_cluster() -> cluster_pb2.Cluster:
    """ALLOW_ANY for a captured proxy: connect to where the app was connecting."""
    return _original_dst_cluster(PASSTHROUGH_CLUSTER)


def inbound_passthrough_cluster() -> cluster_pb2.Cluster:
    """Inbound to an undeclared app port: the original destination, from 127.0.0.6."""
    cluster = _original_dst_cluster(INBOUND_PASSTHROUGH_CLUSTER)
    cluster.upstream_bind_config.source_address.CopyFrom(
        address_pb2.SocketAddress(address=INBOUND_PASSTHROUGH_SOURCE, port_value=0)
    )
    return cluster


def blackhole_cluster() -> cluster_pb2.Cluster:
    """REGISTRY_ONLY: a cluster with no endpoints, so the connection is closed at once."""
    return cluster_pb2.Cluster(
        name=BLACKHOLE_CLUSTER, type=cluster_pb2.Cluster.STATIC, connect_timeout=CONNECT_TIMEOUT
    )
