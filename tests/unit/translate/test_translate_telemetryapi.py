"""The Telemetry API on a proxy's listeners: sampling, span reporting, custom tags and a
provider's own cluster per side; access logs off, kept or filtered by CEL; disabled
metric families left out of the stats logger; and Envoy accepts the result."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.trace.v3 import zipkin_pb2
from envoy.extensions.access_loggers.stats.v3 import stats_pb2
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (  # noqa: E501
    HttpConnectionManager as HCM,
)
from test_translate_envoy_validate import assert_envoy_accepts
from translate_kit import REVIEWS_SERVICE, chain_hcm, clusters, listeners, sidecar, snapshot

from plait.model.meshsettings import TraceCollector, TraceExport, TracingSettings
from plait.model.snapshot import MeshSnapshot
from plait.translate import accesslog, metrics, names, tracing
from plait.translate.proxy import Translator
from plait.translate.resource import ProxyConfig
from plait.translate.telemetryapi import CEL_FILTER, provider_cluster

DEFAULT = TraceCollector(TraceExport.ZIPKIN, "127.0.0.1", 9411)
OTHER = TraceCollector(TraceExport.ZIPKIN, "127.0.0.1", 9511)
SETTINGS = TracingSettings(
    sampling=100.0, collector=DEFAULT, providers=(("default", DEFAULT), ("other", OTHER))
)
TELEMETRY = """---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: {name}, namespace: {ns}}}
spec: {spec}
"""


def translated(*docs: tuple[str, str, str]) -> ProxyConfig:
    text = REVIEWS_SERVICE + "".join(TELEMETRY.format(name=n, ns=ns, spec=s) for n, ns, s in docs)
    snap: MeshSnapshot = snapshot(text)
    mesh = dataclasses.replace(snap.mesh, tracing=SETTINGS)
    proxy = dataclasses.replace(sidecar("reviews-0"), access_log="/tmp/reviews.log")
    return Translator(dataclasses.replace(snap, mesh=mesh)).config_for(proxy)


def hcms(config: ProxyConfig) -> dict[str, list[HCM]]:
    lis = listeners(config)
    return {
        "client": [chain_hcm(c) for c in lis[names.OUTBOUND_LISTENER].filter_chains],
        "server": [chain_hcm(c) for c in lis[names.INBOUND_LISTENER].filter_chains],
    }


def file_logs(hcm: HCM) -> list[accesslog_pb2.AccessLog]:
    return [a for a in hcm.access_log if a.name == accesslog.FILE_LOGGER]


def test_sampling_and_span_reporting_per_side(tmp_path: Path) -> None:
    config = translated(
        (
            "ns",
            "default",
            "{tracing: [{randomSamplingPercentage: 0, customTags: {team: "
            "{literal: {value: core}}, pod: {environment: {name: POD_NAME, defaultValue: x}}}}]}",
        ),
        (
            "wl",
            "default",
            "{selector: {matchLabels: {app: reviews}}, tracing: [{match: {mode: "
            "SERVER}, randomSamplingPercentage: 30, customTags: {user: {header: {name: x-user}}}}]}",
        ),
    )
    by_side = hcms(config)
    client, server = by_side["client"][0], by_side["server"][0]
    assert client.tracing.random_sampling.value == 0
    assert server.tracing.random_sampling.value == 30
    tags = {t.tag: t for t in server.tracing.custom_tags}
    assert tags["team"].literal.value == "core"
    assert tags["pod"].environment.name == "POD_NAME"
    assert tags["user"].request_header.name == "x-user"
    assert "user" not in {t.tag for t in client.tracing.custom_tags}
    assert_envoy_accepts(tmp_path, config)
    off = hcms(translated(("ns", "default", "{tracing: [{disableSpanReporting: true}]}")))
    assert not any(h.HasField("tracing") for side in off.values() for h in side)


def test_a_provider_other_than_the_default_gets_its_own_cluster(tmp_path: Path) -> None:
    config = translated(("ns", "default", "{tracing: [{providers: [{name: other}]}]}"))
    zipkin = zipkin_pb2.ZipkinConfig()
    assert hcms(config)["client"][0].tracing.provider.typed_config.Unpack(zipkin)
    assert zipkin.collector_cluster == provider_cluster("other")
    assert clusters(config)[provider_cluster("other")].load_assignment.endpoints
    assert tracing.COLLECTOR_CLUSTER in clusters(config)  # the default's stays shared
    assert_envoy_accepts(tmp_path, config)


def test_access_logs_off_or_filtered_by_cel(tmp_path: Path) -> None:
    base = hcms(translated())
    assert all(file_logs(h) for side in base.values() for h in side)
    config = translated(
        ("ns", "default", "{accessLogging: [{disabled: true}]}"),
        (
            "wl",
            "default",
            "{selector: {matchLabels: {app: reviews}}, accessLogging: [{match: "
            "{mode: SERVER}, disabled: false, filter: {expression: 'response.code >= 400'}}]}",
        ),
    )
    by_side = hcms(config)
    assert not file_logs(by_side["client"][0])
    for hcm in by_side["server"]:
        (log,) = file_logs(hcm)
        assert log.filter.extension_filter.name == CEL_FILTER
    assert_envoy_accepts(tmp_path, config)
    other = hcms(translated(("ns", "default", "{accessLogging: [{providers: [{name: otel}]}]}")))
    assert not any(file_logs(h) for side in other.values() for h in side)


def test_disabled_metrics_leave_the_stats_logger() -> None:
    config = translated(
        (
            "ns",
            "default",
            "{metrics: [{overrides: [{match: {metric: REQUEST_DURATION}, "
            "disabled: true}, {match: {mode: CLIENT}, disabled: true}]}]}",
        )
    )
    by_side = hcms(config)
    assert not [a for a in by_side["client"][0].access_log if a.name == metrics.STATS_LOGGER]
    stats = stats_pb2.Config()
    (logger,) = [a for a in by_side["server"][0].access_log if a.name == metrics.STATS_LOGGER]
    assert logger.typed_config.Unpack(stats)
    assert [c.stat.name for c in stats.counters] == [metrics.REQUESTS]
    assert metrics.DURATION not in {h.stat.name for h in stats.histograms}
    assert len(stats.histograms) == 2
