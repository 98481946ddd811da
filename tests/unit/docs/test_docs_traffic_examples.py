"""Every YAML example in the traffic docs loads on top of the shop with no error.

docs/traffic/validation.md is checked by tests/unit/analysis/test_analysis_docs.py (its
examples are wrong on purpose). Each example is checked alone, as a user would add it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from plait.cli.analyze import analyze_directory

ROOT = Path(__file__).resolve().parents[3]
DOCS = sorted((ROOT / "docs" / "traffic").glob("*.md"))
INDEX = ROOT / "docs" / "traffic.md"
SHOP = ROOT / "examples" / "shop"


def examples() -> list[tuple[str, int, str]]:
    out = []
    for doc in DOCS:
        if doc.name == "validation.md":
            continue
        blocks = re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.DOTALL)
        out += [(doc.name, i, block) for i, block in enumerate(blocks)]
    return out


def test_the_traffic_index_links_every_page() -> None:
    index = INDEX.read_text()
    assert [d.name for d in DOCS if f"traffic/{d.name}" not in index] == []


def test_the_index_example_replaces_the_shop_virtual_services(tmp_path: Path) -> None:
    (block,) = re.findall(r"```yaml\n(.*?)```", INDEX.read_text(), re.DOTALL)
    shop = shutil.copytree(SHOP, tmp_path / "shop", ignore=shutil.ignore_patterns(".plait"))
    (shop / "virtual-services.yaml").write_text(block)
    report = analyze_directory(shop)
    assert [str(m) for m in report.messages] == []


@pytest.mark.parametrize(("doc", "index", "text"), examples())
def test_the_example_loads_on_top_of_the_shop(
    tmp_path: Path, doc: str, index: int, text: str
) -> None:
    shop = shutil.copytree(SHOP, tmp_path / "shop", ignore=shutil.ignore_patterns(".plait"))
    (shop / "example.yaml").write_text(text)
    report = analyze_directory(shop)
    errors = [str(m) for m in report.messages if m.severity.value == "error"]
    assert errors == [], f"{doc} example {index}:\n{text}"
