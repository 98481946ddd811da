"""`plait top`'s figures from two scrapes of the proxies' metrics endpoints. No I/O.

A `Scrape` holds the `istio_requests_total` and `istio_request_duration_milliseconds_bucket`
samples of every proxy at one moment (`parse_proxy` reads one proxy's exposition text with
prometheus_client's parser). `compute(prev, cur)` turns the counter increases between two
scrapes into golden metrics, from the server side only (`reporter="destination"`, what the
destination's sidecar saw, as Kiali and `linkerd viz stat` do):

- per service (`destination_service_name`.`destination_service_namespace`) and per edge
  (`source_workload` → service): requests in the window, rps, success rate (the share of
  answers that are not 5xx), p50 and p99 of the duration histogram;
- increases as Prometheus' `increase()` sees them: a counter that went down was reset (its
  Envoy restarted), so its whole current value is the increase; a series absent
  from `prev` counts from zero when its proxy was scraped then (Envoy creates a
  label set on its first request), and not at all when the proxy was not (no baseline);
- quantiles as `histogram_quantile` computes them (prometheus/promql/quantile.go
  `bucketQuantile`): linear interpolation inside the bucket holding the rank, the lower
  bound of the first bucket taken as 0, the second-highest bound when the rank falls in
  `+Inf`; None when the window saw no request.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

REQUESTS = "istio_requests_total"
BUCKETS = "istio_request_duration_milliseconds_bucket"
_PREFIXES = (REQUESTS, BUCKETS, "# TYPE istio_request", "# HELP istio_request")

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs, `le` excluded
SeriesKey = tuple[str, Labels]  # (proxy, labels)


@dataclass(frozen=True)
class ProxySamples:
    """One proxy's request counters and duration buckets (cumulative, by `le`)."""

    requests: Mapping[Labels, float] = field(default_factory=dict)
    buckets: Mapping[Labels, Mapping[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Scrape:
    """Every reachable proxy's samples at `at` (monotonic seconds)."""

    at: float
    proxies: Mapping[str, ProxySamples]


@dataclass(frozen=True)
class Golden:
    """The golden metrics of one service or edge over one window."""

    requests: float
    rps: float
    success_rate: float | None  # 0..1; None without requests
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class ServiceRow:
    service: str
    namespace: str
    golden: Golden


@dataclass(frozen=True)
class EdgeRow:
    source: str  # source_workload ("unknown" for callers outside the mesh)
    source_namespace: str
    service: str
    namespace: str
    golden: Golden


@dataclass(frozen=True)
class Top:
    """One frame: services and edges, busiest first."""

    window_s: float
    services: tuple[ServiceRow, ...]
    edges: tuple[EdgeRow, ...]


def parse_proxy(text: str) -> ProxySamples:
    """The istio request samples of one proxy's Prometheus text (Envoy's stats skipped)."""
    wanted = "\n".join(line for line in text.splitlines() if line.startswith(_PREFIXES))
    requests: dict[Labels, float] = {}
    buckets: dict[Labels, dict[float, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(wanted + "\n"):
        for s in family.samples:
            if s.name == REQUESTS:
                key = _labels(s.labels)
                requests[key] = requests.get(key, 0.0) + s.value
            elif s.name == BUCKETS and "le" in s.labels:
                buckets[_labels(s.labels)][float(s.labels["le"])] = s.value
    return ProxySamples(requests, dict(buckets))


def _labels(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted((k, v) for k, v in labels.items() if k != "le"))


def increase(prev: float | None, cur: float) -> float:
    """A counter's increase; a drop means it was reset, so all of `cur` is new."""
    if prev is None or cur < prev:
        return cur
    return cur - prev


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The q-quantile of cumulative buckets {upper bound: count}, as PromQL computes it;
    None when there is no observation or no `+Inf` bucket."""
    bounds = sorted(buckets)
    if len(bounds) < 2 or not math.isinf(bounds[-1]):
        return None
    counts, highest = [], 0.0
    for b in bounds:  # ensureMonotonic: summed deltas of several series can wobble
        highest = max(highest, buckets[b])
        counts.append(highest)
    observations = counts[-1]
    if observations <= 0:
        return None
    rank = q * observations
    i = next(i for i, c in enumerate(counts) if c >= rank)
    if i == len(bounds) - 1:
        return bounds[-2]
    if i == 0 and bounds[0] <= 0:
        return bounds[0]
    start, end, count = 0.0, bounds[i], counts[i]
    if i > 0:
        start, count, rank = bounds[i - 1], count - counts[i - 1], rank - counts[i - 1]
    return start + (end - start) * (rank / count)


def _bucket_increase(
    prev: Mapping[float, float] | None, cur: Mapping[float, float]
) -> dict[float, float]:
    """Per-bound increases of one histogram series; any bucket going down is a reset."""
    if prev is None or any(cur[b] < prev.get(b, 0.0) for b in cur):
        return dict(cur)
    return {b: cur[b] - prev.get(b, 0.0) for b in cur}


@dataclass
class _Acc:
    requests: float = 0.0
    failed: float = 0.0
    buckets: dict[float, float] = field(default_factory=lambda: defaultdict(float))

    def golden(self, window_s: float) -> Golden:
        has = self.requests > 0
        return Golden(
            requests=self.requests,
            rps=self.requests / window_s if window_s > 0 else 0.0,
            success_rate=(self.requests - self.failed) / self.requests if has else None,
            p50_ms=histogram_quantile(0.5, self.buckets) if has else None,
            p99_ms=histogram_quantile(0.99, self.buckets) if has else None,
        )


ServiceKey = tuple[str, str]
EdgeKey = tuple[str, str, str, str]


def _keys(labels: Labels) -> tuple[ServiceKey, EdgeKey] | None:
    d = dict(labels)
    if d.get("reporter") != "destination":
        return None
    service = (
        d.get("destination_service_name", "unknown"),
        d.get("destination_service_namespace", "unknown"),
    )
    source = (d.get("source_workload", "unknown"), d.get("source_workload_namespace", "unknown"))
    return service, (*source, *service)


def compute(prev: Scrape, cur: Scrape) -> Top:
    """Services and edges of the window prev → cur (see the module docstring)."""
    window = cur.at - prev.at
    services: dict[ServiceKey, _Acc] = defaultdict(_Acc)
    edges: dict[EdgeKey, _Acc] = defaultdict(_Acc)
    for proxy, samples in cur.proxies.items():
        before = prev.proxies.get(proxy)
        for labels, value in samples.requests.items():
            keys = _keys(labels)
            if keys is None:
                continue
            service = services[keys[0]]  # listed even when idle in this window
            if before is None:
                continue
            n = increase(before.requests.get(labels), value)
            failed = n if dict(labels).get("response_code", "").startswith("5") else 0.0
            for acc in (service, edges[keys[1]]):
                acc.requests += n
                acc.failed += failed
        for labels, buckets in samples.buckets.items():
            keys = _keys(labels)
            if keys is None or before is None:
                continue
            delta = _bucket_increase(before.buckets.get(labels), buckets)
            for acc in (services[keys[0]], edges[keys[1]]):
                for bound, n in delta.items():
                    acc.buckets[bound] += n
    return Top(
        window_s=window,
        services=tuple(
            sorted(
                (ServiceRow(k[0], k[1], acc.golden(window)) for k, acc in services.items()),
                key=lambda r: (-r.golden.rps, r.namespace, r.service),
            )
        ),
        edges=tuple(
            sorted(
                (EdgeRow(*k, acc.golden(window)) for k, acc in edges.items() if acc.requests),
                key=lambda r: (-r.golden.rps, r.namespace, r.service, r.source),
            )
        ),
    )


def scrape_of(at: float, texts: Mapping[str, str]) -> Scrape:
    """A `Scrape` from each reachable proxy's exposition text, keyed by proxy name."""
    return Scrape(at, {name: parse_proxy(text) for name, text in texts.items()})


def golden_json(g: Golden) -> dict[str, float | None]:
    return {
        "requests": g.requests,
        "rps": round(g.rps, 3),
        "successRate": None if g.success_rate is None else round(g.success_rate, 4),
        "p50Ms": None if g.p50_ms is None else round(g.p50_ms, 3),
        "p99Ms": None if g.p99_ms is None else round(g.p99_ms, 3),
    }


def top_json(top: Top) -> dict[str, object]:
    """The `plait top -o json` object."""
    return {
        "windowSeconds": round(top.window_s, 3),
        "services": [
            {"service": r.service, "namespace": r.namespace, **golden_json(r.golden)}
            for r in top.services
        ],
        "edges": [
            {
                "source": e.source,
                "sourceNamespace": e.source_namespace,
                "service": e.service,
                "namespace": e.namespace,
                **golden_json(e.golden),
            }
            for e in top.edges
        ],
    }
