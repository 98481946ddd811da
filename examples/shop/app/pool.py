"""A worker pool for the shop's apps: bounded capacity, unbounded queue, visible counters.

A :class:`WorkerPool` of ``N`` workers lets ``N`` requests run at once; the others wait
in a FIFO queue that has no limit, as the request queue of a thread-pool server does.
That is the failure mode of the outage story: when what the workers wait on gets slow,
every request behind them waits too, whatever it needs, and the queue (with the memory
each queued request holds) grows as long as requests arrive faster than they leave.

``N = 0`` means no limit (no queue). :func:`stats` reports the counters and the process's
memory (from ``/proc/self/status``) for ``GET /stats``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any


class WorkerPool:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._slots = asyncio.Semaphore(workers) if workers else None
        self.busy = 0  # requests holding a worker
        self.queued = 0  # requests waiting for one
        self.served = 0
        self.max_queued = 0

    @asynccontextmanager
    async def worker(self) -> AsyncIterator[float]:
        """Hold a worker for the block; yields the seconds spent waiting for it."""
        start = time.monotonic()
        if self._slots is not None:
            self.queued += 1
            self.max_queued = max(self.max_queued, self.queued)
            try:
                await self._slots.acquire()
            finally:
                self.queued -= 1
        self.busy += 1
        try:
            yield time.monotonic() - start
        finally:
            self.busy -= 1
            self.served += 1
            if self._slots is not None:
                self._slots.release()

    def stats(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "busy": self.busy,
            "queued": self.queued,
            "max_queued": self.max_queued,
            "served": self.served,
            **memory_kib(),
        }


def memory_kib() -> dict[str, int]:
    """``rss_kib`` (resident now) and ``peak_rss_kib`` of this process; empty off Linux."""
    out: dict[str, int] = {}
    with suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "VmRSS":
                out["rss_kib"] = int(value.split()[0])
            elif key == "VmHWM":
                out["peak_rss_kib"] = int(value.split()[0])
    return out
