"""Istio's Telemetry API (`telemetry.istio.io/v1`, `v1alpha1`): tracing, access logging
and metrics settings for the mesh (root namespace, no selector), a namespace (no
selector) or workloads (`selector` or `targetRef(s)`); `model.telemetry` resolves which
apply to a proxy and merges them in Istio's order.

Validation follows Istio's (pkg/config/validation/agent, validateTelemetry): at most one
`tracing` entry, sampling 0..100, each custom tag exactly one of literal / environment /
header, tag overrides `REMOVE` without a value and `UPSERT` with one, provider names not
empty, and at most one of `selector`, `targetRef`, `targetRefs`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from plait.api.common import (
    Bool,
    IstioModel,
    NonEmptyStr,
    ObjectMeta,
    Str,
    WorkloadSelector,
    check_one_of,
)
from plait.api.duration import DurationField
from plait.api.security import PolicyTargetReference, _one_target

TELEMETRY_VERSIONS = ("telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1")


class WorkloadMode(StrEnum):
    """Which side of a request a setting covers: CLIENT (outbound, gateways), SERVER
    (inbound) or both."""

    CLIENT_AND_SERVER = "CLIENT_AND_SERVER"
    CLIENT = "CLIENT"
    SERVER = "SERVER"


class ProviderRef(IstioModel):
    name: NonEmptyStr


class ModeSelector(IstioModel):
    mode: WorkloadMode = WorkloadMode.CLIENT_AND_SERVER


class Literal_(IstioModel):  # noqa: N801 - `Literal` is typing's
    value: NonEmptyStr


class FromSource(IstioModel):
    """An environment variable of the proxy or a request header, with a default."""

    name: NonEmptyStr
    default_value: Str = ""


class CustomTag(IstioModel):
    literal: Literal_ | None = None
    environment: FromSource | None = None
    header: FromSource | None = None

    @model_validator(mode="after")
    def _one(self) -> CustomTag:
        check_one_of(self, ("literal", "environment", "header"), required=True)
        return self


Percentage = Annotated[float, Strict(), Field(ge=0, le=100)]


class Tracing(IstioModel):
    match: ModeSelector | None = None
    providers: tuple[ProviderRef, ...] = Field(default=(), max_length=1)
    random_sampling_percentage: Percentage | None = None
    disable_span_reporting: Bool | None = None
    custom_tags: dict[NonEmptyStr, CustomTag] = Field(default_factory=dict)
    use_request_id_for_trace_sampling: Bool | None = None
    enable_istio_tags: Bool | None = None


class AccessLogFilter(IstioModel):
    expression: NonEmptyStr


class AccessLogging(IstioModel):
    match: ModeSelector | None = None
    providers: tuple[ProviderRef, ...] = ()
    disabled: Bool | None = None
    filter: AccessLogFilter | None = None


class IstioMetric(StrEnum):
    ALL_METRICS = "ALL_METRICS"
    REQUEST_COUNT = "REQUEST_COUNT"
    REQUEST_DURATION = "REQUEST_DURATION"
    REQUEST_SIZE = "REQUEST_SIZE"
    RESPONSE_SIZE = "RESPONSE_SIZE"
    TCP_OPENED_CONNECTIONS = "TCP_OPENED_CONNECTIONS"
    TCP_CLOSED_CONNECTIONS = "TCP_CLOSED_CONNECTIONS"
    TCP_SENT_BYTES = "TCP_SENT_BYTES"
    TCP_RECEIVED_BYTES = "TCP_RECEIVED_BYTES"
    GRPC_REQUEST_MESSAGES = "GRPC_REQUEST_MESSAGES"
    GRPC_RESPONSE_MESSAGES = "GRPC_RESPONSE_MESSAGES"


class MetricSelector(IstioModel):
    metric: IstioMetric | None = None
    custom_metric: NonEmptyStr | None = None
    mode: WorkloadMode = WorkloadMode.CLIENT_AND_SERVER

    @model_validator(mode="after")
    def _one(self) -> MetricSelector:
        check_one_of(self, ("metric", "custom_metric"), required=False)
        return self


class TagOperation(StrEnum):
    UPSERT = "UPSERT"
    REMOVE = "REMOVE"


class TagOverride(IstioModel):
    operation: TagOperation = TagOperation.UPSERT
    value: Str | None = None

    @model_validator(mode="after")
    def _value(self) -> TagOverride:
        if self.operation is TagOperation.REMOVE and self.value:
            raise ValueError("a REMOVE tag override takes no 'value'")
        if self.operation is TagOperation.UPSERT and not self.value:
            raise ValueError("an UPSERT tag override needs a 'value'")
        return self


class MetricsOverrides(IstioModel):
    match: MetricSelector | None = None
    disabled: Bool | None = None
    tag_overrides: dict[NonEmptyStr, TagOverride] = Field(default_factory=dict)


class Metrics(IstioModel):
    providers: tuple[ProviderRef, ...] = ()
    overrides: tuple[MetricsOverrides, ...] = ()
    reporting_interval: DurationField | None = None


class TelemetrySpec(IstioModel):
    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: tuple[PolicyTargetReference, ...] = ()
    tracing: tuple[Tracing, ...] = Field(default=(), max_length=1)
    access_logging: tuple[AccessLogging, ...] = ()
    metrics: tuple[Metrics, ...] = ()

    @model_validator(mode="after")
    def _checks(self) -> TelemetrySpec:
        _one_target(self.selector, self.target_ref, self.target_refs)
        return self


class Telemetry(IstioModel):
    api_version: Literal["telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1"]
    kind: Literal["Telemetry"]
    metadata: ObjectMeta
    spec: TelemetrySpec = Field(default_factory=TelemetrySpec)
    status: dict[str, object] | None = None


__all__ = [
    "TELEMETRY_VERSIONS",
    "AccessLogging",
    "CustomTag",
    "IstioMetric",
    "Metrics",
    "MetricsOverrides",
    "TagOperation",
    "Telemetry",
    "TelemetrySpec",
    "Tracing",
    "WorkloadMode",
]
