"""`plait proxy sidecar|router`: settings errors exit 2 naming the variable or flag, a
proxy that cannot get its certificate exits 4 (tests/e2e/kube/test_podproxy_e2e.py runs
it for real in pods)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plait.cli import exitcodes
from plait.cli.main import app

runner = CliRunner()
POD = {"POD_NAME": "web-1-a", "POD_NAMESPACE": "shop", "INSTANCE_IP": "127.0.0.1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_pod_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*POD, "SERVICE_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)


def test_without_the_pods_environment_it_names_the_variable() -> None:
    result = runner.invoke(app, ["proxy", "sidecar"])
    assert result.exit_code == exitcodes.USAGE
    assert "POD_NAME is not set" in result.output


def test_a_malformed_xds_address_is_a_usage_error() -> None:
    result = runner.invoke(app, ["proxy", "sidecar", "--xds-address", "plaitd"], env=POD)
    assert result.exit_code == exitcodes.USAGE
    assert "--xds-address 'plaitd' is not HOST:PORT" in result.output


@pytest.mark.parametrize("port", ["http", "80:x", "0:8080"])
def test_a_malformed_router_port_is_a_usage_error(port: str) -> None:
    result = runner.invoke(app, ["proxy", "router", "--port", port], env=POD)
    assert result.exit_code == exitcodes.USAGE


def test_a_plain_http_ca_is_a_usage_error() -> None:
    result = runner.invoke(app, ["proxy", "sidecar", "--ca-address", "http://ca:15012"], env=POD)
    assert result.exit_code == exitcodes.USAGE
    assert "--ca-address" in result.output


def test_a_control_plane_name_that_does_not_resolve_exits_4(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["proxy", "sidecar", "--xds-address", "plaitd.invalid:15010", "--health-port", "0",
         "--run-dir", str(tmp_path)],
        env=POD,
    )  # fmt: skip
    assert result.exit_code == exitcodes.STARTUP_FAILED, result.output
    assert "cannot resolve the control plane 'plaitd.invalid'" in result.output


def test_no_certificate_in_time_exits_4_naming_the_ca(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    ca = f"https://127.0.0.1:{free_port()}"
    result = runner.invoke(
        app,
        ["proxy", "sidecar", "--xds-address", f"127.0.0.1:{free_port()}", "--ca-address", ca,
         "--token-file", str(token), "--ca-root-file", str(tmp_path / "root.pem"),
         "--run-dir", str(tmp_path / "run"), "--start-timeout", "1", "--health-port", "0"],
        env=POD,
    )  # fmt: skip
    assert result.exit_code == exitcodes.STARTUP_FAILED, result.output
    assert f"the CA at {ca}" in result.output
