"""`plait ca status` and `plait ca rotate-root --step add|switch|finish` on a mesh dir."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from plait.ca import CertificateAuthority
from plait.cli.main import app

runner = CliRunner()


def _ca(tmp_path: Path) -> Path:
    ca_dir = tmp_path / ".plait" / "ca"
    CertificateAuthority.load(ca_dir, "cluster.local", create=True)
    return ca_dir


def test_status_json_lists_the_root_that_signs(tmp_path: Path) -> None:
    _ca(tmp_path)
    result = runner.invoke(app, ["ca", "status", str(tmp_path), "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    (root,) = data["certificates"]
    assert (root["role"], root["signs"], data["layout"], data["rotation"]) == (
        "root",
        True,
        "plait-made",
        "idle",
    )
    assert root["daysLeft"] > 3000 and data["warnings"] == []


def test_status_without_a_ca_fails_clearly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ca", "status", str(tmp_path)])
    assert result.exit_code == 1
    assert "no CA here" in result.output


def test_rotation_steps_report_what_they_did_and_what_to_wait_for(tmp_path: Path) -> None:
    ca_dir = _ca(tmp_path)

    def step(name: str, *extra: str) -> str:
        result = runner.invoke(app, ["ca", "rotate-root", str(tmp_path), "--step", name, *extra])
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    assert "next: Before `--step switch`" in step("add")
    assert (ca_dir / "next-root-cert.pem").exists()
    out = step("switch")
    assert "extra-roots.pem" in out and "workload certificate TTL" in out
    refused = runner.invoke(app, ["ca", "rotate-root", str(tmp_path), "--step", "finish"])
    assert refused.exit_code == 1 and "--force" in refused.output
    assert "no longer trusted" in step("finish", "--force")
    assert not (ca_dir / "extra-roots.pem").exists()


def test_custom_ca_dir(tmp_path: Path) -> None:
    ca_dir = tmp_path / "elsewhere"
    CertificateAuthority.load(ca_dir, "cluster.local", create=True)
    result = runner.invoke(
        app, ["ca", "rotate-root", str(tmp_path), "--ca-dir", str(ca_dir), "--step", "add"]
    )
    assert result.exit_code == 0, result.output
    assert (ca_dir / "next-root-key.pem").exists()
