"""`plait analyze DIR [-o json]`: load + analysis, sorted messages, exit 1 only on errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from plait.cli.main import app

SHOP = Path(__file__).resolve().parents[3] / "examples" / "shop"

SERVICE = """apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 8080}]
"""

WARNED = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: canary}}]
  - match: [{uri: {prefix: /late}}]
    route: [{destination: {host: reviews}}]
"""

BROKEN = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken}
spec:
  hosts: [broken.example.com]
  gateways: [no-such-gateway]
  http:
  - match: [{uri: {regex: '^/(?!admin).*'}}]
    route: [{destination: {host: reviews}}]
"""


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["analyze", *args])
    return result.exit_code, result.output


def messages(directory: Path) -> list[dict[str, object]]:
    code, out = run(str(directory), "-o", "json")
    found: list[dict[str, object]] = json.loads(out)["messages"]
    return found


def test_the_shop_has_no_errors() -> None:
    code, out = run(str(SHOP), "-o", "json")
    assert code == 0, out
    errors = [m for m in json.loads(out)["messages"] if m["severity"] == "error"]
    assert errors == []


def test_warnings_only_exit_0(tmp_path: Path) -> None:
    (tmp_path / "services.yaml").write_text(SERVICE)
    (tmp_path / "routes.yaml").write_text(WARNED)
    code, out = run(str(tmp_path))
    assert code == 0, out
    assert "0 errors" in out and "2 warnings" in out
    assert "routes.yaml" in out and str(tmp_path) not in out  # names relative to DIR
    assert [(m["severity"], m["path"]) for m in messages(tmp_path)] == [
        ("warning", "spec.http[0].route[0].destination.subset"),
        ("warning", "spec.http[1]"),
    ]


def test_an_error_exits_1_and_messages_are_sorted_by_file_and_document(tmp_path: Path) -> None:
    (tmp_path / "b-services.yaml").write_text(SERVICE)
    (tmp_path / "a-routes.yaml").write_text(WARNED + "---\n" + BROKEN)
    code, out = run(str(tmp_path))
    assert code == 1, out
    assert "1 errors" in out
    found = [
        (Path(str(m["file"])).name, m["document"], m["severity"], m["path"])
        for m in messages(tmp_path)
    ]
    assert found == [
        ("a-routes.yaml", 0, "warning", "spec.http[0].route[0].destination.subset"),
        ("a-routes.yaml", 0, "warning", "spec.http[1]"),
        ("a-routes.yaml", 1, "error", "spec.http[0].match[0].uri.regex"),
    ]
    # The broken VirtualService is refused, so nothing is said about its gateway.
    code, _ = run(str(tmp_path), "-o", "json")
    assert code == 1


def test_the_shop_with_a_bad_regex_fails(tmp_path: Path) -> None:
    shop = shutil.copytree(SHOP, tmp_path / "shop", ignore=shutil.ignore_patterns(".plait"))
    (shop / "broken.yaml").write_text(BROKEN)
    code, out = run(str(shop))
    assert code == 1
    assert "broken.yaml" in out and "spec.http[0].match[0].uri.regex" in out
