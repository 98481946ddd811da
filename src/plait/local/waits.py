"""Waiting on other processes from `plait up`: poll with a deadline, and run a set of
start steps that fail together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from plait.errors import StartupError


async def poll_until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll another process's state (a port, the control plane's status) until `check`."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise StartupError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


async def gather_or_cancel(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Run all; on the first failure cancel the rest and re-raise that failure (the
    first, not an ExceptionGroup: callers map it to a message)."""
    try:
        async with asyncio.TaskGroup() as tg:
            for c in coros:
                tg.create_task(c)
    except BaseExceptionGroup as group:
        raise group.exceptions[0] from None
