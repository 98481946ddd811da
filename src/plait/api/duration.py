"""Istio duration strings ("1s", "500ms", "1.5s", "1m", "1h30m") as validated values.

Istio parses durations the way Go's `time.ParseDuration` does (units ns, us, µs, ms, s, m,
h; several parts may be chained) and its CRDs require at least 1ms. A `Duration` is a
`str` subclass: it compares equal to and prints as the text the user wrote, and adds
`seconds`, `milliseconds`, `nanos` and `seconds_nanos()` for the translator.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

_NANOS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_EXAMPLES = "e.g. '1s', '500ms', '1.5s', '1m' or '1h'"


class Duration(str):
    """A parsed duration; the string value is the original text."""

    nanos: int

    def __new__(cls, text: str) -> Duration:
        nanos = parse_nanos(text)
        self = super().__new__(cls, text)
        self.nanos = nanos
        return self

    @property
    def seconds(self) -> float:
        return self.nanos / 1e9

    @property
    def milliseconds(self) -> float:
        return self.nanos / 1e6

    def seconds_nanos(self) -> tuple[int, int]:
        """(seconds, nanos) as in google.protobuf.Duration."""
        return divmod(self.nanos, 1_000_000_000)


def parse_nanos(text: str) -> int:
    """Nanoseconds in a Go-style duration; ValueError with a hint when it is not one."""
    if text == "0":
        return 0
    pos, total = 0, Fraction(0)
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += Fraction(m.group(1)) * _NANOS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"'{text}' is not a duration; write a number with a unit, {_EXAMPLES}")
    return int(total)


def _validator(minimum_nanos: int) -> Any:
    def validate(value: Any) -> Duration:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(
                f"expected a duration with a unit such as '{value}s', got the number {value}"
            )
        if not isinstance(value, str):
            raise ValueError(f"expected a duration string, {_EXAMPLES}")
        duration = value if isinstance(value, Duration) else Duration(value)
        if duration.nanos < minimum_nanos:
            raise ValueError(f"duration '{value}' is too short; it must be at least 1ms")
        if minimum_nanos and duration.nanos % 1_000_000:
            raise ValueError(f"duration '{value}' is finer than 1ms; Istio supports ms precision")
        return duration

    return validate


_AS_TEXT = PlainSerializer(str, return_type=str)
_SCHEMA = WithJsonSchema({"type": "string", "examples": ["1s", "500ms"]})

DurationField = Annotated[Duration, PlainValidator(_validator(1_000_000)), _AS_TEXT, _SCHEMA]
"""A duration of at least 1ms in whole milliseconds (most Istio durations)."""

ZeroOkDuration = Annotated[Duration, PlainValidator(_validator(0)), _AS_TEXT, _SCHEMA]
"""A duration that may be zero (cookie TTL, TCP idle timeout, retry budget interval)."""
