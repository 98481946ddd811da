"""The Telemetry API applied to one proxy's listeners (what `model.telemetry` merged).

Each side of a proxy (CLIENT: the outbound listener and gateway listeners; SERVER: the
inbound listener) gets:

- tracing: MeshConfig's settings (`model.meshsettings`) with the Telemetry's choices on
  top: `randomSamplingPercentage` replaces the sampling, `disableSpanReporting` turns the
  tracer off, `customTags` become Envoy custom tags (literal, environment variable of the
  proxy, request header, each with its default), and a provider (a `zipkin` or
  `opentelemetry` extension provider other than the mesh's default) gets its own cluster,
  `provider_cluster(NAME)`, among the proxy's own resources;
- access logging: `disabled` drops plait's file access log; `providers` keep it only when
  one of them is Istio's built-in `envoy` or an `envoyFileAccessLog` extension provider
  (plait writes its own JSON format to its own file either way); `filter.expression` is
  Envoy's CEL access-log filter (`envoy.access_loggers.extension_filters.cel`), so it
  takes what Envoy's CEL takes (Istio passes it to Envoy the same way);
- metrics: the Istio metric families a Telemetry disabled are left out of the stats
  access logger (`metrics.count_*`'s `skip`).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import replace

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.access_loggers.filters.cel.v3 import cel_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.tracing.v3 import custom_tag_pb2

from plait.api.telemetry import CustomTag, IstioMetric
from plait.model.meshsettings import MeshSettings, TracingSettings
from plait.model.proxy import Proxy
from plait.model.telemetry import AccessLogChoice, ProxyTelemetry, Side, TracingChoice
from plait.translate import accesslog, metrics, tracing

CEL_FILTER = "envoy.access_loggers.extension_filters.cel"
BUILTIN_FILE_LOG = "envoy"
"""Istio's built-in provider: Envoy's file access log (plait's own JSON file)."""

METRIC_FAMILIES: dict[IstioMetric, str] = {
    IstioMetric.REQUEST_COUNT: metrics.REQUESTS,
    IstioMetric.REQUEST_DURATION: metrics.DURATION,
    IstioMetric.REQUEST_SIZE: metrics.REQUEST_BYTES,
    IstioMetric.RESPONSE_SIZE: metrics.RESPONSE_BYTES,
}
"""The Istio metrics plait's stats logger makes, by the Telemetry API's names."""


def provider_cluster(name: str) -> str:
    return f"{tracing.COLLECTOR_CLUSTER}|{name}"


def _tracing_settings(
    mesh: TracingSettings, choice: TracingChoice
) -> tuple[TracingSettings, str] | None:
    """The tracing settings and collector cluster for one side; None when off."""
    settings, cluster = mesh, tracing.COLLECTOR_CLUSTER
    if choice.provider is not None:
        collector = mesh.provider(choice.provider)
        if collector is None:
            return None  # names no tracing provider (analysis.telemetry warns)
        if collector != mesh.collector:
            cluster = provider_cluster(choice.provider)
        settings = replace(settings, collector=collector, enabled=True)
    if choice.sampling is not None:
        settings = replace(settings, sampling=choice.sampling)
    if choice.disabled or not settings.enabled or settings.collector is None:
        return None
    return settings, cluster


def _custom_tag(name: str, tag: CustomTag) -> custom_tag_pb2.CustomTag:
    out = custom_tag_pb2.CustomTag(tag=name)
    if tag.literal is not None:
        out.literal.value = tag.literal.value
    elif tag.environment is not None:
        out.environment.name = tag.environment.name
        out.environment.default_value = tag.environment.default_value
    elif tag.header is not None:
        out.request_header.name = tag.header.name
        out.request_header.default_value = tag.header.default_value
    return out


def tracing_for(
    mesh: MeshSettings, telemetry: ProxyTelemetry, proxy: Proxy, side: Side
) -> hcm_pb2.HttpConnectionManager.Tracing | None:
    """The HCM tracing config of one side of `proxy`; None when tracing is off there."""
    choice = telemetry.tracing_on(side)
    chosen = _tracing_settings(mesh.tracing, choice)
    if chosen is None:
        return None
    traced = tracing.tracing_for(chosen[0], proxy, chosen[1])
    if traced is not None:
        traced.custom_tags.extend(_custom_tag(n, t) for n, t in sorted(choice.custom_tags.items()))
    return traced


def collector_clusters(mesh: MeshSettings, telemetry: ProxyTelemetry) -> list[cluster_pb2.Cluster]:
    """Clusters for the tracing providers a Telemetry chose besides the mesh default."""
    built: dict[str, cluster_pb2.Cluster] = {}
    for side in Side:
        chosen = _tracing_settings(mesh.tracing, telemetry.tracing_on(side))
        if chosen is None or chosen[1] == tracing.COLLECTOR_CLUSTER or chosen[1] in built:
            continue
        cluster = tracing.collector_cluster(chosen[0], chosen[1])
        if cluster is not None:
            built[chosen[1]] = cluster
    return [built[name] for name in sorted(built)]


def _logs_to_file(mesh: MeshSettings, choice: AccessLogChoice) -> bool:
    if choice.disabled:
        return False
    if choice.providers is None:
        return True
    return any(p == BUILTIN_FILE_LOG or p in mesh.file_log_providers for p in choice.providers)


def access_log_for(
    mesh: MeshSettings,
    telemetry: ProxyTelemetry,
    proxy: Proxy,
    side: Side,
    direction: accesslog.Direction,
) -> accesslog_pb2.AccessLog | None:
    """The proxy's file access log for one side, as the Telemetries leave it; None: off."""
    choice = telemetry.access_log_on(side)
    if not _logs_to_file(mesh, choice):
        return None
    log = accesslog.for_proxy(proxy, direction)
    if log is not None and choice.filter is not None:
        log.filter.extension_filter.name = CEL_FILTER
        log.filter.extension_filter.typed_config.Pack(
            cel_pb2.ExpressionFilter(expression=choice.filter)
        )
    return log


def skipped_metrics(telemetry: ProxyTelemetry, side: Side) -> frozenset[str]:
    """The stats-logger families disabled on one side."""
    return frozenset(
        family
        for metric, family in METRIC_FAMILIES.items()
        if telemetry.metric_disabled(metric, side)
    )


__all__ = [
    "CEL_FILTER",
    "access_log_for",
    "collector_clusters",
    "provider_cluster",
    "skipped_metrics",
    "tracing_for",
]
