"""Waiting on processes in tests: a condition with a deadline, and whether a pid runs.
Importable from every test directory."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Return once `condition()` holds; AssertionError naming `what` after `timeout` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.02)


def alive(pid: int) -> bool:
    """The process runs (a zombie that its new parent has yet to reap counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop_process(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """End `proc`: SIGTERM, then SIGKILL if it is still running after `grace` seconds;
    reaped either way (a no-op for a process that already exited)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
