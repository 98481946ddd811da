"""`plait capture apply|remove`: dry runs, annotation errors, the root check, exit codes.
(Applying for real, in network namespaces, is tests/e2e/capture.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from plait.capture.rules import capture_rules
from plait.capture.settings import CaptureSettings
from plait.cli import exitcodes
from plait.cli.main import app

runner = CliRunner()
P = "traffic.sidecar.istio.io/"


def test_dry_run_prints_the_restore_input_of_the_settings() -> None:
    result = runner.invoke(
        app,
        ["capture", "apply", "--dry-run", "--proxy-uid", "2000", "--proxy-port", "15000",
         "-a", f"{P}excludeOutboundPorts=22"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = CaptureSettings(
        proxy_uid=2000, proxy_gid=2000, proxy_ports=(15000,), exclude_outbound_ports=(22,)
    )
    assert result.output == capture_rules(expected).restore_text()


def test_dry_run_defaults_exempt_istios_proxy_ports(tmp_path: Path) -> None:
    result = runner.invoke(app, ["capture", "apply", "--dry-run"])
    assert "-A ISTIO_INBOUND -p tcp -m multiport --dports 15020,15021,15090 -j RETURN" in (
        result.output
    )


def test_annotations_file_in_downward_api_format(tmp_path: Path) -> None:
    podinfo = tmp_path / "annotations"
    podinfo.write_text(f'{P}includeInboundPorts="8080"\nother="x"\n')
    result = runner.invoke(
        app, ["capture", "apply", "--dry-run", "--annotations-file", str(podinfo)]
    )
    assert result.exit_code == 0, result.output
    assert "-A ISTIO_INBOUND -p tcp --dport 8080 -j ISTIO_IN_REDIRECT" in result.output
    assert "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT" not in result.output


def test_a_bad_annotation_is_named_and_exits_1() -> None:
    result = runner.invoke(
        app, ["capture", "apply", "--dry-run", "-a", f"{P}excludeOutboundPorts=ssh"]
    )
    assert result.exit_code == exitcodes.CONFIG_ERRORS
    assert f"{P}excludeOutboundPorts" in result.output and "'ssh' is not a port" in result.output


@pytest.mark.parametrize("command", ["apply", "remove"])
def test_without_root_it_says_so_and_exits_2(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    result = runner.invoke(app, ["capture", command])
    assert result.exit_code == exitcodes.USAGE == 2
    assert "needs root" in result.output


def test_missing_iptables_exits_7(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setenv("PATH", "/nonexistent")
    result = runner.invoke(app, ["capture", "apply"])
    assert result.exit_code == exitcodes.CAPTURE_FAILED == 7
    assert (
        "iptables-save not found" in result.output and "apt-get install iptables" in result.output
    )
