"""`bench.pathcost`'s table: per pair of Envoys, each side's cost per request and the
ratios over the observed pair and over plait's, paired by repetition; with callgrind's
counts, the worker threads' and a rate-corrected ratio as well."""

from __future__ import annotations

import statistics
from typing import Any


def _both(sides: dict[str, Any], suffix: str = "") -> list[float]:
    """Client + server per rep."""
    return [
        c + s
        for c, s in zip(
            sides[f"client{suffix}"]["all"], sides[f"server{suffix}"]["all"], strict=True
        )
    ]


def _ratio(sides: dict[str, Any], base: dict[str, Any], suffix: str = "") -> str:
    """Both sides over `base`'s, paired by rep: median (min–max)."""
    r = [a / b for a, b in zip(_both(sides, suffix), _both(base, suffix), strict=True)]
    return f"{statistics.median(r):.3f} ({min(r):.3f}–{max(r):.3f})"


def rate_corrected(result: dict[str, Any], suffix: str = "") -> dict[str, float]:
    """Per pair, the per-request term a of `both sides = a + b / rps` fitted by least
    squares over every rep, b (the per-second work) shared by all pairs."""
    points = {
        name: [(1 / rps, both) for rps, both in zip(r["rps"]["all"], _both(r, suffix), strict=True)]
        for name, r in result.items()
    }
    num = den = 0.0
    for pts in points.values():
        mx = statistics.fmean(x for x, _ in pts)
        my = statistics.fmean(y for _, y in pts)
        num += sum((x - mx) * (y - my) for x, y in pts)
        den += sum((x - mx) ** 2 for x, _ in pts)
    b = num / den if den else 0.0
    return {name: statistics.fmean(y - b * x for x, y in pts) for name, pts in points.items()}


def report(result: dict[str, Any]) -> str:
    """A Markdown table: per pair, each side's median (range), both over the observed
    pair's (paired by rep), req/s, other load; with callgrind, worker threads as well."""
    base = result["observed"]
    workers = "client_workers" in base
    plait = result["plait"]
    head = "| pair | client /req | server /req | both, over observed | over plait |"
    rule = "| --- | ---: | ---: | ---: | ---: |"
    if workers:
        head += " workers: client / server | workers, over observed | rate-corrected |"
        rule += " ---: | ---: | ---: |"
        fitted = rate_corrected(result, "_workers")
    lines = [head + " req/s | other load |", rule + " ---: | ---: |"]

    def cell(r: dict[str, Any]) -> str:
        return f"{r['median']:.1f} ({r['min']:.1f}–{r['max']:.1f})"

    for name, r in result.items():
        row = (
            f"| {name} | {cell(r['client'])} | {cell(r['server'])} | {_ratio(r, base)} "
            f"| {_ratio(r, plait)} |"
        )
        if workers:
            row += (
                f" {r['client_workers']['median']:.1f} / {r['server_workers']['median']:.1f}"
                f" | {_ratio(r, base, '_workers')} | {fitted[name] / fitted['observed']:.3f} |"
            )
        lines.append(
            row
            + f" {r['rps']['median']:.0f} | {r['other']['median']:.2f} ({r['other']['max']:.2f}) |"
        )
    return "\n".join(lines)
