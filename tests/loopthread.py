"""An asyncio loop in a thread of its own, for e2e tests that block (kubectl, urllib)
while a server of theirs must keep answering (the API server calling a webhook)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """`run(coro)` runs `coro` on the thread's loop and waits for its result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Cancel what is left on the loop (a test that failed half-way leaves tasks),
        then stop it; a loop that does not stop names where its thread is stuck."""
        if self.thread.is_alive():
            with contextlib.suppress(TimeoutError):  # reported below with the stack
                self.run(self._cancel_rest(), timeout=15)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(15)
        if self.thread.is_alive():
            # Seen rarely in full runs on a loaded machine, after the servers it ran had
            # stopped: reported with the thread's stack rather than failing a test whose
            # subject is not this helper; the daemon thread is left behind.
            frame = sys._current_frames().get(self.thread.ident or 0)
            stack = "".join(traceback.format_stack(frame)) if frame else "(no frame)"
            warnings.warn(f"the loop thread did not stop; it is at:\n{stack}", stacklevel=2)
            return
        self.loop.close()

    @staticmethod
    async def _cancel_rest() -> None:
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)


def wait_for(what: str, get: Callable[[], T | None], timeout: float = 60.0) -> T:
    """`get()`'s first truthy value, polled every 0.2 s; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
