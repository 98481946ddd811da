"""`plait kube-inject -f FILE`: injected manifests on stdout (the same as inject_manifests),
stdin with '-', settings from options, exit 1 with file and document on bad input."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from plait.cli.main import app
from plait.inject import InjectSettings, inject_manifests

runner = CliRunner()
GOLDEN = Path(__file__).parents[1] / "inject" / "golden" / "deployment.in.yaml"


def test_injects_a_file_to_stdout() -> None:
    result = runner.invoke(app, ["kube-inject", "-f", str(GOLDEN)])
    assert result.exit_code == 0, result.output
    assert result.stdout == inject_manifests(GOLDEN.read_text(), InjectSettings(), str(GOLDEN))


def test_reads_stdin_and_takes_settings_from_options(tmp_path: Path) -> None:
    out = tmp_path / "out.yaml"
    args = ["kube-inject", "-f", "-", "-o", str(out), "--image", "reg/plait-proxy:9",
            "--trust-domain", "example.org", "--no-hold-application"]  # fmt: skip
    result = runner.invoke(app, args, input=GOLDEN.read_text())
    assert result.exit_code == 0, result.output
    web = list(yaml.safe_load_all(out.read_text()))[1]
    proxy = web["spec"]["template"]["spec"]["initContainers"][1]
    assert proxy["image"] == "reg/plait-proxy:9"
    assert "--trust-domain=example.org" in proxy["args"]
    assert "startupProbe" not in proxy


def test_bad_annotation_exits_1_naming_file_document_and_annotation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: Pod\nmetadata: {name: p, annotations: {sidecar.istio.io/proxyCPU: lots}}\n"
        "spec: {containers: [{name: a, image: a}]}\n"
    )
    result = runner.invoke(app, ["kube-inject", "-f", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}: document 0 (Pod/p)" in result.stderr
    assert "sidecar.istio.io/proxyCPU" in result.stderr
    missing = runner.invoke(app, ["kube-inject", "-f", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1 and "nope.yaml" in missing.stderr
