"""`plait top`: options, exit codes and output, against a fake mesh: a state file naming
this process, whose proxies' metrics URLs are a local HTTP server whose counters grow at
each scrape (the e2e test in tests/e2e/observability drives it on a real mesh)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from plait.cli import exitcodes
from plait.cli.main import app
from plait.cli.top import parse_interval, render
from plait.local.statefile import MeshState, ProxyEntry, write_state
from plait.telemetry.top import compute, scrape_of

runner = CliRunner()


def exposition(ok: int, failed: int) -> str:
    common = (
        'reporter="destination",source_workload="client",source_workload_namespace="default",'
        'destination_service_name="echo",destination_service_namespace="default"'
    )
    return f"""# TYPE envoy_server_live gauge
envoy_server_live 1
# TYPE istio_requests counter
istio_requests_total{{{common},response_code="200"}} {ok}
istio_requests_total{{{common},response_code="503"}} {failed}
# TYPE istio_request_duration_milliseconds histogram
istio_request_duration_milliseconds_bucket{{{common},response_code="200",le="5"}} {ok}
istio_request_duration_milliseconds_bucket{{{common},response_code="200",le="+Inf"}} {ok}
istio_request_duration_milliseconds_count{{{common},response_code="200"}} {ok}
istio_request_duration_milliseconds_sum{{{common},response_code="200"}} {ok}
"""


@pytest.fixture
def metrics_url() -> Iterator[str]:
    """Each scrape: 30 more 200s and 10 more 503s than the one before."""
    scrapes = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            scrapes[0] += 1
            body = exposition(30 * scrapes[0], 10 * scrapes[0]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stats/prometheus"
    server.shutdown()
    server.server_close()


@pytest.fixture
def mesh(tmp_path: Path, metrics_url: str) -> Path:
    proxies = [
        ProxyEntry(
            name="sidecar~echo-0",
            kind="sidecar",
            workload="echo",
            namespace="default",
            serviceAccount="echo",
            labels={"app": "echo"},
            admin="127.0.0.1:1",
            metrics=metrics_url,
        ),
        # an unreachable proxy is left out, not an error
        ProxyEntry("sidecar~gone-0", "sidecar", "gone", "default", "gone", {}, "127.0.0.1:1"),
    ]
    state = MeshState(os.getpid(), "ready", str(tmp_path), "", "http://127.0.0.1:1/status")
    state.proxies = proxies
    write_state(tmp_path, state)
    return tmp_path


def test_once_json_gives_the_window_figures(mesh: Path) -> None:
    result = runner.invoke(app, ["top", str(mesh), "--once", "-o", "json", "--interval", "300ms"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (echo,) = data["services"]
    assert echo["service"] == "echo" and echo["requests"] == 40
    assert echo["successRate"] == 0.75
    assert echo["rps"] == pytest.approx(40 / data["windowSeconds"], rel=0.01)
    assert 0.3 <= data["windowSeconds"] < 2.5
    assert echo["p50Ms"] == pytest.approx(2.5)
    (edge,) = data["edges"]
    assert (edge["source"], edge["service"], edge["requests"]) == ("client", "echo", 30 + 10)


def test_once_prints_a_table(mesh: Path) -> None:
    env = {"COLUMNS": "160"}
    result = runner.invoke(app, ["top", str(mesh), "--once", "--interval", "0.2"], env=env)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "│ echo" in line)
    assert "75.0%" in row and "default" in row


def test_no_mesh_exits_3(tmp_path: Path) -> None:
    result = runner.invoke(app, ["top", str(tmp_path), "--once"])
    assert result.exit_code == exitcodes.NOT_RUNNING
    assert "no mesh is running" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "json"], "needs --once"),
        (["--interval", "10ms"], "too short"),
        (["--interval", "soon"], "--interval"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["top", str(tmp_path), *args], env={"COLUMNS": "200"})
    assert result.exit_code == exitcodes.USAGE
    assert message in result.output


def test_parse_interval() -> None:
    assert parse_interval("2s") == 2.0
    assert parse_interval("1.5") == 1.5
    assert parse_interval("500ms") == 0.5


def test_render_shows_idle_services_with_dashes() -> None:
    prev = scrape_of(0.0, {"p": exposition(3, 1)})
    top = compute(prev, scrape_of(1.0, {"p": exposition(3, 1)}))
    console = Console(width=160, record=True)
    console.print(render(top))
    text = console.export_text()
    row = next(line for line in text.splitlines() if "echo" in line)
    assert "0.00" in row and "-" in row
    assert "edges" not in text  # no edge carried traffic
