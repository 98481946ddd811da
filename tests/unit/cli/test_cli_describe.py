"""`plait describe SERVICE DIR`: readable sections, -o json, exit 2 on an unknown service."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from plait.cli.main import app

SHOP = Path(__file__).resolve().parents[3] / "examples" / "shop"


def test_describe_json_routes_the_request() -> None:
    args = ["describe", "reviews", str(SHOP), "--from", "frontend", "-H", "canary=true"]
    result = CliRunner().invoke(app, [*args, "--path", "/reviews/1", "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["service"]["hostname"] == "reviews.default.svc.cluster.local"
    assert data["route"]["request"]["headers"] == {"canary": "true"}
    assert data["route"]["clusters"][0]["cluster"].startswith("outbound|8080|v1|reviews")
    assert data["live"] is None  # no mesh runs for the example directory


def test_describe_table_has_every_section() -> None:
    result = CliRunner().invoke(app, ["describe", "reviews.default", str(SHOP)])
    assert result.exit_code == 0, result.output
    for text in ("Workloads", "VirtualServices", "DestinationRules", "Security", "Route"):
        assert text in result.stdout
    assert "STRICT" in result.stdout


def test_unknown_service_exits_2_with_the_list() -> None:
    result = CliRunner().invoke(app, ["describe", "nope", str(SHOP)])
    assert result.exit_code == 2
    assert "no service 'nope'" in result.output and "reviews.default" in result.output


def test_unknown_caller_exits_2() -> None:
    result = CliRunner().invoke(app, ["describe", "reviews", str(SHOP), "--from", "ghost"])
    assert result.exit_code == 2 and "no workload 'ghost'" in result.output
