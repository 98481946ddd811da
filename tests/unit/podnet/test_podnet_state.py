"""The write-ahead state file: what is recorded can be read back after a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from plait.errors import PodNetworkError
from plait.podnet.state import StateFile


def test_record_saves_before_anything_is_made_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "podnet.json"
    state = StateFile(path, "abc123", extra={"bridge": "plbabc123"})
    state.record("bridge", name="plbabc123")
    state.record("netns", name="plait-abc123-web")
    loaded = StateFile.load(path)
    assert loaded.run == "abc123" and loaded.extra == {"bridge": "plbabc123"}
    assert loaded.made == [
        {"kind": "bridge", "name": "plbabc123"},
        {"kind": "netns", "name": "plait-abc123-web"},
    ]
    assert not path.with_name("podnet.json.tmp").exists()


def test_unknown_kinds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        StateFile(tmp_path / "s.json", "r").record("process", pid="1")


def test_unreadable_state_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "podnet.json"
    bad.write_text("{not json")
    with pytest.raises(PodNetworkError, match="podnet.json: cannot read"):
        StateFile.load(bad)
    bad.write_text('{"version": 99}')
    with pytest.raises(PodNetworkError, match="not a version 1"):
        StateFile.load(bad)
