"""The data-plane bench's tables: medians per path and paired ratios per repetition."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.loadgen import Request


@dataclass(frozen=True)
class Scenario:
    """One path from wrk to the upstream."""

    key: str
    title: str
    request: Request
    proxies: tuple[str, ...]  # the Envoys between wrk and the upstream, in order
    mtls_server: str | None = None  # the Envoy that must see TLS handshakes on this path
    plain_server: str | None = None  # the Envoy that must see none


def _proxy_cpu_per_request(run: dict[str, Any], proxies: tuple[str, ...]) -> float:
    """CPU µs the Envoys on the path (not the upstream) spent per request."""
    cpu = sum(run["cpu"]["envoys_s"][n] for n in proxies)
    return 1e6 * float(cpu) / max(1, int(run["wrk"]["requests"]))


def summarize(paths: list[Scenario], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median over repetitions per (connections, path)."""
    out = []
    conns_levels = sorted({r["connections"] for r in runs})
    for conns in conns_levels:
        for path in paths:
            rs = [r for r in runs if r["path"] == path.key and r["connections"] == conns]
            if not rs:
                continue
            rps = [r["wrk"]["rps"] for r in rs]
            other = [r["cpu"]["other_cores"] for r in rs]
            out.append({
                "path": path.key,
                "title": path.title,
                "connections": conns,
                "reps": len(rs),
                "rps": statistics.median(rps),
                "rps_min": min(rps),
                "rps_max": max(rps),
                "p50_us": statistics.median(r["wrk"]["p50_us"] for r in rs),
                "p90_us": statistics.median(r["wrk"]["p90_us"] for r in rs),
                "p99_us": statistics.median(r["wrk"]["p99_us"] for r in rs),
                "proxy_cpu_us_per_req": statistics.median(
                    _proxy_cpu_per_request(r, path.proxies) for r in rs
                ),
                "wrk_cores": statistics.median(
                    r["cpu"]["wrk_s"] / (r["wrk"]["duration_us"] / 1e6) for r in rs
                ),
                "other_cores": statistics.median(other),
                "other_cores_max": max(other),
                "attempts": sum(r["attempts"] for r in rs),
                "errors": sum(sum(r["wrk"]["errors"].values()) for r in rs),
            })  # fmt: skip
    return out


RATIOS = [
    ("one sidecar / direct", "plait-1", "direct"),
    ("two sidecars (mTLS) / direct", "plait-2", "direct"),
    ("plait one hop / observed hand-written one hop", "plait-1", "hand-1-obs"),
    ("plait two hops / observed hand-written two hops, mTLS", "plait-2", "hand-2-obs"),
    ("plait one hop / bare hand-written one hop", "plait-1", "hand-1"),
    ("plait two hops / bare hand-written two hops, mTLS", "plait-2", "hand-2"),
    ("observed / bare hand-written, one hop", "hand-1-obs", "hand-1"),
    ("observed / bare hand-written, two hops, mTLS", "hand-2-obs", "hand-2"),
    ("plait two hops / hand-written two hops, plain text", "plait-2-plain", "hand-2-plain"),
    ("plait mTLS / plait plain text (two hops)", "plait-2", "plait-2-plain"),
    ("hand-written mTLS / plain text (two hops)", "hand-2", "hand-2-plain"),
]


def ratios(paths: list[Scenario], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired ratios: for each rep, path A's figure over path B's from the same rep; the
    median over reps, with the range."""
    proxies = {p.key: p.proxies for p in paths}
    by = {(r["path"], r["connections"], r["rep"]): r for r in runs}
    metrics: dict[str, Callable[[dict[str, Any], str], float]] = {
        "p50": lambda r, _k: float(r["wrk"]["p50_us"]),
        "p99": lambda r, _k: float(r["wrk"]["p99_us"]),
        "rps": lambda r, _k: float(r["wrk"]["rps"]),
        "cpu": lambda r, k: _proxy_cpu_per_request(r, proxies[k]),
    }
    out = []
    for title, a, b in RATIOS:
        for conns in sorted({r["connections"] for r in runs}):
            reps = sorted(rep for (k, c, rep) in by if k == a and c == conns and (b, c, rep) in by)
            if not reps:
                continue
            entry: dict[str, Any] = {"ratio": title, "a": a, "b": b, "connections": conns}
            for name, f in metrics.items():
                if name == "cpu" and b == "direct":
                    continue  # the direct path has no proxy
                values = [f(by[a, conns, rep], a) / f(by[b, conns, rep], b) for rep in reps]
                entry[name] = {
                    "median": statistics.median(values),
                    "min": min(values),
                    "max": max(values),
                }
            out.append(entry)
    return out
