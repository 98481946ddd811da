"""RateLimit (policy.plait.dev/v1alpha1): local rate limiting as a first-class resource.

Istio has no API for this; its users write an EnvoyFilter that patches Envoy's
`local_ratelimit` filter into SIDECAR_INBOUND. plait offers a resource instead:

    apiVersion: policy.plait.dev/v1alpha1
    kind: RateLimit
    metadata: {name: reviews}
    spec:
      selector: {matchLabels: {app: reviews}}   # or targetRef: {kind: Service, name: reviews}
      limits:
      - match: [{uri: {prefix: /search}}]       # first matching limit applies
        requests: 10
        unit: second                            # or interval: 500ms
        burst: 20                               # bucket size; default: requests
      - requests: 100                           # no match: every other request
        unit: second

The limit is enforced by the server side (the inbound sidecar of each selected replica),
per replica: N replicas admit N times the rate. Semantics and the Envoy mapping are in
`translate/ratelimit.py` and docs/traffic/rate-limits.md.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from envoy.type.v3 import http_status_pb2
from pydantic import AfterValidator, Field, Strict, field_validator, model_validator

from plait.api.common import (
    IstioModel,
    NonEmptyStr,
    ObjectMeta,
    StringMatch,
    WorkloadSelector,
    check_one_of,
    first_repeated,
)
from plait.api.duration import Duration, DurationField

RATELIMIT_VERSIONS = ("policy.plait.dev/v1alpha1",)

MIN_INTERVAL_MS = 50
"""Envoy refuses a token bucket fill interval under 50ms."""

UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _header_names(value: dict[str, StringMatch]) -> dict[str, StringMatch]:
    for name in value:
        if not _HEADER_NAME.match(name):
            raise ValueError(
                f"'{name}' is not a valid header name: use letters, digits and '-' "
                "(pseudo-headers such as ':path' have their own fields: 'uri', 'method')"
            )
    return value


def _interval(value: Duration) -> Duration:
    if value.milliseconds < MIN_INTERVAL_MS:
        raise ValueError(
            f"interval '{value}' is too short; Envoy refills a bucket at most every "
            f"{MIN_INTERVAL_MS}ms: use 'requests' for the amount, e.g. 'requests: 20, "
            "interval: 1s'"
        )
    return value


_ERROR_CODES = sorted(c for c in http_status_pb2.StatusCode.values() if c >= 400)


def _status(value: int) -> int:
    if value not in _ERROR_CODES:
        raise ValueError(
            f"{value} is not a status Envoy can answer with; use a standard 4xx or 5xx code "
            "such as 429 or 503"
        )
    return value


Count = Annotated[int, Strict(), Field(ge=1, le=2**32 - 1)]
Interval = Annotated[DurationField, AfterValidator(_interval)]
Unit = Literal["second", "minute", "hour", "day"]


class RateLimitMatch(IstioModel):
    """Which requests a limit counts: all of the fields set must match (like Istio's
    HTTPMatchRequest subset `uri`, `method`, `headers`)."""

    name: NonEmptyStr | None = None
    uri: StringMatch | None = None
    method: StringMatch | None = None
    headers: Annotated[dict[NonEmptyStr, StringMatch], AfterValidator(_header_names)] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _not_empty(self) -> RateLimitMatch:
        if self.uri is None and self.method is None and not self.headers:
            raise ValueError(
                "an empty match matches every request; set 'uri', 'method' or 'headers', "
                "or leave out 'match' for a limit on every request"
            )
        return self


class Limit(IstioModel):
    """`requests` per `unit` (or per `interval`), with a bucket of `burst` tokens."""

    name: NonEmptyStr | None = None
    match: Annotated[tuple[RateLimitMatch, ...], Field(min_length=1)] | None = None
    requests: Count
    unit: Unit | None = None
    interval: Interval | None = None
    burst: Count | None = None

    @model_validator(mode="after")
    def _period(self) -> Limit:
        check_one_of(self, ("unit", "interval"), required=True)
        return self

    @property
    def interval_ms(self) -> int:
        """The refill period in milliseconds: `requests` tokens are added per period."""
        if self.interval is not None:
            return int(self.interval.milliseconds)
        return UNIT_SECONDS[self.unit or "second"] * 1000

    @property
    def max_tokens(self) -> int:
        """The bucket size: `burst`, or `requests` when unset."""
        return self.burst if self.burst is not None else self.requests


class TargetRef(IstioModel):
    """The Service whose selected workloads enforce the limits (same namespace)."""

    group: Literal[""] = ""
    kind: Literal["Service"]
    name: NonEmptyStr


class RateLimitSpec(IstioModel):
    """`selector` or `targetRef` (neither: every workload in the namespace); `limits`."""

    selector: WorkloadSelector | None = None
    target_ref: TargetRef | None = None
    limits: Annotated[tuple[Limit, ...], Field(min_length=1)]
    status_code: Annotated[int, Strict(), AfterValidator(_status)] = 429

    @field_validator("limits")
    @classmethod
    def _order(cls, limits: tuple[Limit, ...]) -> tuple[Limit, ...]:
        for i, limit in enumerate(limits[:-1]):
            if limit.match is None:
                raise ValueError(
                    f"limits[{i}] has no 'match', so it counts every request and the limits "
                    "after it could never apply; move it to the end of 'limits'"
                )
        repeated = first_repeated([lim.name for lim in limits if lim.name is not None])
        if repeated is not None:
            raise ValueError(f"limit name '{repeated}' is used more than once")
        return limits

    @model_validator(mode="after")
    def _target(self) -> RateLimitSpec:
        check_one_of(self, ("selector", "target_ref"), required=False)
        return self


class RateLimit(IstioModel):
    """`kind: RateLimit`: token-bucket limits enforced by the selected workloads' sidecars."""

    api_version: Literal["policy.plait.dev/v1alpha1"]
    kind: Literal["RateLimit"]
    metadata: ObjectMeta
    spec: RateLimitSpec
    status: dict[str, object] | None = None
