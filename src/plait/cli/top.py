"""`plait top DIR`: live per-service rps, success rate and latency, like `linkerd viz top`.

Every `interval` the command scrapes each proxy's metrics URL (`.plait/state.json`, the
`metrics` of `plait status -o json`), in parallel threads with a short timeout; an
unreachable proxy is left out of that scrape (`telemetry.top` then has no baseline for
it). Each frame shows the window between the last two scrapes, so figures follow the
traffic within one interval (histograms: plus Envoy's one-second stats flush). The live view is a
`rich.live.Live` redrawn in place; Ctrl-C ends it (exit 0). `--once` waits one interval
and prints one frame (a table, or JSON with `-o json`) for scripts. No mesh, or the mesh
going away while watching: a message and exit NOT_RUNNING.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from plait.cli import exitcodes
from plait.errors import MeshStateError
from plait.local.scrape import scrape_mesh
from plait.telemetry.top import Golden, Top, compute, top_json

MIN_INTERVAL_S = 0.2


@dataclass(frozen=True)
class TopOptions:
    root: Path
    interval_s: float = 2.0
    once: bool = False
    json: bool = False
    edges: bool = True


def parse_interval(value: str) -> float:
    """`--interval`: seconds, or a duration such as 500ms, 2s, 1m; ValueError if invalid."""
    from plait.api.duration import parse_nanos

    seconds = float(value) if value.replace(".", "", 1).isdigit() else parse_nanos(value) / 1e9
    if seconds < MIN_INTERVAL_S:
        raise ValueError(f"'{value}' is too short: at least {MIN_INTERVAL_S}s")
    return seconds


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms" if value < 100 else f"{value:.0f}ms"


def _style(rate: float | None) -> str:
    if rate is None or rate >= 1.0:
        return "green"
    return "yellow" if rate >= 0.95 else "red"


def _cells(g: Golden) -> list[str | Text]:
    rate = Text(_pct(g.success_rate), style=_style(g.success_rate))
    return [f"{g.rps:.2f}", rate, _ms(g.p50_ms), _ms(g.p99_ms), f"{g.requests:.0f}"]


def _table(title: str, first: list[str]) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for name in first:
        table.add_column(name, no_wrap=True)
    for name in ("RPS", "SUCCESS", "P50", "P99", "REQUESTS"):
        table.add_column(name, justify="right", no_wrap=True)
    return table


def render(top: Top, edges: bool = True) -> RenderableType:
    """The tables of one frame: services, then edges (source → service)."""
    services = _table(f"services (server side, last {top.window_s:.1f}s)", ["SERVICE", "NAMESPACE"])
    for r in top.services:
        services.add_row(r.service, r.namespace, *_cells(r.golden))
    if not top.services:
        return Group(services, Text("no requests seen by any sidecar yet", style="dim"))
    if not edges or not top.edges:
        return services
    table = _table("edges", ["SOURCE", "DESTINATION"])
    for e in top.edges:
        source = f"{e.source}.{e.source_namespace}"
        table.add_row(source, f"{e.service}.{e.namespace}", *_cells(e.golden))
    return Group(services, table)


def _frames(opts: TopOptions, pool: ThreadPoolExecutor) -> Callable[[], Top]:
    """A function returning the next frame: it sleeps one interval, then scrapes."""
    last = [scrape_mesh(opts.root, pool)]

    def next_frame() -> Top:
        time.sleep(max(0.0, last[0].at + opts.interval_s - time.monotonic()))
        cur = scrape_mesh(opts.root, pool)
        top = compute(last[0], cur)
        last[0] = cur
        return top

    return next_frame


def run(opts: TopOptions, console: Console, err: Console) -> int:
    """Show the figures until Ctrl-C (or one frame with `once`); returns the exit code."""
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="plait-top") as pool:
        try:
            next_frame = _frames(opts, pool)
            if opts.once:
                top = next_frame()
                if opts.json:
                    print(json.dumps(top_json(top), indent=2))
                else:
                    console.print(render(top, opts.edges))
                return exitcodes.OK
            waiting = Text(f"plait top {opts.root}: first figures in {opts.interval_s:g}s ...")
            with Live(waiting, console=console, auto_refresh=False) as live:
                while True:
                    live.update(render(next_frame(), opts.edges), refresh=True)
        except MeshStateError as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False)
            return exitcodes.NOT_RUNNING
        except KeyboardInterrupt:
            return exitcodes.OK
