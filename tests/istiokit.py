"""A stand-in for one proxy's metrics endpoint in unit tests: requests are counted as
Envoy's stats access logger counts them (`translate.metrics`), written as Envoy's
`/stats/prometheus` writes them (`envoy_istiocustom_*`, raw tags, cumulative buckets), and
`text()` is what the exporter serves: that text through `telemetry.istio.rewrite`.

Labels are given as Istio's (`LABEL_NAMES`); on a destination report the caller's side is
turned into the two raw tags Envoy has (`source_peer`, a claim its sidecar stamped, and
`source_principal`, its certificate), as a real caller with service account `sa-WORKLOAD`
would produce them.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping

from plait.telemetry.istio import ENVOY_PREFIX, rewrite
from plait.translate.metrics import (
    CLAIM_SEPARATOR,
    DURATION,
    DURATION_BUCKETS_MS,
    LABEL_NAMES,
    REQUESTS,
)

ENVOY_STATS = """# TYPE envoy_cluster_upstream_rq_total counter
envoy_cluster_upstream_rq_total{envoy_cluster_name="x"} 99
"""

Tags = tuple[tuple[str, str], ...]


def envoy_tags(labels: Mapping[str, str]) -> Tags:
    """The tags Envoy would have for a series with Istio's `labels`."""
    full = {name: "unknown" for name in LABEL_NAMES} | dict(labels)
    if full["reporter"] != "destination":
        return tuple(full.items())
    workload, namespace = full["source_workload"], full["source_workload_namespace"]
    raw = {k: v for k, v in full.items() if not k.startswith("source_")}
    if workload == "unknown":
        return (("source_peer", ""), ("source_principal", ""), *raw.items())
    sa = f"sa-{workload}"
    claim = CLAIM_SEPARATOR.join(
        [namespace, sa, workload, full["source_app"], full["source_version"], "c", "r"]
    )
    principal = f"spiffe://cluster.local/ns/{namespace}/sa/{sa}"
    return (("source_peer", claim), ("source_principal", principal), *raw.items())


def _tags(tags: Tags, le: str | None = None) -> str:
    pairs = [f'{k}="{v}"' for k, v in tags] + ([f'le="{le}"'] if le is not None else [])
    return "{" + ",".join(pairs) + "}"


def _le(bound: float) -> str:
    return str(int(bound)) if bound == int(bound) else str(bound)


class FakeProxy:
    """One proxy: `observe` requests, then `text()` is what a scrape of it returns."""

    def __init__(self) -> None:
        self.requests: dict[Tags, int] = {}
        self.durations: dict[Tags, list[float]] = {}

    def count(self, n: int, duration_ms: float, labels: Mapping[str, str]) -> FakeProxy:
        tags = envoy_tags(labels)
        self.requests[tags] = self.requests.get(tags, 0) + n
        self.durations.setdefault(tags, []).extend([duration_ms] * n)
        return self

    def envoy_text(self) -> str:
        lines = [ENVOY_STATS.rstrip("\n")]
        if self.requests:
            name = ENVOY_PREFIX + REQUESTS
            lines.append(f"# TYPE {name} counter")
            lines += [f"{name}{_tags(t)} {n}" for t, n in self.requests.items()]
            name = ENVOY_PREFIX + DURATION
            lines.append(f"# TYPE {name} histogram")
            for t, values in self.durations.items():
                ordered = sorted(values)
                for bound in DURATION_BUCKETS_MS:
                    below = bisect.bisect_right(ordered, bound)
                    lines.append(f"{name}_bucket{_tags(t, _le(bound))} {below}")
                lines.append(f"{name}_bucket{_tags(t, '+Inf')} {len(values)}")
                lines.append(f"{name}_sum{_tags(t)} {sum(values)}")
                lines.append(f"{name}_count{_tags(t)} {len(values)}")
        return "\n".join(lines) + "\n"

    def text(self) -> str:
        return rewrite(self.envoy_text())
