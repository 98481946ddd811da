"""Restart backoff, log tail and the parent-death hook."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from plait.agent.process import backoff_delay, die_with_parent_hook, tail
from prockit import alive


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


PARENT = """
import asyncio, sys
from plait.agent.process import spawn

async def main() -> None:
    child = await spawn(["sleep", "60"])
    print(child.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
async def test_a_spawned_child_leads_its_own_group_and_dies_with_its_parent() -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PARENT, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert parent.stdout is not None
        async with asyncio.timeout(10):
            child = int(await parent.stdout.readline())
        assert os.getpgid(child) == child != os.getpgid(0)
    finally:
        parent.kill()
        await parent.wait()

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while alive(child):
        assert loop.time() < deadline, "the child outlived its parent"
        await asyncio.sleep(0.02)
