"""Markdown tables of benchmark results (the form docs/benchmarks.md uses)."""

from __future__ import annotations

import statistics
from typing import Any


def _table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    ms = 1e3 * seconds
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def _us(us: float) -> str:
    return f"{us:.0f}"


# -- data plane ------------------------------------------------------------------------


def dataplane(result: dict[str, Any]) -> str:
    opts = result["options"]
    parts = []
    for conns in opts["connections"]:
        rows = []
        for s in (x for x in result["summary"] if x["connections"] == conns):
            rows.append([
                s["title"],
                f"{s['rps']:,.0f} ({s['rps_min']:,.0f}–{s['rps_max']:,.0f})",
                _us(s["p50_us"]),
                _us(s["p90_us"]),
                _us(s["p99_us"]),
                f"{s['proxy_cpu_us_per_req']:.1f}" if s["path"] != "direct" else "–",
                f"{s['other_cores']:.2f}",
            ])  # fmt: skip
        parts.append(
            f"**{conns} connection{'s' if conns > 1 else ''}** "
            f"(wrk -t{opts['threads']} -c{conns} -d{opts['duration_s']:g}s, "
            f"median of {opts['reps']} runs):\n\n"
            + _table(
                ["path", "req/s (min–max)", "p50 µs", "p90 µs", "p99 µs",
                 "proxy CPU µs/req", "other load (cores)"],
                rows,
            )
        )  # fmt: skip
    if result.get("tls"):
        parts.append(tls(result["tls"]))
    parts.append(
        "**Ratios**, paired by repetition (A's run over B's run in the same rep; median and "
        "min–max over reps; latency or CPU > 1 and req/s < 1 mean A is slower):\n\n"
        + ratios(result)
    )
    return "\n\n".join(parts)


def tls(counters: dict[str, Any]) -> str:
    """What the mTLS paths negotiated (from the server Envoys' counters after the test
    requests) and how many handshakes the measured runs cost (connections are reused)."""
    probes, runs = counters.get("after_probes", {}), counters.get("after_runs", {})
    lines = []
    for name, seen in probes.items():
        if not seen.get("server handshake"):
            continue
        params = sorted(
            k.split(" ", 1)[1] for k in seen if k != "server handshake" and k.startswith("server ")
        )
        total = runs.get(name, {}).get("server handshake", 0)
        lines.append(f"- {name}: {', '.join(params)}; {total} handshakes in total")
    return "**TLS** on the mTLS paths (server side, from Envoy's counters):\n\n" + "\n".join(lines)


def _ratio(x: dict[str, float] | None) -> str:
    if x is None:
        return "–"
    return f"{x['median']:.2f} ({x['min']:.2f}–{x['max']:.2f})"


def ratios(result: dict[str, Any]) -> str:
    rows = [
        [
            r["ratio"],
            str(r["connections"]),
            _ratio(r.get("p50")),
            _ratio(r.get("p99")),
            _ratio(r.get("rps")),
            _ratio(r.get("cpu")),
        ]
        for r in result["ratios"]
    ]
    return _table(["ratio", "conns", "p50 latency", "p99 latency", "req/s", "proxy CPU/req"], rows)


# -- control plane ---------------------------------------------------------------------


def _p50max(stats: dict[str, float]) -> str:
    if not stats:
        return "–"
    return f"{_ms(stats['p50'])} / {_ms(stats['max'])}"


def convergence(result: dict[str, Any]) -> str:
    summary = result["summary"]
    parts = []
    grid = [s for s in summary if s["group"] == "grid"]
    if grid:
        rows = [
            [
                f"{s['services']} × {s['proxies']}",
                _p50max(s["route_s"]),
                _p50max(s["service_s"]),
                _ms(s["cpu_per_change_s"].get("p50")),
                _ms(s["proxies_cpu_per_change_s"].get("p50")),
                _ms(s["before_publish_s"].get("p50")),
                _ms(s["initial_sync_s"]),
                f"{s['rss_synced_mib']:.0f}",
                f"{s['peak_rss_mib']:.0f}",
            ]
            for s in grid
        ]
        n = grid[0]["route_s"].get("n", 0)
        parts.append(
            f"**Publish → every proxy ACKed** (simulated proxies; ms, p50 / max of {n} changes "
            "of each kind):\n\n"
            + _table(
                ["services × proxies", "VS weight edit", "new service",
                 "CP CPU per change", "proxies' CPU per change", "snapshot build",
                 "initial sync", "RSS synced MiB", "peak RSS MiB"],
                rows,
            )
        )  # fmt: skip
    real = [s for s in summary if s["group"] == "real"]
    if real:
        rows = [
            [
                f"{s['services']} × {s['proxies']}",
                "real Envoy" if s["client"] == "envoy" else "simulated",
                _p50max(s["route_s"]),
                _p50max(s["service_s"]),
                _ms(s["cpu_per_change_s"].get("p50")),
                _ms(s["proxies_cpu_per_change_s"].get("p50")),
                _ms(s["initial_sync_s"]),
            ]
            for s in real
        ]
        parts.append(
            "**Real Envoys vs simulated proxies** (publish → every proxy ACKed; ms, p50 / max):\n\n"
            + _table(
                ["services × proxies", "proxies", "VS weight edit", "new service",
                 "CP CPU per change", "proxies' CPU per change", "initial sync"],
                rows,
            )
        )  # fmt: skip
    watch = [s for s in summary if s["group"] == "watch"]
    if watch:
        rows = [
            [
                f"{s['services']} × {s['proxies']}",
                _ms(s["before_publish_s"].get("p50")),
                _p50max(s["route_s"]),
                _p50max(s["service_s"]),
                f"{s['peak_rss_mib']:.0f}",
            ]
            for s in watch
        ]
        parts.append(
            "**File write → every proxy ACKed** (plait's Watcher on a mesh directory, "
            "simulated proxies; ms, p50 / max):\n\n"
            + _table(
                ["services × proxies", "write → published (p50)", "VS weight edit (file)",
                 "new service (file)", "peak RSS MiB"],
                rows,
            )
        )  # fmt: skip
    if result.get("failures"):
        parts.append("**Failed scenarios:**\n\n" + "\n".join(f"- {f}" for f in result["failures"]))
    return "\n\n".join(parts)


def shop(result: dict[str, Any]) -> str:
    """YAML edit → every proxy of the running shop ACKed (real Envoys)."""
    ms = sorted(result["edits_ms"])
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return (
        f"**YAML edit → every proxy ACKed**, `plait up examples/shop` ({result['proxies']} real "
        f"Envoys), {len(ms)} edits of the reviews VirtualService:\n\n"
        "| p50 ms | p90 ms | max ms |\n| ---: | ---: | ---: |\n"
        f"| {statistics.median(ms):.0f} | {p90:.0f} | {ms[-1]:.0f} |\n"
    )
