"""Tables that fit a terminal, as `kubectl get` draws them (issue 15): no borders, one line
per row at 80 columns (long values shortened with `…`), `-o wide` shows values whole.

Each command is run at COLUMNS=80. "No cell wraps" is checked as: no line is longer than
80, and every row is one line, found by its first cell together with a cell from its end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from configdumpkit import ECHO, admin_pages, fake_admin
from plait.cli import proxystatus
from plait.cli.main import app
from plait.cli.render import Column, Grid
from plait.local.statefile import MeshState, ProxyEntry, write_state

SHOP = Path(__file__).resolve().parents[3] / "examples" / "shop"
BOX = set("│┃─━┏┓┗┛┡┩└┘├┤┼╭╮╰╯")
LONG = "sidecar~recommendations-canary-v2-0.storefront-production"
SYNCED = {"cds": "SYNCED", "eds": "SYNCED", "lds": "SYNCED", "rds": "SYNCED"}


def run(*args: str, width: int = 80) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": str(width)})
    assert result.exit_code in (0, 1, 5), result.output
    return result.output


def assert_fits(out: str, width: int = 80) -> None:
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= width, out
    assert not BOX & set(out), "a box border"


def row(out: str, first: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(first))


def _proxy(name: str, sync: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "sidecar",
        "workload": name.split("~")[1].rsplit("-", 1)[0],
        "identity": "spiffe://cluster.local/ns/storefront-production/sa/recommendations",
        "admin": "127.0.0.1:41234",
        "inbound": "127.0.0.1:41235",
        "outbound": "127.0.0.1:41236",
        "connected": True,
        "sync": sync or SYNCED,
        "generation": 12,
        "nack": None,
        **extra,
    }


STATUS = {
    "phase": "ready",
    "gateway": "http://127.0.0.1:8080",
    "controlPlane": {"generation": 12, "error": None},
    "proxies": [
        _proxy(LONG),
        _proxy("sidecar~a-0.default", {**SYNCED, "rds": "NACK"}, nack="bad route " * 20),
    ],
    "errors": [],
    "warnings": [
        {
            "file": "routes/recommendations-virtual-service.yaml",
            "document": 3,
            "path": "spec.http[0].route[0].destination.subset",
            "message": "subset 'canary' is not defined by any DestinationRule of host " * 3,
            "severity": "warning",
            "kind": "VirtualService",
            "name": "recommendations",
        }
    ],
    "keptLastGood": [],
}


@pytest.fixture
def fake_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("plait.local.status.collect_status", lambda _root: STATUS)
    monkeypatch.setattr(proxystatus, "envoy_versions", lambda ps: {p["name"]: "1.40.0" for p in ps})


def test_status_fits_80_columns_and_wide_shows_everything(
    fake_status: None, tmp_path: Path
) -> None:
    out = run("status", str(tmp_path))
    assert_fits(out)
    assert "SYNCED" in row(out, "sidecar~recommend")  # one line: name ... sync
    assert "NACK(rds)" in row(out, "sidecar~a-0")
    assert "…" in row(out, "sidecar~recommend")  # the long name is shortened
    assert "bad route bad route" in out  # Envoy's error is shown whole, on its own line
    assert "spec.http[0].route[0].destination.subset" in out
    wide = run("status", str(tmp_path), "-o", "wide")
    line = row(wide, LONG)
    assert "127.0.0.1:41236" in line and "storefront-production/recommendations" in line


def test_proxy_status_fits_80_columns(fake_status: None, tmp_path: Path) -> None:
    out = run("proxy-status", str(tmp_path))
    lines = [line for line in out.splitlines() if not line.startswith("  ")]
    assert_fits("\n".join(lines))
    assert "1.40.0" in row(out, "sidecar~recommend") and "12" in row(out, "sidecar~a-0")
    assert LONG in row(run("proxy-status", str(tmp_path), "-o", "wide"), LONG)


def test_analyze_fits_80_columns_with_the_message_whole(tmp_path: Path) -> None:
    (tmp_path / "a-very-long-file-name-for-the-routes-of-the-shop.yaml").write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: recommendations-canary-release}\n"
        "spec:\n  hosts: [r]\n  http:\n  - match: [{uri: {regex: '(?!x)'}}]\n"
        "    route: [{destination: {host: r}}]\n"
    )
    out = run("analyze", str(tmp_path))
    assert_fits(out)
    assert "VirtualService/recommendations" in row(out, "error")  # shortened, one line
    assert "RE2" in out and "backreferences" in out  # the message, whole, under its row
    wide = run("analyze", str(tmp_path), "-o", "wide", width=80)
    assert "spec.http[0].match[0].uri.regex" in row(wide, "error")
    assert "backreferences" in row(wide, "error")  # whole on one line


def test_describe_fits_80_columns() -> None:
    out = run("describe", "reviews", str(SHOP))
    assert_fits(out)
    assert "reviews" in out and "STRICT" in out


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Path]:
    with fake_admin(admin_pages()) as admin:
        entry = ProxyEntry(
            name="sidecar~client-0.default",
            kind="sidecar",
            workload="client",
            namespace="default",
            serviceAccount="client",
            labels={"app": "client"},
            admin=admin,
        )
        write_state(
            tmp_path,
            MeshState(
                pid=os.getpid(),
                phase="ready",
                root=str(tmp_path),
                xds="127.0.0.1:1",
                status_url="http://127.0.0.1:1/status",
                proxies=[entry],
            ),
        )
        yield tmp_path


@pytest.mark.parametrize(
    "kind", ["cluster", "listener", "route", "endpoint", "secret", "bootstrap"]
)
def test_proxy_config_fits_80_columns(mesh: Path, kind: str) -> None:
    out = run("proxy-config", kind, "client-0", str(mesh))
    body = out.splitlines()[1:]  # the title names the proxy and its admin address
    assert_fits("\n".join(body))
    header = body[0]
    assert header == header.upper() and "  " in header


def test_proxy_config_wide_shows_the_cluster_name_whole(mesh: Path) -> None:
    assert ECHO in run("proxy-config", "cluster", "client-0", str(mesh), "-o", "wide")


def test_a_grid_shortens_only_flexible_columns_and_never_wraps() -> None:
    grid = Grid(
        "t",
        [Column("name", flex=True), Column("state"), Column("note", flex=True)],
    )
    for i in range(3):
        grid.add_row(f"proxy-{i}-" + "x" * 60, "SYNCED", "a fairly long note " * 5)
    console = Console(record=True, width=80)
    grid.print(console)
    lines = console.export_text().splitlines()
    assert len(lines) == 1 + 1 + 3 + 1  # title, header, rows, the "-o wide" hint
    assert all(len(line) <= 80 for line in lines)
    assert all("SYNCED" in line for line in lines[2:5])  # a short column is never cut
    wide = Grid("t", grid.columns, wide=True)
    wide.rows = grid.rows
    console = Console(record=True, width=80)
    wide.print(console)
    assert ("x" * 60) in console.export_text()
