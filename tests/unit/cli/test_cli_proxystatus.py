"""`plait proxy-status`: per proxy and xDS type, NACKs with Envoy's message, an exit code
scripts can gate on. The control plane's view is `collect_status` output (faked here; the
e2e test in tests/e2e/debugging runs it against a real mesh)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from plait.cli import exitcodes, proxystatus
from plait.cli.main import app
from plait.errors import MeshStateError

runner = CliRunner()
SYNCED = {"cds": "SYNCED", "eds": "SYNCED", "lds": "SYNCED", "rds": "SYNCED"}
NACK_TEXT = (
    "Error adding/updating listener(s) virtualInbound: Proto constraint validation failed "
    "(HttpConnectionManagerValidationError.RouteConfig: embedded message failed validation "
    "| caused by RouteConfigurationValidationError.VirtualHosts[0]: a very long explanation)"
)


def _proxy(name: str, sync: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "sidecar",
        "workload": name.split("~")[1].rsplit("-", 1)[0],
        "admin": "",
        "connected": True,
        "sync": sync or SYNCED,
        "generation": 7,
        "nack": None,
        **extra,
    }


def _status(*proxies: dict[str, Any], error: str | None = None) -> dict[str, Any]:
    return {"controlPlane": {"generation": 7, "error": error}, "proxies": list(proxies)}


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make `collect_status` return what the test gives; Envoy is 1.40.0 everywhere."""

    def install(data: dict[str, Any] | Exception) -> None:
        def collect(_root: Path) -> dict[str, Any]:
            if isinstance(data, Exception):
                raise data
            return data

        monkeypatch.setattr("plait.local.status.collect_status", collect)
        monkeypatch.setattr(
            proxystatus, "envoy_versions", lambda ps: {p["name"]: "1.40.0" for p in ps}
        )

    return install


def _run(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["proxy-status", str(tmp_path), *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_all_synced_exits_ok_and_shows_generation_and_envoy_version(
    serve: Any, tmp_path: Path
) -> None:
    serve(_status(_proxy("sidecar~client-0.default"), _proxy("sidecar~echo-0.default")))
    code, out = _run(tmp_path)
    assert code == exitcodes.OK, out
    row = next(line for line in out.splitlines() if "client-0" in line)
    assert row.count("SYNCED") == 4 and " 7 " in row and "1.40.0" in row
    assert "NACK" not in out


def test_a_nack_exits_not_synced_and_shows_envoys_message_once_per_group(
    serve: Any, tmp_path: Path
) -> None:
    nacked = {**SYNCED, "lds": "NACK"}
    serve(
        _status(
            _proxy("sidecar~client-0.default", nacked, nack=NACK_TEXT),
            _proxy("sidecar~echo-0.default", nacked, nack=NACK_TEXT),
            _proxy("sidecar~web-0.default"),
        )
    )
    code, out = _run(tmp_path)
    assert code == exitcodes.NOT_SYNCED
    assert "rejected by Envoy (NACK)" in out
    flat = " ".join(out.replace("│", " ").split())
    assert "a very long explanation" in flat
    assert out.count("Proto constraint validation failed") == 1  # grouped, not repeated
    assert "2 of 3 proxies not in sync" in out


def test_the_nack_message_wraps_in_a_narrow_terminal(serve: Any) -> None:
    rows = proxystatus.status_rows(
        _status(_proxy("sidecar~client-0.default", {**SYNCED, "rds": "NACK"}, nack=NACK_TEXT)),
        {},
    )
    table = proxystatus.nack_table(rows)
    assert table is not None
    console = Console(record=True, width=80)
    console.print(table)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "explanation" in text and "RDS" in text


@pytest.mark.parametrize(
    "proxy",
    [
        _proxy("sidecar~a-0.default", {**SYNCED, "eds": "STALE"}),
        _proxy("sidecar~a-0.default", connected=False),
        _proxy("sidecar~a-0.default", {t: "UNKNOWN" for t in SYNCED}),  # control plane down
    ],
)
def test_stale_disconnected_or_unknown_is_not_in_sync(
    serve: Any, tmp_path: Path, proxy: dict[str, Any]
) -> None:
    serve(_status(proxy))
    code, _ = _run(tmp_path)
    assert code == exitcodes.NOT_SYNCED


def test_not_sent_is_in_sync(serve: Any, tmp_path: Path) -> None:
    serve(_status(_proxy("gateway~gw.istio-system", {**SYNCED, "rds": "NOT SENT"})))
    assert _run(tmp_path)[0] == exitcodes.OK


def test_json_output_for_scripts(serve: Any, tmp_path: Path) -> None:
    serve(
        _status(
            _proxy("sidecar~client-0.default", {**SYNCED, "rds": "NACK"}, nack="bad route"),
            error=None,
        )
    )
    code, out = _run(tmp_path, "-o", "json")
    assert code == exitcodes.NOT_SYNCED
    data = json.loads(out)
    (row,) = data["proxies"]
    assert row["sync"] == {"cds": "SYNCED", "lds": "SYNCED", "eds": "SYNCED", "rds": "NACK"}
    assert (row["nack"], row["generation"], row["envoy"], row["inSync"]) == (
        "bad route",
        7,
        "1.40.0",
        False,
    )
    assert data["inSync"] is False and data["controlPlane"]["generation"] == 7


def test_no_mesh_is_not_running(serve: Any, tmp_path: Path) -> None:
    serve(MeshStateError("no mesh is running for /x"))
    code, out = _run(tmp_path)
    assert code == exitcodes.NOT_RUNNING and "no mesh is running" in out
