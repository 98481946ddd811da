"""`plait logs TARGET DIR [-o json] [--since] [--app]` over a state file and sample logs."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from typer.testing import CliRunner

from plait.cli import exitcodes
from plait.cli.logs import format_record
from plait.cli.main import app
from plait.local.accesslogs import parse_line
from plait.local.statefile import MeshState, ProxyEntry, ServiceEntry, write_state

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT = "spiffe://cluster.local/ns/default/sa/client"
ECHO = "spiffe://cluster.local/ns/default/sa/echo"


def record(at: dt.datetime, direction: str, **extra: object) -> str:
    fields = {
        "start_time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "method": "GET",
        "path": "/hello",
        "response_code": 200,
        "response_flags": "-",
        "duration": 3,
        "direction": direction,
        "downstream_peer_uri_san": CLIENT if direction == "inbound" else None,
        "upstream_peer_uri_san": ECHO if direction == "outbound" else None,
        "trace_id": None,
        "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
        **extra,
    }
    return json.dumps(fields)


def mesh(root: Path) -> Path:
    """A state file for echo (2 replicas) and client, with access and app logs."""
    logs = root / ".plait" / "logs"
    logs.mkdir(parents=True)

    def entry(instance: str, workload: str) -> ProxyEntry:
        return ProxyEntry(
            name=f"sidecar~{instance}.default",
            kind="sidecar",
            workload=workload,
            namespace="default",
            serviceAccount=workload,
            labels={},
            admin="127.0.0.1:1",
            appLog=str(logs / f"{instance}.log"),
            accessLog=str(logs / f"{instance}.access.log"),
        )

    write_state(
        root,
        MeshState(
            pid=os.getpid(),
            phase="ready",
            root=str(root),
            xds="127.0.0.1:2",
            status_url="http://127.0.0.1:3/status",
            proxies=[entry("echo-0", "echo"), entry("echo-1", "echo"), entry("client-0", "client")],
            services=[ServiceEntry("echo", "default", [], ["echo-0", "echo-1"], [])],
        ),
    )
    now = dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(hours=2)
    (logs / "echo-0.access.log").write_text(
        record(old, "inbound", path="/old") + "\n" + record(now, "inbound", path="/b") + "\n"
    )
    (logs / "echo-1.access.log").write_text(
        record(now - dt.timedelta(seconds=1), "inbound", path="/a") + "\n"
    )
    (logs / "client-0.access.log").write_text(record(now, "outbound", path="/client") + "\n")
    (logs / "echo-0.log").write_text("listening on 8080\n")
    return root


def test_readable_line_names_replica_request_code_peer_and_trace() -> None:
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    rec = parse_line("echo-0", record(at, "inbound"))
    assert rec is not None
    assert format_record(rec) == (
        f"2026-01-02T03:04:05.000Z echo-0 inbound  GET /hello 200 - 3ms peer={CLIENT} trace={TRACE}"
    )
    out = parse_line("client-0", record(at, "outbound", response_code=None, duration=None))
    assert out is not None
    assert f"GET /hello - - - peer={ECHO}" in format_record(out)


def test_json_lines_of_every_replica_merged_by_time(tmp_path: Path) -> None:
    root = mesh(tmp_path)
    result = CliRunner().invoke(app, ["logs", "echo", str(root), "-o", "json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert [(x["replica"], x["path"]) for x in lines] == [
        ("echo-0", "/old"),
        ("echo-1", "/a"),
        ("echo-0", "/b"),
    ]
    assert {x["trace_id"] for x in lines} == {TRACE}  # filled from traceparent


def test_since_keeps_recent_requests(tmp_path: Path) -> None:
    root = mesh(tmp_path)
    result = CliRunner().invoke(app, ["logs", "echo", str(root), "--since", "1h"])
    assert result.exit_code == 0, result.output
    paths = [line.split()[4] for line in result.stdout.splitlines()]
    assert paths == ["/a", "/b"]


def test_app_logs_instead_of_access_logs(tmp_path: Path) -> None:
    root = mesh(tmp_path)
    result = CliRunner().invoke(app, ["logs", "echo-0", str(root), "--app"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["[echo-0] listening on 8080"]
    refused = CliRunner().invoke(app, ["logs", "echo", str(root), "--app", "--since", "5m"])
    assert refused.exit_code == exitcodes.USAGE


def test_an_unknown_target_or_no_mesh_is_an_error(tmp_path: Path) -> None:
    root = mesh(tmp_path / "m")
    result = CliRunner().invoke(app, ["logs", "nope", str(root)])
    assert result.exit_code == exitcodes.USAGE
    assert "'nope' is no Service" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert CliRunner().invoke(app, ["logs", "echo", str(empty)]).exit_code == exitcodes.NOT_RUNNING
