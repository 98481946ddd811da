"""Tracing: the HCM Tracing and the collector cluster, on every listener of a proxy, and
accepted by Envoy (`--mode validate`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.trace.v3 import opentelemetry_pb2, zipkin_pb2
from test_translate_envoy_validate import assert_envoy_accepts
from translate_kit import (
    REVIEWS_SERVICE,
    chain_hcm,
    clusters,
    gateway,
    listeners,
    sidecar,
    snapshot,
)

from plait.model.meshsettings import (
    MeshSettings,
    TraceCollector,
    TraceExport,
    TracingSettings,
    with_local_collector,
)
from plait.model.snapshot import MeshSnapshot
from plait.translate import tracing
from plait.translate.proxy import Translator

MESH = (
    REVIEWS_SERVICE
    + """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""
)
ZIPKIN = TracingSettings(
    sampling=25.0, collector=TraceCollector(TraceExport.ZIPKIN, "127.0.0.1", 9411)
)
OTLP = TracingSettings(collector=TraceCollector(TraceExport.OTLP, "otel.example", 4317))


def traced(settings: TracingSettings) -> MeshSnapshot:
    snap = snapshot(MESH)
    return dataclasses.replace(snap, mesh=dataclasses.replace(snap.mesh, tracing=settings))


def test_zipkin_tracing_propagates_b3_and_w3c_with_the_mesh_sampling() -> None:
    config = tracing.tracing_for(ZIPKIN, sidecar("reviews-0"))
    assert config is not None
    assert config.random_sampling.value == 25.0
    assert config.provider.name == "envoy.tracers.zipkin"
    zipkin = zipkin_pb2.ZipkinConfig()
    assert config.provider.typed_config.Unpack(zipkin)
    assert zipkin.collector_cluster == tracing.COLLECTOR_CLUSTER
    assert zipkin.collector_endpoint == "/api/v2/spans"
    assert zipkin.trace_context_option == zipkin_pb2.ZipkinConfig.USE_B3_WITH_W3C_PROPAGATION
    assert zipkin.trace_id_128bit and not zipkin.shared_span_context.value
    tags = {t.tag: t.literal.value for t in config.custom_tags}
    assert tags["istio.namespace"] == "default"
    assert tags["istio.canonical_service"] == "reviews"


def test_otlp_tracing_names_the_workload_and_namespace() -> None:
    config = tracing.tracing_for(OTLP, sidecar("reviews-0", namespace="shop"))
    assert config is not None and config.provider.name == "envoy.tracers.opentelemetry"
    otel = opentelemetry_pb2.OpenTelemetryConfig()
    assert config.provider.typed_config.Unpack(otel)
    assert otel.service_name == "reviews.shop"
    assert otel.grpc_service.envoy_grpc.cluster_name == tracing.COLLECTOR_CLUSTER
    cluster = tracing.collector_cluster(OTLP)
    assert cluster is not None and cluster.type == cluster_pb2.Cluster.STRICT_DNS
    assert cluster.typed_extension_protocol_options  # HTTP/2 for gRPC


@pytest.mark.parametrize(
    "settings", [TracingSettings(), TracingSettings(enabled=False, collector=ZIPKIN.collector)]
)
def test_no_tracing_without_a_collector_or_when_disabled(settings: TracingSettings) -> None:
    assert tracing.tracing_for(settings, sidecar()) is None
    assert tracing.collector_cluster(settings) is None
    config = Translator(traced(settings)).config_for(sidecar())
    assert tracing.COLLECTOR_CLUSTER not in clusters(config)


def test_every_hcm_of_sidecars_and_gateways_traces() -> None:
    translator = Translator(traced(ZIPKIN))
    for proxy in (sidecar("reviews-0"), gateway((80, 18080))):
        config = translator.config_for(proxy)
        assert clusters(config)[tracing.COLLECTOR_CLUSTER].type == cluster_pb2.Cluster.STATIC
        hcms = [chain_hcm(c) for lis in listeners(config).values() for c in lis.filter_chains]
        assert len(hcms) >= (3 if proxy.kind == "sidecar" else 1)  # outbound, inbound mTLS + plain
        for hcm in hcms:
            assert hcm.tracing.provider.name == "envoy.tracers.zipkin"


@pytest.mark.parametrize("settings", [ZIPKIN, OTLP], ids=["zipkin", "otlp"])
def test_envoy_accepts_traced_listeners(tmp_path: Path, settings: TracingSettings) -> None:
    translator = Translator(traced(settings))
    assert_envoy_accepts(tmp_path, translator.config_for(sidecar("reviews-0")))
    assert_envoy_accepts(tmp_path, translator.config_for(gateway((80, 18080))))


def test_spans_go_to_the_local_store_as_protobuf_and_elsewhere_as_json() -> None:
    local = with_local_collector(MeshSettings(), "127.0.0.1", 15014).tracing
    for settings, version in (
        (local, zipkin_pb2.ZipkinConfig.HTTP_PROTO),
        (ZIPKIN, zipkin_pb2.ZipkinConfig.HTTP_JSON),
    ):
        config = tracing.tracing_for(settings, sidecar("reviews-0"))
        assert config is not None
        zipkin = zipkin_pb2.ZipkinConfig()
        assert config.provider.typed_config.Unpack(zipkin)
        assert zipkin.collector_endpoint_version == version
