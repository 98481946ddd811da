"""Telemetry providers checked against the mesh config's extension providers."""

from __future__ import annotations

from analysis_kit import warnings_of

MESH = """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    extensionProviders:
    - {name: zipkin, zipkin: {service: 127.0.0.1, port: 9411}}
    - {name: file, envoyFileAccessLog: {path: /dev/stdout}}
"""
TELEMETRY = """
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: t}}
spec: {spec}
"""


def test_known_providers_give_no_warning() -> None:
    spec = "{tracing: [{providers: [{name: zipkin}]}], accessLogging: [{providers: [{name: file}]}, {providers: [{name: envoy}]}]}"
    assert warnings_of(MESH + TELEMETRY.format(spec=spec)) == []


def test_unknown_or_unsupported_providers_are_warned_about() -> None:
    spec = (
        "{tracing: [{providers: [{name: file}]}], accessLogging: [{providers: [{name: otel-als}]}]}"
    )
    found = warnings_of(MESH + TELEMETRY.format(spec=spec))
    assert [(name, path) for name, path, _ in found] == [
        ("t", "spec.tracing[0].providers[0].name"),
        ("t", "spec.accessLogging[0].providers"),
    ]
    assert "not traced" in found[0][2] and "write none" in found[1][2]
