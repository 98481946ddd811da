"""Istio's request metric families for one proxy, kept in memory and exposed by a
prometheus_client collector. No I/O.

`RequestMetrics.observe(labels, record)` counts one access-log record:
`istio_requests_total` (counter), `istio_request_duration_milliseconds` (histogram of
`duration`, Istio's buckets), `istio_request_bytes` and `istio_response_bytes`
(histograms of `bytes_received` and `bytes_sent`, Istio's decade buckets). The families
are built at collect time from plain dictionaries (a custom collector rather than
prometheus_client's Counter/Histogram: no `_created` series, which Istio's proxies do not
export, and label sets that come and go with the traffic).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from plait.telemetry.labels import LABEL_NAMES

DURATION_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
    30000, 60000, 300000, 600000, 1800000, 3600000,
)  # fmt: skip
"""Istio's default buckets for istio_request_duration_milliseconds."""

BYTES_BUCKETS: tuple[float, ...] = tuple(float(10**i) for i in range(9))
"""Istio's default buckets for the size histograms: 1, 10, ... 1e8 bytes."""

LabelValues = tuple[str, ...]


@dataclass
class _Histogram:
    bounds: Sequence[float]
    counts: dict[LabelValues, list[int]] = field(default_factory=dict)
    sums: dict[LabelValues, float] = field(default_factory=dict)

    def observe(self, key: LabelValues, value: float) -> None:
        counts = self.counts.setdefault(key, [0] * (len(self.bounds) + 1))
        counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sums[key] = self.sums.get(key, 0.0) + value

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, documentation, labels=LABEL_NAMES)
        for key, counts in sorted(self.counts.items()):
            cumulative, buckets = 0, []
            for bound, n in zip([*self.bounds, float("inf")], counts, strict=True):
                cumulative += n
                buckets.append((_le(bound), float(cumulative)))
            family.add_metric(list(key), buckets, self.sums[key])
        return family


def _le(bound: float) -> str:
    if bound == float("inf"):
        return "+Inf"
    return str(int(bound)) if bound == int(bound) else str(bound)


def _number(record: Mapping[str, Any], key: str) -> float:
    value = record.get(key)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return 0.0


@dataclass(eq=False)  # hashable by identity: a registry keys its collectors
class RequestMetrics(Collector):
    """The istio_request* families of one proxy; register it in a CollectorRegistry."""

    requests: dict[LabelValues, int] = field(default_factory=dict)
    duration: _Histogram = field(default_factory=lambda: _Histogram(DURATION_BUCKETS_MS))
    request_bytes: _Histogram = field(default_factory=lambda: _Histogram(BYTES_BUCKETS))
    response_bytes: _Histogram = field(default_factory=lambda: _Histogram(BYTES_BUCKETS))

    def observe(self, labels: Mapping[str, str], record: Mapping[str, Any]) -> None:
        key = tuple(labels[n] for n in LABEL_NAMES)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.duration.observe(key, _number(record, "duration"))
        self.request_bytes.observe(key, _number(record, "bytes_received"))
        self.response_bytes.observe(key, _number(record, "bytes_sent"))

    def collect(self) -> Iterator[Metric]:
        if not self.requests:
            return
        total = CounterMetricFamily(
            "istio_requests", "Requests handled by this proxy (Istio standard).", labels=LABEL_NAMES
        )
        for key, n in sorted(self.requests.items()):
            total.add_metric(list(key), float(n))
        yield total
        yield self.duration.family(
            "istio_request_duration_milliseconds", "Request duration in milliseconds."
        )
        yield self.request_bytes.family("istio_request_bytes", "Request body sizes in bytes.")
        yield self.response_bytes.family("istio_response_bytes", "Response body sizes in bytes.")
