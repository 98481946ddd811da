"""`plait traces` rendering: the summary table and the waterfall, children under parents."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from plait.cli import exitcodes
from plait.cli.traces import run, summary_table, waterfall

TRACE = {
    "traceId": "ab" * 16,
    "root": {"name": "edge", "service": "gw.istio-system"},
    "startUs": 1_000_000,
    "durationUs": 10_000,
    "spanCount": 3,
    "services": ["echo.default", "gw.istio-system"],
    "droppedSpans": 0,
    "spans": [
        # out of order on purpose: the child of the root comes first
        {
            "spanId": "2",
            "parentId": "1",
            "name": "inbound",
            "service": "echo.default",
            "kind": "SERVER",
            "startUs": 1_002_000,
            "durationUs": 6_000,
            "tags": {},
        },
        {
            "spanId": "1",
            "parentId": None,
            "name": "edge",
            "service": "gw.istio-system",
            "kind": "SERVER",
            "startUs": 1_000_000,
            "durationUs": 10_000,
            "tags": {"http.status_code": "200"},
        },
        {
            "spanId": "3",
            "parentId": "2",
            "name": "db",
            "service": "db.default",
            "kind": "CLIENT",
            "startUs": 1_003_000,
            "durationUs": 1_000,
            "tags": {},
        },
    ],
}


def render(table: object) -> str:
    console = Console(width=160, record=True)
    console.print(table)
    return console.export_text()


def test_the_waterfall_nests_spans_and_places_bars_on_the_time_line() -> None:
    lines = [line for line in render(waterfall(TRACE)).splitlines() if "█" in line]
    assert [line.split()[1] for line in lines] == ["gw.istio-system", "echo.default", "db.default"]
    assert "[200]" in lines[0]
    bars = [line[line.index("█") - 1 :] for line in lines]
    offsets = [line.index("█") for line in lines]
    assert offsets[0] < offsets[1] < offsets[2]  # each later span starts further right
    assert bars[0].count("█") > bars[1].count("█") > bars[2].count("█")
    assert lines[1].index("echo") > lines[0].index("gw")  # indented under its parent


def test_the_summary_lists_root_duration_and_services() -> None:
    text = render(summary_table([TRACE]))
    assert "ab" * 16 in text and "gw.istio-system: edge" in text
    assert "10.0 ms" in text and "echo.default, gw.istio-system" in text


def test_no_mesh_running_is_exit_3(tmp_path: Path) -> None:
    quiet = Console(file=io.StringIO())
    assert run(tmp_path, None, 5, False, quiet, quiet) == exitcodes.NOT_RUNNING
