"""`plait up`'s exit codes when the mesh cannot start (no process is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from plait.cli import exitcodes
from plait.cli.main import app
from plait.errors import WorkloadCertificateError
from plait.local.runner import LocalMesh


def test_no_workload_certificate_is_exit_4_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: WorkloadCertificateError ended `plait up` in a traceback with exit 1."""

    async def refused(_self: LocalMesh) -> None:
        raise WorkloadCertificateError("CA https://127.0.0.1:1 refused the CSR: 403 denied")

    monkeypatch.setattr(LocalMesh, "_start", refused)
    (tmp_path / "empty.yaml").write_text("")
    result = CliRunner().invoke(app, ["up", str(tmp_path)])
    assert result.exit_code == exitcodes.STARTUP_FAILED, result.output
    assert "refused the CSR: 403 denied" in result.output
    assert "Traceback" not in result.output


def test_transparent_without_root_says_so_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[bool] = []

    async def start(_self: LocalMesh) -> None:
        started.append(True)

    monkeypatch.setattr(LocalMesh, "_start", start)
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    (tmp_path / "empty.yaml").write_text("")
    result = CliRunner().invoke(app, ["up", str(tmp_path), "--transparent"])
    assert result.exit_code == exitcodes.USAGE, result.output
    assert "--transparent needs root" in " ".join(result.output.split())
    assert not started
