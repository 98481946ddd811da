"""Connection pools: DestinationRule `connectionPool` and `retryBudget` → circuit breakers,
timeouts and upstream HTTP options.

Mirrors istiod's applyConnectionPool. Every circuit-breaker threshold starts at the
maximum (Envoy's own defaults — 1024 connections, 3 retries — would cap a mesh silently)
and only the limits a user sets lower it. As in istiod, 0 counts as unset for the
counters (`maxConnections`, `http1MaxPendingRequests`, `http2MaxRequests`, `maxRetries`,
`maxRequestsPerConnection`): the protobuf Istio reads cannot tell 0 from unset.

- `tcp.connectTimeout` is the cluster's connect timeout; when unset, plait's extension
  `trafficPolicy.timeout.connectTimeout` applies, else Istio's 10 s;
- `tcp.tcpKeepalive` becomes socket keepalive on upstream connections (whole seconds);
- `http.idleTimeout` (else `tcp.idleTimeout`), `http.maxRequestsPerConnection` and
  `tcp.maxConnectionDuration` are Envoy's common HTTP protocol options;
- `http.h2UpgradePolicy: UPGRADE` speaks HTTP/2 to the upstream, `useClientProtocol`
  the caller's own HTTP version; `maxConcurrentStreams` and `http2KeepAlive` apply to
  HTTP/2 upstream connections;
- `retryBudget` limits concurrent retries to a share of active requests (Envoy's
  retry_budget, which then replaces `maxRetries`). Envoy has no budget interval, so
  `budgetInterval` is not applied.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2
from envoy.config.core.v3 import address_pb2, protocol_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from plait.api.destinationrule import (
    ConnectionPoolSettings,
    HTTPSettings,
    RetryBudget,
    TCPSettings,
    TrafficPolicy,
)
from plait.translate.pbtime import duration, whole_seconds

CONNECT_TIMEOUT = duration_pb2.Duration(seconds=10)  # Istio's mesh default
UNLIMITED = 2**32 - 1

Thresholds = circuit_breaker_pb2.CircuitBreakers.Thresholds


def _limit(value: int | None) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=min(value, UNLIMITED) if value else UNLIMITED)


def circuit_breakers(
    pool: ConnectionPoolSettings | None, budget: RetryBudget | None = None
) -> circuit_breaker_pb2.CircuitBreakers:
    tcp = pool.tcp if pool is not None else None
    http = pool.http if pool is not None else None
    t = Thresholds(
        max_connections=_limit(tcp.max_connections if tcp else None),
        max_pending_requests=_limit(http.http1_max_pending_requests if http else None),
        max_requests=_limit(http.http2_max_requests if http else None),
        max_retries=_limit(http.max_retries if http else None),
        track_remaining=True,
    )
    if budget is not None:
        t.retry_budget.SetInParent()
        if budget.percent is not None:
            t.retry_budget.budget_percent.CopyFrom(percent_pb2.Percent(value=budget.percent))
        if budget.min_retry_concurrency is not None:
            t.retry_budget.min_retry_concurrency.value = budget.min_retry_concurrency
    return circuit_breaker_pb2.CircuitBreakers(thresholds=[t])


def connect_timeout(policy: TrafficPolicy | None) -> duration_pb2.Duration:
    if policy is not None:
        pool = policy.connection_pool
        if pool is not None and pool.tcp is not None and pool.tcp.connect_timeout is not None:
            return duration(pool.tcp.connect_timeout)
        if policy.timeout is not None and policy.timeout.connect_timeout is not None:
            return duration(policy.timeout.connect_timeout)
    return CONNECT_TIMEOUT


def upstream_connection_options(
    tcp: TCPSettings | None,
) -> cluster_pb2.UpstreamConnectionOptions | None:
    keepalive = tcp.tcp_keepalive if tcp is not None else None
    if keepalive is None:
        return None
    ka = address_pb2.TcpKeepalive()
    if keepalive.probes:
        ka.keepalive_probes.value = keepalive.probes
    if keepalive.time is not None:
        ka.keepalive_time.value = whole_seconds(keepalive.time)
    if keepalive.interval is not None:
        ka.keepalive_interval.value = whole_seconds(keepalive.interval)
    return cluster_pb2.UpstreamConnectionOptions(tcp_keepalive=ka)


def apply_http_options(
    options: hpo_pb2.HttpProtocolOptions, pool: ConnectionPoolSettings | None
) -> None:
    """Common options, protocol choice and HTTP/2 settings from the pool's `http`/`tcp`."""
    if pool is None:
        return
    http, tcp = pool.http, pool.tcp
    common = protocol_pb2.HttpProtocolOptions()
    idle = http.idle_timeout if http is not None else None
    if idle is None and tcp is not None:
        idle = tcp.idle_timeout
    if idle is not None:
        common.idle_timeout.CopyFrom(duration(idle))
    if http is not None and http.max_requests_per_connection:
        common.max_requests_per_connection.value = min(http.max_requests_per_connection, UNLIMITED)
    if tcp is not None and tcp.max_connection_duration is not None:
        common.max_connection_duration.CopyFrom(duration(tcp.max_connection_duration))
    if common.ListFields():
        options.common_http_protocol_options.MergeFrom(common)
    if http is None:
        return
    _protocol(options, http)
    h2 = _http2_options(options)
    if h2 is not None:
        if http.max_concurrent_streams:
            h2.max_concurrent_streams.value = min(http.max_concurrent_streams, UNLIMITED)
        keepalive = http.http2_keep_alive
        if keepalive is not None:
            h2.connection_keepalive.SetInParent()
            if keepalive.interval is not None:
                h2.connection_keepalive.interval.CopyFrom(duration(keepalive.interval))
            if keepalive.timeout is not None:
                h2.connection_keepalive.timeout.CopyFrom(duration(keepalive.timeout))


def _protocol(options: hpo_pb2.HttpProtocolOptions, http: HTTPSettings) -> None:
    if http.use_client_protocol:
        options.use_downstream_protocol_config.CopyFrom(
            hpo_pb2.HttpProtocolOptions.UseDownstreamHttpConfig(
                http_protocol_options=protocol_pb2.Http1ProtocolOptions(),
                http2_protocol_options=protocol_pb2.Http2ProtocolOptions(),
            )
        )
    elif http.h2_upgrade_policy == "UPGRADE":
        options.explicit_http_config.http2_protocol_options.SetInParent()


def _http2_options(
    options: hpo_pb2.HttpProtocolOptions,
) -> protocol_pb2.Http2ProtocolOptions | None:
    kind = options.WhichOneof("upstream_protocol_options")
    if kind == "explicit_http_config" and options.explicit_http_config.HasField(
        "http2_protocol_options"
    ):
        return options.explicit_http_config.http2_protocol_options
    if kind == "use_downstream_protocol_config":
        return options.use_downstream_protocol_config.http2_protocol_options
    return None
