"""Every YAML example in docs/observability.md is valid.

A mesh resource (a document with `apiVersion` and `kind`: the mesh ConfigMap) loads on top
of the shop with no message from `plait analyze`, and its tracing settings come out as the
page says; a Prometheus config or an OpenTelemetry Collector config parses and refers
only to what it declares.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from plait.api import load_text
from plait.cli.analyze import analyze_directory
from plait.model.meshsettings import TraceExport, mesh_settings

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "observability.md"
SHOP = ROOT / "examples" / "shop"
EXAMPLE = "example.yaml"


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.DOTALL)


def documents(text: str) -> list[Any]:
    return [d for d in yaml.safe_load_all(text) if d]


def is_mesh_resource(text: str) -> bool:
    return all(isinstance(d, dict) and "apiVersion" in d and "kind" in d for d in documents(text))


MESH = [b for b in yaml_blocks() if is_mesh_resource(b)]
TOOLS = [b for b in yaml_blocks() if not is_mesh_resource(b)]


def test_the_page_has_mesh_and_tool_examples() -> None:
    assert len(MESH_CONFIGS) >= 2
    assert len(TOOLS) >= 2
    assert "observability.md" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("text", MESH)
def test_the_mesh_example_loads_on_top_of_the_shop(tmp_path: Path, text: str) -> None:
    shop = shutil.copytree(SHOP, tmp_path / "shop", ignore=shutil.ignore_patterns(".plait"))
    (shop / EXAMPLE).write_text(text)
    report = analyze_directory(shop)
    assert [str(m) for m in report.messages] == [], text
    assert report.resources == analyze_directory(SHOP).resources + len(documents(text))


MESH_CONFIGS = [b for b in MESH if any(d["kind"] == "ConfigMap" for d in documents(b))]


@pytest.mark.parametrize("text", MESH_CONFIGS)
def test_the_mesh_example_chooses_a_collector(text: str) -> None:
    tracing = mesh_settings(load_text(text, EXAMPLE).resources).tracing
    assert tracing.enabled
    assert tracing.collector is not None
    assert tracing.collector.export in (TraceExport.OTLP, TraceExport.ZIPKIN)


def _prometheus(config: dict[str, Any]) -> None:
    jobs = config["scrape_configs"]
    assert len({j["job_name"] for j in jobs}) == len(jobs)
    for job in jobs:
        assert job["metrics_path"] in ("/stats/prometheus", "/metrics")
        assert all(f["files"] for f in job["file_sd_configs"])


def _collector(config: dict[str, Any]) -> None:
    for pipeline in config["service"]["pipelines"].values():
        for part in ("receivers", "processors", "exporters"):
            assert set(pipeline.get(part, [])) <= set(config.get(part, {})), part


@pytest.mark.parametrize("text", TOOLS)
def test_the_tool_config_hangs_together(text: str) -> None:
    (config,) = documents(text)
    if "scrape_configs" in config:
        _prometheus(config)
    else:
        _collector(config)
