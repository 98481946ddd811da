"""The init container's command line: what it applies is what the annotations say."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from plait.capture.command import apply_argv
from plait.capture.rules import capture_rules
from plait.capture.settings import CaptureSettings, from_annotations
from plait.cli.main import app
from plait.errors import CaptureSettingsError

P = "traffic.sidecar.istio.io/"
ANNOTATIONS = {
    P + "excludeOutboundPorts": "22,5432",
    P + "excludeOutboundIPRanges": "169.254.169.254/32",
    "sidecar.istio.io/inject": "true",
    P + "includeInboundPorts": "8080",
}


def test_only_capture_annotations_in_a_fixed_order() -> None:
    assert apply_argv(ANNOTATIONS) == [
        "plait", "capture", "apply", "--proxy-uid", "1337",
        "--proxy-port", "15020", "--proxy-port", "15021", "--proxy-port", "15090",
        "-a", f"{P}excludeOutboundIPRanges=169.254.169.254/32",
        "-a", f"{P}excludeOutboundPorts=22,5432",
        "-a", f"{P}includeInboundPorts=8080",
    ]  # fmt: skip


def test_the_command_applies_the_rules_of_the_annotations() -> None:
    argv = apply_argv(ANNOTATIONS, proxy_uid=2000, proxy_ports=(15000,))
    result = CliRunner().invoke(app, [*argv[1:], "--dry-run"])
    assert result.exit_code == 0, result.output
    base = CaptureSettings(proxy_uid=2000, proxy_gid=2000, proxy_ports=(15000,))
    assert result.output == capture_rules(from_annotations(ANNOTATIONS, base)).restore_text()


def test_a_bad_annotation_is_refused_at_injection_time() -> None:
    with pytest.raises(CaptureSettingsError, match=f"{P}includeInboundPorts"):
        apply_argv({P + "includeInboundPorts": "http"})
