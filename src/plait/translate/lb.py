"""Load balancing: DestinationRule `loadBalancer` → a cluster's lb_policy and hash policy.

Follows istiod's applyLoadBalancer (pilot/pkg/networking/core/cluster_traffic_policy.go):

- `simple`: LEAST_REQUEST (and its old name LEAST_CONN), RANDOM and ROUND_ROBIN map to the
  Envoy policy of that name. Unset (or UNSPECIFIED) is ROUND_ROBIN in plait; Istio picks
  LEAST_REQUEST. plait keeps round robin so that small local meshes spread requests
  evenly and predictably; name LEAST_REQUEST to get Istio's default.
- `PASSTHROUGH` is Istio's ORIGINAL_DST cluster: the connection goes to the address the
  caller dialled. In local mode the app calls a service *name* through an HTTP proxy, so
  there is no original address to go to; plait load-balances as if `simple` were unset
  (documented in docs/traffic/destination-rules.md).
- `warmup` (or the older `warmupDurationSecs`) is Envoy's slow start, which only round
  robin and least request support.
- `consistentHash` makes the cluster RING_HASH (default; `minimumRingSize` 1024 as in
  Istio) or MAGLEV. The hash key (`httpHeaderName`, `httpCookie`, `useSourceIp`,
  `httpQueryParameterName`) is a hash policy; istiod puts it on every route to the
  cluster, plait puts it on the cluster itself (Envoy's upstream `HttpProtocolOptions.
  hash_policy`), which Envoy uses for every route to that cluster — the same effect,
  and a weighted route hashes per destination as Istio intends.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from plait.api.destinationrule import ConsistentHashLB, LoadBalancerSettings
from plait.translate.pbtime import duration

DEFAULT_RING_SIZE = 1024  # Envoy's default, which istiod sets explicitly
AGGRESSION_RUNTIME_KEY = "upstream.slow_start.aggression"

Hash = rc.RouteAction.HashPolicy


def apply_load_balancer(cluster: cluster_pb2.Cluster, lb: LoadBalancerSettings | None) -> None:
    """Set lb_policy and its config on `cluster`."""
    if lb is not None and lb.consistent_hash is not None:
        _consistent_hash(cluster, lb.consistent_hash)
        return
    simple = lb.simple if lb is not None else None
    if simple == "RANDOM":
        cluster.lb_policy = cluster_pb2.Cluster.RANDOM
        return
    slow_start = _slow_start(lb)
    if simple in ("LEAST_REQUEST", "LEAST_CONN"):
        cluster.lb_policy = cluster_pb2.Cluster.LEAST_REQUEST
        if slow_start is not None:
            cluster.least_request_lb_config.slow_start_config.CopyFrom(slow_start)
        return
    cluster.lb_policy = cluster_pb2.Cluster.ROUND_ROBIN  # also PASSTHROUGH, see module doc
    if slow_start is not None:
        cluster.round_robin_lb_config.slow_start_config.CopyFrom(slow_start)


def _slow_start(lb: LoadBalancerSettings | None) -> cluster_pb2.Cluster.SlowStartConfig | None:
    if lb is None:
        return None
    if lb.warmup is not None:
        config = cluster_pb2.Cluster.SlowStartConfig(slow_start_window=duration(lb.warmup.duration))
        if lb.warmup.aggression is not None:
            config.aggression.CopyFrom(
                base_pb2.RuntimeDouble(
                    default_value=lb.warmup.aggression, runtime_key=AGGRESSION_RUNTIME_KEY
                )
            )
        if lb.warmup.minimum_percent is not None:
            config.min_weight_percent.CopyFrom(percent_pb2.Percent(value=lb.warmup.minimum_percent))
        return config
    if lb.warmup_duration_secs is not None:
        return cluster_pb2.Cluster.SlowStartConfig(
            slow_start_window=duration(lb.warmup_duration_secs)
        )
    return None


def _consistent_hash(cluster: cluster_pb2.Cluster, ch: ConsistentHashLB) -> None:
    if ch.maglev is not None:
        cluster.lb_policy = cluster_pb2.Cluster.MAGLEV
        if ch.maglev.table_size:
            cluster.maglev_lb_config.table_size.value = ch.maglev.table_size
        return
    cluster.lb_policy = cluster_pb2.Cluster.RING_HASH
    if ch.ring_hash is not None:
        size = ch.ring_hash.minimum_ring_size
    else:  # istiod sets the ring size explicitly, from the deprecated top-level field if set
        size = ch.minimum_ring_size or DEFAULT_RING_SIZE
    if size:
        cluster.ring_hash_lb_config.minimum_ring_size.CopyFrom(wrappers_pb2.UInt64Value(value=size))


def hash_policies(lb: LoadBalancerSettings | None) -> list[rc.RouteAction.HashPolicy]:
    """The hash key of a consistent-hash policy (none when no key is named)."""
    ch = lb.consistent_hash if lb is not None else None
    if ch is None:
        return []
    if ch.http_header_name:
        return [Hash(header=Hash.Header(header_name=ch.http_header_name))]
    if ch.http_cookie is not None:
        c = ch.http_cookie
        # With a ttl Envoy sets the cookie when the request has none (ttl 0: a session cookie).
        cookie = Hash.Cookie(name=c.name, path=c.path or "")
        if c.ttl is not None:
            cookie.ttl.CopyFrom(duration(c.ttl))
        cookie.attributes.extend(
            Hash.CookieAttribute(name=a.name, value=a.value or "") for a in c.attributes
        )
        return [Hash(cookie=cookie)]
    if ch.use_source_ip:
        return [Hash(connection_properties=Hash.ConnectionProperties(source_ip=True))]
    if ch.http_query_parameter_name:
        return [Hash(query_parameter=Hash.QueryParameter(name=ch.http_query_parameter_name))]
    return []
