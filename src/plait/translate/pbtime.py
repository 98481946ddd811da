"""Istio durations as protobuf Durations."""

from __future__ import annotations

from google.protobuf import duration_pb2

from plait.api import Duration


def duration(value: Duration) -> duration_pb2.Duration:
    seconds, nanos = value.seconds_nanos()
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


def whole_seconds(value: Duration) -> int:
    """Seconds, rounded down but at least 1 for a non-zero duration (TCP keepalive units)."""
    return max(1, value.nanos // 1_000_000_000) if value.nanos else 0
