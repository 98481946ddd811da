"""Every YAML example in the security docs loads on top of the shop with no error, and
says nothing `plait analyze` would warn about.

The shop itself runs zero trust (examples/shop/security.yaml), so each example is checked
the way a user would add it to that shop: alone, as one more file. The security checks'
own examples (wrong on purpose) live in docs/traffic/validation.md and are checked by
tests/unit/analysis/test_analysis_docs.py.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from plait.cli.analyze import analyze_directory

ROOT = Path(__file__).resolve().parents[3]
INDEX = ROOT / "docs" / "security.md"
PAGES = sorted((ROOT / "docs" / "security").glob("*.md"))
SHOP = ROOT / "examples" / "shop"
EXAMPLE = "example.yaml"


def yaml_blocks(doc: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.DOTALL)


def examples() -> list[tuple[str, int, str]]:
    return [
        (doc.name, i, block) for doc in (INDEX, *PAGES) for i, block in enumerate(yaml_blocks(doc))
    ]


def test_the_index_links_every_page_and_has_examples() -> None:
    index = INDEX.read_text()
    assert [p.name for p in PAGES if f"security/{p.name}" not in index] == []
    assert len(yaml_blocks(INDEX)) >= 4
    assert all(yaml_blocks(p) for p in PAGES)


def test_the_zero_trust_shop_gets_no_message() -> None:
    report = analyze_directory(SHOP)
    assert [str(m) for m in report.messages] == []


@pytest.mark.parametrize(("doc", "index", "text"), examples())
def test_the_example_loads_on_top_of_the_shop(
    tmp_path: Path, doc: str, index: int, text: str
) -> None:
    shop = shutil.copytree(SHOP, tmp_path / "shop", ignore=shutil.ignore_patterns(".plait"))
    (shop / EXAMPLE).write_text(text)
    report = analyze_directory(shop)
    errors = [str(m) for m in report.messages if m.severity.value == "error"]
    assert errors == [], f"{doc} example {index}:\n{text}"
    about_it = [str(m) for m in report.messages if m.file.endswith(EXAMPLE)]
    assert about_it == [], f"{doc} example {index}:\n{text}"
    documents = [d for d in yaml.safe_load_all(text) if d]
    assert report.resources == shop_resources() + len(documents)  # none silently dropped


def shop_resources() -> int:
    return analyze_directory(SHOP).resources
