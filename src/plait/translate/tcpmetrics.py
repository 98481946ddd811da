"""Istio's TCP metrics, counted by Envoy itself on a captured sidecar's tcp_proxy chains.

The same mechanism as the request metrics (`metrics`): Envoy's stats access logger, one
tag per label, under `STAT_PREFIX`. A tcp_proxy logs twice per connection: when its
upstream connection is up (`flush_access_log_on_connected`, log type
TcpUpstreamConnected) and when the connection ends (TcpConnectionEnd). So

- `istio_tcp_connections_opened_total` +1 on TcpUpstreamConnected;
- `istio_tcp_connections_closed_total` +1, `istio_tcp_sent_bytes_total` +%BYTES_SENT%
  (towards the caller: the response direction, as Istio counts it) and
  `istio_tcp_received_bytes_total` +%BYTES_RECEIVED% on TcpConnectionEnd.

Bytes are counted when a connection ends (Istio also reports long connections
periodically; not yet here). Labels are Istio's TCP set (`TCP_LABEL_NAMES`: the request
labels without `response_code` and `grpc_response_status`, `request_protocol` = tcp).
A TCP connection carries no caller claim, so on destination reports the caller is known
by its certificate only (`telemetry.istio.caller`: principal and namespace). Pure.
"""

from __future__ import annotations

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.data.accesslog.v3 import accesslog_pb2 as data_pb2
from envoy.extensions.access_loggers.stats.v3 import stats_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from plait.translate.metrics import LABEL_NAMES, STAT_PREFIX, STATS_LOGGER, UNKNOWN, Tags

TCP_OPENED = "istio_tcp_connections_opened_total"
TCP_CLOSED = "istio_tcp_connections_closed_total"
TCP_SENT = "istio_tcp_sent_bytes_total"
TCP_RECEIVED = "istio_tcp_received_bytes_total"
TCP_FAMILIES = (TCP_SENT, TCP_RECEIVED, TCP_OPENED, TCP_CLOSED)
TCP_PROXY = "envoy.filters.network.tcp_proxy"
_HTTP_ONLY = ("response_code", "grpc_response_status")
TCP_LABEL_NAMES = tuple(n for n in LABEL_NAMES if n not in _HTTP_ONLY)
"""Every label of the istio_tcp_* families, in exposition order."""


def tcp_tags(tags: Tags) -> Tags:
    """Request tags (`metrics.source_tags` / `destination_tags`) made TCP's."""
    out = []
    for name, value in tags:
        if name in _HTTP_ONLY:
            continue
        if name == "request_protocol":
            value = "tcp"
        elif name == "source_peer":
            value = UNKNOWN  # no claim on a TCP connection: the certificate says who
        out.append((name, value))
    return out


def _logger(
    tags: Tags, when: data_pb2.AccessLogType.ValueType, counters: list[tuple[str, str | None]]
) -> accesslog_pb2.AccessLog:
    def counter(name: str, value_format: str | None) -> stats_pb2.Config.Counter:
        stat = stats_pb2.Config.Stat(
            name=name, tags=[stats_pb2.Config.Tag(name=n, value_format=v) for n, v in tags]
        )
        if value_format is None:
            return stats_pb2.Config.Counter(stat=stat, value_fixed={"value": 1})
        return stats_pb2.Config.Counter(stat=stat, value_format=value_format)

    config = stats_pb2.Config(stat_prefix=STAT_PREFIX, counters=[counter(*c) for c in counters])
    log = accesslog_pb2.AccessLog(name=STATS_LOGGER)
    log.typed_config.Pack(config)
    log.filter.log_type_filter.types.append(when)
    return log


def tcp_loggers(tags: Tags) -> list[accesslog_pb2.AccessLog]:
    """The two stats loggers of one tcp_proxy (see the module docstring)."""
    return [
        _logger(tags, data_pb2.TcpUpstreamConnected, [(TCP_OPENED, None)]),
        _logger(
            tags,
            data_pb2.TcpConnectionEnd,
            [(TCP_CLOSED, None), (TCP_SENT, "%BYTES_SENT%"), (TCP_RECEIVED, "%BYTES_RECEIVED%")],
        ),
    ]


def count_tcp_chain(chain: listener_pb2.FilterChain, tags: Tags) -> None:
    """Count the connections and bytes of the chain's tcp_proxy with `tags`."""
    for network_filter in chain.filters:
        if network_filter.name != TCP_PROXY:
            continue
        proxy = tcp_proxy_pb2.TcpProxy()
        network_filter.typed_config.Unpack(proxy)
        proxy.access_log.extend(tcp_loggers(tcp_tags(tags)))
        proxy.access_log_options.flush_access_log_on_connected = True
        network_filter.typed_config.Pack(proxy)
