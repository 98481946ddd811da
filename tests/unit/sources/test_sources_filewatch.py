"""Which directories the file sources watch, and that watching follows new directories."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from plait.sources import filewatch


def yaml(path: str) -> bool:
    return path.endswith(".yaml")


async def next_batch(it: AsyncIterator[set[str]]) -> set[str]:
    async with asyncio.timeout(10):
        return await anext(it)


def test_the_config_tree_leaves_out_hidden_directories(tmp_path: Path) -> None:
    (tmp_path / "team" / "routes").mkdir(parents=True)
    (tmp_path / ".plait" / "logs").mkdir(parents=True)
    (tmp_path / "team" / ".cache").mkdir()
    assert filewatch.visible_tree(tmp_path)() == {
        tmp_path,
        tmp_path / "team",
        tmp_path / "team" / "routes",
    }


def test_the_registry_watch_is_its_directory_once_it_exists(tmp_path: Path) -> None:
    dirs = filewatch.one_below(tmp_path, ".plait")
    assert dirs() == {tmp_path}
    (tmp_path / ".plait" / "logs").mkdir(parents=True)
    assert dirs() == {tmp_path, tmp_path / ".plait"}


async def test_a_file_in_a_directory_made_while_watching_is_seen(tmp_path: Path) -> None:
    it = filewatch.changes(filewatch.visible_tree(tmp_path), yaml)
    try:
        assert await next_batch(it) == set()  # watching has begun
        (tmp_path / "team").mkdir()
        (tmp_path / "team" / "a.yaml").write_text("kind: x\n")
        # the new directory restarts the watch, which says so with an empty set (the
        # source reads everything again then, so a.yaml is not lost) ...
        assert await next_batch(it) == set()
        # ... and from then on files in the new directory are reported
        (tmp_path / "team" / "b.yaml").write_text("kind: y\n")
        assert await next_batch(it) == {str(tmp_path / "team" / "b.yaml")}
    finally:
        await it.aclose()  # type: ignore[attr-defined]


async def test_writes_in_hidden_directories_wake_nobody(tmp_path: Path) -> None:
    logs = tmp_path / ".plait" / "logs"
    logs.mkdir(parents=True)
    it = filewatch.changes(filewatch.visible_tree(tmp_path), lambda _p: True)
    try:
        assert await next_batch(it) == set()
        for i in range(50):
            (logs / f"{i}.yaml").write_text("x\n")
        (tmp_path / "a.yaml").write_text("kind: x\n")
        # everything is wanted, yet the first change reported is the visible one
        assert await next_batch(it) == {str(tmp_path / "a.yaml")}
    finally:
        await it.aclose()  # type: ignore[attr-defined]
