"""Tracing settings from the mesh ConfigMap: Istio's fields, plait's local defaults."""

from __future__ import annotations

import pytest

from plait.api import load_text
from plait.model.meshsettings import (
    MeshSettings,
    TraceCollector,
    TraceExport,
    TracingSettings,
    mesh_settings,
    with_local_collector,
)


def settings(mesh: str) -> tuple[TracingSettings, list[str], list[str]]:
    body = "\n".join(f"    {line}" for line in mesh.splitlines())
    text = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio, namespace: istio-system}}\ndata:\n  mesh: |\n{body}\n"
    result = load_text(text, "mesh.yaml")
    return (
        mesh_settings(result.resources).tracing,
        [f"{m.path}: {m.message}" for m in result.errors],
        [m.path for m in result.warnings],
    )


def test_defaults_trace_everything_into_the_local_store() -> None:
    assert TracingSettings() == TracingSettings(enabled=True, sampling=100.0, collector=None)
    local = with_local_collector(MeshSettings(), "127.0.0.1", 15014).tracing.collector
    assert local == TraceCollector(TraceExport.ZIPKIN, "127.0.0.1", 15014)


def test_sampling_and_enable_tracing_are_read() -> None:
    tracing, errors, warnings = settings(
        "enableTracing: false\ndefaultConfig:\n  tracing: {sampling: 2.5}"
    )
    assert not errors and not warnings
    assert tracing == TracingSettings(enabled=False, sampling=2.5)


def test_the_default_provider_wins_over_the_legacy_zipkin_address() -> None:
    tracing, errors, warnings = settings(
        "defaultConfig:\n  tracing: {zipkin: {address: 'zipkin.istio-system:9411'}}\n"
        "extensionProviders:\n"
        "- {name: otel, opentelemetry: {service: otel.observability, port: 4317}}\n"
        "defaultProviders: {tracing: [otel]}"
    )
    assert not errors and not warnings
    assert tracing.collector == TraceCollector(TraceExport.OTLP, "otel.observability", 4317)
    kept = with_local_collector(MeshSettings(tracing=tracing), "127.0.0.1", 1)
    assert kept.tracing.collector == tracing.collector  # a configured collector stays


def test_the_legacy_zipkin_address_is_the_collector() -> None:
    tracing, errors, _ = settings("defaultConfig:\n  tracing: {zipkin: {address: '10.0.0.9:9411'}}")
    assert not errors
    assert tracing.collector == TraceCollector(TraceExport.ZIPKIN, "10.0.0.9", 9411)


@pytest.mark.parametrize(
    ("mesh", "words"),
    [
        ("defaultProviders: {tracing: [nope]}", "no extensionProviders entry declares"),
        ("defaultConfig:\n  tracing: {sampling: 101}", "must be at most 100"),
        ("defaultConfig:\n  tracing: {zipkin: {address: zipkin}}", "HOST:PORT"),
    ],
)
def test_bad_tracing_config_is_an_error(mesh: str, words: str) -> None:
    _, errors, _ = settings(mesh)
    assert any(words in e for e in errors), errors
