"""Restart backoff, log tail and the parent-death hook."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from plait.agent.process import backoff_delay, die_with_parent_hook, tail


def test_first_restart_is_immediate_then_doubles_up_to_the_cap() -> None:
    delays = [backoff_delay(n, 0.2, 1.0) for n in range(6)]

    assert delays == [0.0, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "envoy.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))

    assert tail(log, 2) == "line 98\nline 99\n"
    assert tail(tmp_path / "missing.log") == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_parent_death_hook_exists_on_linux() -> None:
    assert callable(die_with_parent_hook())
