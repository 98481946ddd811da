"""istio_tcp_* on tcp_proxy chains: two stats loggers per tcp_proxy (opened on upstream
connect, closed and bytes at the end), Istio's TCP label set."""

from __future__ import annotations

from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.data.accesslog.v3 import accesslog_pb2 as data_pb2
from envoy.extensions.access_loggers.stats.v3 import stats_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from translate_kit import sidecar

from plait.translate import captured, metrics
from plait.translate.tcpmetrics import TCP_LABEL_NAMES, count_tcp_chain, tcp_tags


def test_tcp_tags_are_istios_tcp_labels() -> None:
    tags = dict(tcp_tags(metrics.source_tags(sidecar())))
    assert tuple(tags) == TCP_LABEL_NAMES
    assert tags["request_protocol"] == "tcp" and "response_code" not in tags
    inbound = dict(tcp_tags(metrics.destination_tags(sidecar(), None, mtls=True)))
    assert inbound["source_peer"] == "unknown"  # no claim on TCP: the certificate says
    assert inbound["source_principal"] == "%DOWNSTREAM_PEER_URI_SAN%"


def test_a_tcp_proxy_counts_opened_then_closed_and_bytes() -> None:
    chain: lc.FilterChain = captured.tcp_chain(
        "outbound|6379||cache.default.svc.cluster.local", "x"
    )
    count_tcp_chain(chain, metrics.source_tags(sidecar()))
    proxy = tcp_proxy_pb2.TcpProxy()
    chain.filters[0].typed_config.Unpack(proxy)
    assert proxy.access_log_options.flush_access_log_on_connected
    kinds = []
    for log in proxy.access_log:
        config = stats_pb2.Config()
        log.typed_config.Unpack(config)
        kinds.append(
            (
                list(log.filter.log_type_filter.types),
                [(c.stat.name, c.value_format or c.value_fixed.value) for c in config.counters],
            )
        )
    assert kinds == [
        ([data_pb2.TcpUpstreamConnected], [("istio_tcp_connections_opened_total", 1)]),
        (
            [data_pb2.TcpConnectionEnd],
            [
                ("istio_tcp_connections_closed_total", 1),
                ("istio_tcp_sent_bytes_total", "%BYTES_SENT%"),
                ("istio_tcp_received_bytes_total", "%BYTES_RECEIVED%"),
            ],
        ),
    ]


def test_a_chain_without_tcp_proxy_is_left_alone() -> None:
    chain = lc.FilterChain(name="http")
    count_tcp_chain(chain, metrics.source_tags(sidecar()))
    assert chain == lc.FilterChain(name="http")
