"""The Telemetry API model: what Istio's validation accepts and refuses, with the field
path in each message; fields plait does not apply are warnings."""

from __future__ import annotations

import pytest

from plait.api import load_text
from plait.api.telemetry import Telemetry

HEAD = """apiVersion: telemetry.istio.io/{version}
kind: Telemetry
metadata: {{name: t, namespace: shop}}
spec: {spec}
"""


def load(spec: str, version: str = "v1") -> tuple[list[str], list[str], list[Telemetry]]:
    result = load_text(HEAD.format(version=version, spec=spec), "t.yaml")
    found = [r.resource for r in result.resources if isinstance(r.resource, Telemetry)]
    return [str(m) for m in result.errors], [str(m) for m in result.warnings], found


@pytest.mark.parametrize("version", ["v1", "v1alpha1"])
def test_a_full_telemetry_loads_in_both_versions(version: str) -> None:
    errors, warnings, found = load(
        "{selector: {matchLabels: {app: echo}}, tracing: [{match: {mode: CLIENT}, providers: "
        "[{name: zipkin}], randomSamplingPercentage: 12.5, disableSpanReporting: false, "
        "customTags: {a: {literal: {value: x}}, b: {environment: {name: POD, defaultValue: p}},"
        " c: {header: {name: x-c}}}}], accessLogging: [{providers: [{name: envoy}], filter: "
        "{expression: 'response.code >= 400'}}], metrics: [{overrides: [{match: {metric: "
        "REQUEST_COUNT, mode: SERVER}, disabled: true}]}]}",
        version,
    )
    assert errors == [] and warnings == [] and len(found) == 1


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("{tracing: [{randomSamplingPercentage: 101}]}", "randomSamplingPercentage"),
        ("{tracing: [{}, {}]}", "tracing"),  # Istio: multiple tracing is not supported
        ("{tracing: [{customTags: {a: {}}}]}", "customTags.a"),
        ("{tracing: [{customTags: {a: {literal: {value: x}, header: {name: h}}}}]}", "set only"),
        ("{accessLogging: [{providers: [{name: ''}]}]}", "providers[0].name"),
        (
            "{metrics: [{overrides: [{tagOverrides: {t: {operation: REMOVE, value: x}}}]}]}",
            "REMOVE",
        ),
        ("{metrics: [{overrides: [{tagOverrides: {t: {operation: UPSERT}}}]}]}", "UPSERT"),
        ("{metrics: [{overrides: [{match: {metric: REQUEST_COUNTS}}]}]}", "metric"),
        ("{selector: {matchLabels: {app: a}}, targetRef: {kind: Service, name: a}}", "only one"),
        ("{tracing: [{match: {mode: BOTH}}]}", "mode"),
    ],
)
def test_what_istio_refuses_is_an_error(spec: str, why: str) -> None:
    errors, _warnings, found = load(spec)
    assert found == [] and errors and why in errors[0], errors


def test_fields_not_applied_are_warned_about() -> None:
    errors, warnings, found = load(
        "{tracing: [{useRequestIdForTraceSampling: true}], metrics: [{reportingInterval: 5s, "
        "overrides: [{tagOverrides: {t: {operation: REMOVE}}}]}]}"
    )
    assert errors == [] and len(found) == 1
    text = " ".join(warnings)
    for field in ("useRequestIdForTraceSampling", "reportingInterval", "tagOverrides"):
        assert field in text
