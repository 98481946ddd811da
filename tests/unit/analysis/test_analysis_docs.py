"""Every example in docs/traffic/validation.md gives exactly the message its comment states."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from plait.cli.analyze import analyze_directory

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "traffic" / "validation.md"
SHOP = ROOT / "examples" / "shop"
EXPECT = re.compile(r"^# plait analyze: (error|warning) at (\S+)$")


def examples() -> list[tuple[str, str, str]]:
    """(severity, path, yaml) of each ```yaml block of the doc."""
    out = []
    for block in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.DOTALL):
        found = EXPECT.match(block.splitlines()[0])
        assert found, f"an example without '# plait analyze: ...' first:\n{block}"
        out.append((found.group(1), found.group(2), block))
    return out


@pytest.mark.parametrize(("severity", "path", "text"), examples())
def test_the_example_gives_the_documented_message(
    tmp_path: Path, severity: str, path: str, text: str
) -> None:
    shop = shutil.copytree(SHOP, tmp_path / "shop", ignore=shutil.ignore_patterns(".plait"))
    (shop / "example.yaml").write_text(text)
    report = analyze_directory(shop)
    found = [(m.severity.value, m.path) for m in report.messages if m.file.endswith("example.yaml")]
    assert found == [(severity, path)], [str(m) for m in report.messages]
    assert report.errors == (severity == "error")  # and none elsewhere in the shop


def test_the_doc_has_an_example_per_check() -> None:
    assert len(examples()) >= 14
