"""DestinationRule traffic policies on outbound clusters: load balancing, connection pool,
retry budget, outlier detection and client TLS, field by field (istiod's translation)."""

from __future__ import annotations

import pytest
import yaml
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo_pb2

from plait.api.destinationrule import TrafficPolicy
from plait.model.registry import Protocol, Service, ServicePort
from plait.translate import clusters

HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
UNLIMITED = 2**32 - 1
C = cluster_pb2.Cluster
HTTP = ServicePort("http", 8080)
GRPC = ServicePort("grpc", 9000, Protocol.GRPC)


def policy(text: str) -> TrafficPolicy:
    return TrafficPolicy.model_validate(yaml.safe_load(text))


def cluster(text: str | None, port: ServicePort = HTTP) -> cluster_pb2.Cluster:
    svc = Service(
        hostname="reviews.default.svc.cluster.local",
        name="reviews",
        namespace="default",
        ports=(port,),
    )
    return clusters.outbound_cluster(svc, port, "", policy(text) if text else None)


def options(c: cluster_pb2.Cluster) -> hpo_pb2.HttpProtocolOptions:
    out = hpo_pb2.HttpProtocolOptions()
    assert c.typed_extension_protocol_options[HTTP_OPTIONS].Unpack(out)
    return out


def thresholds(c: cluster_pb2.Cluster) -> tuple[int, int, int, int]:
    (t,) = c.circuit_breakers.thresholds
    return (
        t.max_connections.value,
        t.max_pending_requests.value,
        t.max_requests.value,
        t.max_retries.value,
    )


# --- load balancing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("simple", "expected"),
    [
        ("ROUND_ROBIN", C.ROUND_ROBIN),
        ("LEAST_REQUEST", C.LEAST_REQUEST),
        ("LEAST_CONN", C.LEAST_REQUEST),
        ("RANDOM", C.RANDOM),
        ("UNSPECIFIED", C.ROUND_ROBIN),
        ("PASSTHROUGH", C.ROUND_ROBIN),  # no original destination in local mode
    ],
)
def test_simple_load_balancer(simple: str, expected: int) -> None:
    c = cluster(f"loadBalancer: {{simple: {simple}}}")
    assert c.lb_policy == expected
    assert c.type == C.EDS  # PASSTHROUGH keeps the registry's endpoints
    assert c.WhichOneof("lb_config") is None
    assert HTTP_OPTIONS not in c.typed_extension_protocol_options


def test_no_policy_is_round_robin_without_extras() -> None:
    c = cluster(None)
    assert c.lb_policy == C.ROUND_ROBIN
    assert not c.HasField("outlier_detection")
    assert not c.HasField("transport_socket")
    assert not c.HasField("common_lb_config")
    assert thresholds(c) == (UNLIMITED,) * 4


def test_warmup_duration_secs_is_slow_start_on_round_robin() -> None:
    c = cluster("loadBalancer: {warmupDurationSecs: 30s}")
    assert c.lb_policy == C.ROUND_ROBIN
    assert c.round_robin_lb_config.slow_start_config.slow_start_window.seconds == 30
    assert not c.round_robin_lb_config.slow_start_config.HasField("aggression")


def test_warmup_with_aggression_and_minimum_percent_on_least_request() -> None:
    c = cluster(
        "loadBalancer: {simple: LEAST_REQUEST, warmupDurationSecs: 5s,"
        " warmup: {duration: 1m, minimumPercent: 10, aggression: 1.5}}"
    )
    slow = c.least_request_lb_config.slow_start_config
    assert slow.slow_start_window.seconds == 60  # `warmup` wins over the older field
    assert slow.aggression.default_value == 1.5
    assert slow.aggression.runtime_key
    assert slow.min_weight_percent.value == 10


def test_random_has_no_slow_start() -> None:
    c = cluster("loadBalancer: {simple: RANDOM, warmupDurationSecs: 30s}")
    assert c.lb_policy == C.RANDOM
    assert c.WhichOneof("lb_config") is None


def hash_of(c: cluster_pb2.Cluster) -> list[rc.RouteAction.HashPolicy]:
    return list(options(c).hash_policy)


def test_consistent_hash_on_a_header_is_a_ring_hash_cluster_with_a_hash_policy() -> None:
    c = cluster("loadBalancer: {consistentHash: {httpHeaderName: x-user}}")
    assert c.lb_policy == C.RING_HASH
    assert c.ring_hash_lb_config.minimum_ring_size.value == 1024
    (h,) = hash_of(c)
    assert h.header.header_name == "x-user"
    # the options object must still name a protocol: HTTP/1.1 for an http port
    assert options(c).explicit_http_config.HasField("http_protocol_options")


def test_ring_size_and_maglev_table_size() -> None:
    ring = cluster(
        "loadBalancer: {consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 64}}}"
    )
    assert ring.lb_policy == C.RING_HASH
    assert ring.ring_hash_lb_config.minimum_ring_size.value == 64
    (h,) = hash_of(ring)
    assert h.connection_properties.source_ip
    old = cluster("loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 128}}")
    assert old.ring_hash_lb_config.minimum_ring_size.value == 128
    maglev = cluster(
        "loadBalancer: {consistentHash: {httpQueryParameterName: u, maglev: {tableSize: 65537}}}"
    )
    assert maglev.lb_policy == C.MAGLEV
    assert maglev.maglev_lb_config.table_size.value == 65537
    (h,) = hash_of(maglev)
    assert h.query_parameter.name == "u"


def test_cookie_hash_with_ttl_path_and_attributes() -> None:
    c = cluster(
        "loadBalancer: {consistentHash: {httpCookie: {name: sticky, path: /, ttl: 60s,"
        " attributes: [{name: SameSite, value: Strict}]}}}"
    )
    (h,) = hash_of(c)
    assert (h.cookie.name, h.cookie.path, h.cookie.ttl.seconds) == ("sticky", "/", 60)
    assert [(a.name, a.value) for a in h.cookie.attributes] == [("SameSite", "Strict")]
    session = cluster("loadBalancer: {consistentHash: {httpCookie: {name: s, ttl: 0s}}}")
    assert hash_of(session)[0].cookie.HasField("ttl")  # ttl 0: Envoy makes a session cookie
    no_ttl = cluster("loadBalancer: {consistentHash: {httpCookie: {name: s}}}")
    assert not hash_of(no_ttl)[0].cookie.HasField("ttl")  # never generated, only read


def test_consistent_hash_without_a_key_has_no_hash_policy() -> None:
    c = cluster("loadBalancer: {consistentHash: {maglev: {}}}")
    assert c.lb_policy == C.MAGLEV
    assert not c.HasField("maglev_lb_config")
    assert HTTP_OPTIONS not in c.typed_extension_protocol_options


# --- connection pool ----------------------------------------------------------------------


def test_connection_pool_limits_become_circuit_breaker_thresholds() -> None:
    c = cluster(
        "connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 2,"
        " http2MaxRequests: 3, maxRetries: 4}}"
    )
    assert thresholds(c) == (1, 2, 3, 4)
    assert c.circuit_breakers.thresholds[0].track_remaining


def test_unset_and_zero_limits_stay_unlimited_as_in_istio() -> None:
    c = cluster("connectionPool: {tcp: {maxConnections: 0}, http: {http2MaxRequests: 7}}")
    assert thresholds(c) == (UNLIMITED, UNLIMITED, 7, UNLIMITED)


def test_connect_timeout_from_tcp_else_the_plait_extension_else_10s() -> None:
    assert cluster(None).connect_timeout.seconds == 10
    ext = cluster("timeout: {connectTimeout: 250ms}")
    assert (ext.connect_timeout.seconds, ext.connect_timeout.nanos) == (0, 250_000_000)
    both = cluster("timeout: {connectTimeout: 250ms}\nconnectionPool: {tcp: {connectTimeout: 3s}}")
    assert both.connect_timeout.seconds == 3


def test_tcp_keepalive_is_an_upstream_socket_option() -> None:
    c = cluster("connectionPool: {tcp: {tcpKeepalive: {probes: 3, time: 2h, interval: 75s}}}")
    ka = c.upstream_connection_options.tcp_keepalive
    assert (ka.keepalive_probes.value, ka.keepalive_time.value, ka.keepalive_interval.value) == (
        3,
        7200,
        75,
    )
    assert not cluster("connectionPool: {tcp: {maxConnections: 5}}").HasField(
        "upstream_connection_options"
    )


def test_idle_timeout_requests_per_connection_and_connection_duration() -> None:
    c = cluster(
        "connectionPool: {tcp: {idleTimeout: 9s, maxConnectionDuration: 1h},"
        " http: {idleTimeout: 30s, maxRequestsPerConnection: 1}}"
    )
    common = options(c).common_http_protocol_options
    assert common.idle_timeout.seconds == 30  # http wins over tcp
    assert common.max_requests_per_connection.value == 1
    assert common.max_connection_duration.seconds == 3600
    tcp_only = options(cluster("connectionPool: {tcp: {idleTimeout: 9s}}"))
    assert tcp_only.common_http_protocol_options.idle_timeout.seconds == 9


def test_h2_upgrade_policy() -> None:
    up = options(cluster("connectionPool: {http: {h2UpgradePolicy: UPGRADE}}"))
    assert up.explicit_http_config.HasField("http2_protocol_options")
    keep = cluster("connectionPool: {http: {h2UpgradePolicy: DO_NOT_UPGRADE}}")
    assert HTTP_OPTIONS not in keep.typed_extension_protocol_options
    grpc = options(cluster("connectionPool: {http: {h2UpgradePolicy: DO_NOT_UPGRADE}}", GRPC))
    assert grpc.explicit_http_config.HasField("http2_protocol_options")  # gRPC is HTTP/2 anyway


def test_http2_settings_apply_to_http2_upstreams_only() -> None:
    text = (
        "connectionPool: {http: {maxConcurrentStreams: 50,"
        " http2KeepAlive: {interval: 10s, timeout: 2s}}}"
    )
    h2 = options(cluster(text, GRPC)).explicit_http_config.http2_protocol_options
    assert h2.max_concurrent_streams.value == 50
    assert (h2.connection_keepalive.interval.seconds, h2.connection_keepalive.timeout.seconds) == (
        10,
        2,
    )
    assert HTTP_OPTIONS not in cluster(text).typed_extension_protocol_options


def test_use_client_protocol() -> None:
    o = options(
        cluster("connectionPool: {http: {useClientProtocol: true, maxConcurrentStreams: 9}}")
    )
    assert o.HasField("use_downstream_protocol_config")
    assert o.use_downstream_protocol_config.http2_protocol_options.max_concurrent_streams.value == 9


def test_retry_budget() -> None:
    (t,) = cluster(
        "retryBudget: {percent: 25.5, minRetryConcurrency: 4}"
    ).circuit_breakers.thresholds
    assert t.retry_budget.budget_percent.value == 25.5
    assert t.retry_budget.min_retry_concurrency.value == 4
    (t,) = cluster("retryBudget: {}").circuit_breakers.thresholds
    assert t.HasField("retry_budget")  # Envoy's defaults: 20%, 3 concurrent
    assert not t.retry_budget.HasField("budget_percent")
    (t,) = cluster(None).circuit_breakers.thresholds
    assert not t.HasField("retry_budget")


# --- outlier detection --------------------------------------------------------------------


def test_outlier_detection_as_istiod_sets_it() -> None:
    c = cluster(
        "outlierDetection: {consecutive5xxErrors: 3, consecutiveGatewayErrors: 2, interval: 1s,"
        " baseEjectionTime: 15s, maxEjectionPercent: 50, minHealthPercent: 20}"
    )
    od = c.outlier_detection
    assert (od.consecutive_5xx.value, od.enforcing_consecutive_5xx.value) == (3, 100)
    assert (
        od.consecutive_gateway_failure.value,
        od.enforcing_consecutive_gateway_failure.value,
    ) == (
        2,
        100,
    )
    assert od.HasField("enforcing_success_rate") and od.enforcing_success_rate.value == 0
    assert (od.interval.seconds, od.base_ejection_time.seconds) == (1, 15)
    assert od.max_ejection_percent.value == 50
    assert not od.split_external_local_origin_errors
    assert c.common_lb_config.healthy_panic_threshold.value == 20


def test_outlier_detection_zero_disables_and_unset_keeps_envoy_defaults() -> None:
    od = cluster("outlierDetection: {consecutive5xxErrors: 0}").outlier_detection
    assert od.HasField("consecutive_5xx") and od.consecutive_5xx.value == 0
    assert od.enforcing_consecutive_5xx.value == 0
    c = cluster("outlierDetection: {interval: 5s}")
    assert not c.outlier_detection.HasField("consecutive_5xx")  # Envoy's 5, enforced
    assert not c.outlier_detection.HasField("max_ejection_percent")
    # no panic mode by default: Istio sets the threshold to 0 whenever outlier detection is on
    assert c.common_lb_config.HasField("healthy_panic_threshold")
    assert c.common_lb_config.healthy_panic_threshold.value == 0


def test_local_origin_failures_count_only_when_split() -> None:
    od = cluster(
        "outlierDetection: {consecutiveLocalOriginFailures: 4, splitExternalLocalOriginErrors: true}"
    ).outlier_detection
    assert od.split_external_local_origin_errors
    assert (
        od.consecutive_local_origin_failure.value,
        od.enforcing_consecutive_local_origin_failure.value,
    ) == (4, 100)
    assert od.HasField("enforcing_local_origin_success_rate")
    unsplit = cluster("outlierDetection: {consecutiveLocalOriginFailures: 4}").outlier_detection
    assert not unsplit.HasField("consecutive_local_origin_failure")


# --- client TLS ---------------------------------------------------------------------------


def tls_context(c: cluster_pb2.Cluster) -> tls_pb2.UpstreamTlsContext:
    assert c.transport_socket.name == "envoy.transport_sockets.tls"
    out = tls_pb2.UpstreamTlsContext()
    assert c.transport_socket.typed_config.Unpack(out)
    return out


def test_tls_simple_with_ca_sni_and_subject_alt_names() -> None:
    c = cluster(
        "tls: {mode: SIMPLE, caCertificates: /etc/certs/ca.pem, sni: api.example.com,"
        " subjectAltNames: [api.example.com, 'spiffe://x/ns/a/sa/b'], caCrl: /etc/certs/crl.pem}"
    )
    ctx = tls_context(c)
    assert ctx.sni == "api.example.com"
    v = ctx.common_tls_context.validation_context
    assert v.trusted_ca.filename == "/etc/certs/ca.pem"
    assert v.crl.filename == "/etc/certs/crl.pem"
    M = common_pb2.SubjectAltNameMatcher
    assert [(m.san_type, m.matcher.exact) for m in v.match_typed_subject_alt_names] == [
        (M.DNS, "api.example.com"),
        (M.URI, "spiffe://x/ns/a/sa/b"),
    ]
    assert not ctx.common_tls_context.tls_certificates
    assert HTTP_OPTIONS not in c.typed_extension_protocol_options  # SNI given: no auto SNI


def test_tls_simple_without_sni_uses_the_request_host_and_the_system_cas() -> None:
    c = cluster("tls: {mode: SIMPLE}")
    ctx = tls_context(c)
    assert ctx.sni == ""
    assert ctx.common_tls_context.validation_context.trusted_ca.filename.startswith("/etc/ssl")
    up = options(c).upstream_http_protocol_options
    assert up.auto_sni and up.auto_san_validation


def test_tls_insecure_skip_verify_has_no_validation() -> None:
    c = cluster("tls: {mode: SIMPLE, insecureSkipVerify: true, sni: x}")
    assert not tls_context(c).common_tls_context.HasField("validation_context")


def test_tls_mutual_presents_the_client_certificate_files() -> None:
    c = cluster("tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, sni: x}")
    (cert,) = tls_context(c).common_tls_context.tls_certificates
    assert (cert.certificate_chain.filename, cert.private_key.filename) == ("/c.pem", "/k.pem")


def test_tls_disable_is_plain_text_even_to_sidecars() -> None:
    c = cluster("tls: {mode: DISABLE}")
    assert not c.HasField("transport_socket")
    assert not c.transport_socket_matches  # no auto mTLS either (test_translate_mtls)
