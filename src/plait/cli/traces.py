"""`plait traces DIR [TRACE_ID]`: recent traces from the control plane's trace store.

Without a trace id: a table of the newest traces (root span, start, duration, span
count, services). With one: its spans as a waterfall, each indented under its parent
with a bar placed on the trace's time line. Both read the store over the status server
(`/traces`, `/traces/{id}`; see controlplane.tracestore); `-o json` prints what it
returns. Exit 3 when no mesh runs (or its control plane cannot be reached), 1 when the
trace is not in the store.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from plait.cli import exitcodes

BAR_WIDTH = 40


def _ms(us: int) -> str:
    return f"{us / 1000:.1f} ms"


def summary_table(traces: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title="recent traces (newest first)")
    table.add_column("trace id", no_wrap=True)
    table.add_column("root", overflow="fold")
    table.add_column("start", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("spans", justify="right")
    table.add_column("services", overflow="fold")
    for t in traces:
        start = datetime.fromtimestamp(t["startUs"] / 1e6, UTC).strftime("%H:%M:%S.%f")[:-3]
        root = f"{t['root']['service']}: {t['root']['name']}"
        table.add_row(
            t["traceId"],
            root,
            start,
            _ms(t["durationUs"]),
            str(t["spanCount"]),
            ", ".join(t["services"]),
        )
    return table


def _ordered(spans: Sequence[Mapping[str, Any]]) -> list[tuple[int, Mapping[str, Any]]]:
    """(depth, span) in tree order: children under their parent, by start time."""
    ids = {s["spanId"] for s in spans}
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for s in spans:
        parent = s["parentId"] if s["parentId"] in ids else None
        children.setdefault(parent, []).append(s)
    out: list[tuple[int, Mapping[str, Any]]] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda x: x["startUs"]):
            out.append((depth, s))
            walk(s["spanId"], depth + 1)

    walk(None, 0)
    return out


def _bar(start: int, duration: int, t0: int, total: int) -> Text:
    scale = BAR_WIDTH / total if total > 0 else 0.0
    left = min(BAR_WIDTH - 1, int((start - t0) * scale))
    width = max(1, min(BAR_WIDTH - left, round(duration * scale)))
    return Text(" " * left + "█" * width, style="cyan")


def waterfall(trace: Mapping[str, Any]) -> Table:
    """One row per span: service and name indented by depth, kind, offset, duration, bar."""
    t0, total = int(trace["startUs"]), int(trace["durationUs"])
    table = Table(title=f"trace {trace['traceId']} ({_ms(total)}, {trace['spanCount']} spans)")
    table.add_column("span", overflow="fold")
    table.add_column("kind", no_wrap=True)
    table.add_column("at", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True, min_width=BAR_WIDTH)
    for depth, s in _ordered(trace["spans"]):
        code = s["tags"].get("http.status_code", "")
        label = f"{'  ' * depth}{s['service']}  {s['name']}" + (f"  [{code}]" if code else "")
        table.add_row(
            Text(label),
            s["kind"] or "-",
            _ms(s["startUs"] - t0),
            _ms(s["durationUs"]),
            _bar(s["startUs"], s["durationUs"], t0, total),
        )
    return table


def _traces_url(status_url: str, tail: str) -> str:
    return urllib.parse.urljoin(status_url, "/traces" + tail)


def run(
    directory: Path,
    trace_id: str | None,
    limit: int,
    json_output: bool,
    console: Console,
    err: Console,
) -> int:
    """Print recent traces, or one trace as a waterfall; the exit code."""
    from plait.errors import MeshStateError
    from plait.local.statefile import read_state
    from plait.local.status import get_json

    try:
        status_url = read_state(directory).status_url
    except MeshStateError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return exitcodes.NOT_RUNNING
    tail = f"/{urllib.parse.quote(trace_id.lower())}" if trace_id else f"?limit={limit}"
    try:
        data = get_json(_traces_url(status_url, tail))
    except urllib.error.HTTPError as exc:
        if exc.code == 404 and trace_id:
            err.print(f"[red]error:[/] no trace {trace_id} in the store", highlight=False)
            return exitcodes.CONFIG_ERRORS
        err.print(f"[red]error:[/] the control plane answered {exc.code}", highlight=False)
        return exitcodes.NOT_RUNNING
    except OSError as exc:
        err.print(f"[red]error:[/] control plane unreachable at {status_url}: {exc}")
        return exitcodes.NOT_RUNNING
    if json_output:
        print(json.dumps(data, indent=2))
    elif trace_id:
        console.print(waterfall(data))
    elif not data["traces"]:
        console.print("no traces yet: send a request through the mesh")
    else:
        console.print(summary_table(data["traces"]))
    return exitcodes.OK
