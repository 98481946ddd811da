"""Tracing: every HTTP connection manager plait builds makes a span per request.

One `HttpConnectionManager.Tracing` per proxy (`tracing_for`) is set on every HCM of its
listeners (`apply`): sidecar inbound chains, the outbound proxy, gateway ports. Envoy
picks the span kind from the listener's `traffic_direction` (inbound: server span,
outbound: client span), so a request client → echo makes two spans in one trace, and one
through the gateway makes one span at the gateway plus one per sidecar it crosses.
Sampling is `random_sampling` (MeshSettings.tracing.sampling, a percentage); a request
that arrives with a sampled trace context stays in its trace.

Two exporters, chosen by the collector (`model.meshsettings.TraceCollector`):

- Zipkin (the default; the control plane's own store speaks it): Envoy's Zipkin tracer
  with `trace_context_option: USE_B3_WITH_W3C_PROPAGATION` extracts B3 (`x-b3-*`, `b3`)
  or else W3C `traceparent`, and injects both, so apps using either format join the
  trace. Spans go as Zipkin v2 JSON to `POST /api/v2/spans`; 128-bit trace ids (W3C's
  size); `shared_span_context: false` gives client and server their own span ids (as
  Istio does). To the control plane's own store spans go as Zipkin protobuf
  (`HTTP_PROTO`, which the store decodes): a span costs Envoy about 13 µs of CPU that
  way and 47 µs as JSON (106 µs in JSON batches of 100; docs/benchmarks.md); to any
  other Zipkin collector, JSON. Its service name is the node's cluster, which the bootstrap sets to
  Istio's `WORKLOAD.NAMESPACE`.
- OpenTelemetry (`extensionProviders[].opentelemetry`): OTLP over gRPC; W3C only, since
  Envoy 1.40's OpenTelemetryConfig has no B3 propagator (checked: `propagators` is an
  unknown field there). Its `service_name` is `WORKLOAD.NAMESPACE`.

Both reach the collector through one cluster, `COLLECTOR_CLUSTER` (STATIC for an IP,
STRICT_DNS for a name; HTTP/2 for OTLP), sent to every proxy with CDS.

Batching (`ZIPKIN_RUNTIME`, in the bootstrap's static runtime layer): Envoy's Zipkin
reporter posts its buffer when it holds `tracing.zipkin.min_flush_spans` spans (Envoy's
default 5) or every `tracing.zipkin.flush_interval_ms` (5000). plait raises the batch to
100 and shortens the interval to 1 s: a span reaches the collector within a second, and
a busy proxy sends one request per 100 spans instead of per 5 — the local store's cost
is mostly per request (bench/tracestore.py; docs/benchmarks.md).
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import grpc_service_pb2, protocol_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.trace.v3 import http_tracer_pb2, opentelemetry_pb2, zipkin_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as upstream_http_pb2
from envoy.type.tracing.v3 import custom_tag_pb2

from plait.model.meshsettings import TraceCollector, TraceExport, TracingSettings
from plait.model.proxy import Proxy
from plait.translate.appprotocol import HTTP_OPTIONS
from plait.translate.clusters import host_cluster

COLLECTOR_CLUSTER = "plait-tracing-collector"
ZIPKIN_TRACER = "envoy.tracers.zipkin"
OTEL_TRACER = "envoy.tracers.opentelemetry"
ZIPKIN_PATH = "/api/v2/spans"
HCM_FILTER = "envoy.filters.network.http_connection_manager"
ZIPKIN_RUNTIME = {"tracing.zipkin.min_flush_spans": 100, "tracing.zipkin.flush_interval_ms": 1000}


def service_name(proxy: Proxy) -> str:
    """The span's service: Istio's `WORKLOAD.NAMESPACE`."""
    return f"{proxy.workload}.{proxy.namespace}"


def collector_cluster(
    settings: TracingSettings, name: str = COLLECTOR_CLUSTER
) -> cluster_pb2.Cluster | None:
    """The cluster spans are exported to; None when tracing is off or has no collector."""
    collector = settings.collector
    if not settings.enabled or collector is None:
        return None
    cluster = host_cluster(name, collector.host, collector.port, 1)
    if collector.export is TraceExport.OTLP:
        options = upstream_http_pb2.HttpProtocolOptions(
            explicit_http_config=upstream_http_pb2.HttpProtocolOptions.ExplicitHttpConfig(
                http2_protocol_options=protocol_pb2.Http2ProtocolOptions()
            )
        )
        cluster.typed_extension_protocol_options[HTTP_OPTIONS].Pack(options)
    return cluster


def _provider(
    collector: TraceCollector, proxy: Proxy, cluster: str
) -> http_tracer_pb2.Tracing.Http:
    provider = http_tracer_pb2.Tracing.Http()
    if collector.export is TraceExport.OTLP:
        provider.name = OTEL_TRACER
        provider.typed_config.Pack(
            opentelemetry_pb2.OpenTelemetryConfig(
                grpc_service=grpc_service_pb2.GrpcService(
                    envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=cluster)
                ),
                service_name=service_name(proxy),
            )
        )
        return provider
    zipkin = zipkin_pb2.ZipkinConfig(
        collector_cluster=cluster,
        collector_endpoint=ZIPKIN_PATH,
        collector_endpoint_version=(
            zipkin_pb2.ZipkinConfig.HTTP_PROTO
            if collector.local
            else zipkin_pb2.ZipkinConfig.HTTP_JSON
        ),
        collector_hostname=f"{collector.host}:{collector.port}",
        trace_id_128bit=True,
        trace_context_option=zipkin_pb2.ZipkinConfig.USE_B3_WITH_W3C_PROPAGATION,
    )
    zipkin.shared_span_context.value = False
    provider.name = ZIPKIN_TRACER
    provider.typed_config.Pack(zipkin)
    return provider


def tracing_for(
    settings: TracingSettings, proxy: Proxy, cluster: str = COLLECTOR_CLUSTER
) -> hcm_pb2.HttpConnectionManager.Tracing | None:
    """The HCM tracing config for `proxy`'s listeners (spans sent through `cluster`);
    None when tracing is off."""
    collector = settings.collector
    if not settings.enabled or collector is None:
        return None
    provider = _provider(collector, proxy, cluster)
    tracing = hcm_pb2.HttpConnectionManager.Tracing(provider=provider)
    tracing.random_sampling.value = settings.sampling
    for tag, value in (
        ("istio.namespace", proxy.namespace),
        ("istio.canonical_service", proxy.labels.as_dict().get("app") or proxy.workload),
        ("plait.proxy", proxy.id),
    ):
        tracing.custom_tags.append(
            custom_tag_pb2.CustomTag(tag=tag, literal=custom_tag_pb2.CustomTag.Literal(value=value))
        )
    return tracing


def apply(
    listener: listener_pb2.Listener, tracing: hcm_pb2.HttpConnectionManager.Tracing | None
) -> listener_pb2.Listener:
    """Set `tracing` on every HTTP connection manager of `listener`; returns it."""
    if tracing is None:
        return listener
    for chain in listener.filter_chains:
        for network_filter in chain.filters:
            if network_filter.name != HCM_FILTER:
                continue
            hcm = hcm_pb2.HttpConnectionManager()
            network_filter.typed_config.Unpack(hcm)
            hcm.tracing.CopyFrom(tracing)
            network_filter.typed_config.Pack(hcm)
    return listener
