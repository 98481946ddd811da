"""Small structured-concurrency helpers shared by the long-running parts of plait.

Every background task plait starts lives in an `asyncio.TaskGroup` whose owner sees its
failure. Two shapes recur:

- a loop that must survive its own failures (a source, the token re-minter): `retry`
  runs it, logs each failure, reports it to the owner (who shows it in `plait status`)
  and runs it again after an exponential backoff that resets once a run stayed up for a
  while; it never gives up silently;
- a group that runs until asked to stop: `until(stop)` is a child that raises `Stopped`
  once `stop` is set, which cancels the group's other children; the owner catches it
  with `except* Stopped`.

Cancellation is the shutdown path everywhere: nothing here swallows `CancelledError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn

log = logging.getLogger(__name__)


class Stopped(Exception):  # noqa: N818 - a signal, not an error
    """Raised by `until` to end a task group on request."""


async def until(stop: asyncio.Event) -> NoReturn:
    """A child of a task group that ends the group (raising `Stopped`) once `stop` is set."""
    await stop.wait()
    raise Stopped


@dataclass(frozen=True)
class Backoff:
    """Delays between retries: `first`, doubling up to `most`; back to `first` after a
    run that lasted `stable` seconds (a failure then is a new problem, not a crash loop)."""

    first: float = 0.5
    most: float = 30.0
    stable: float = 60.0

    def next(self, previous: float | None, ran_for: float) -> float:
        if previous is None or ran_for >= self.stable:
            return self.first
        return min(previous * 2, self.most)


BACKOFF = Backoff()

Report = Callable[[str], None]
"""How a retried task tells its owner about a failure (the owner clears it on progress)."""


async def retry(
    name: str,
    run: Callable[[], Awaitable[None]],
    report: Report,
    backoff: Backoff = BACKOFF,
) -> None:
    """Run `run()` until it returns; after each exception log it, `report` it and run it
    again after a backoff. Cancellation ends it at once."""
    loop = asyncio.get_running_loop()
    delay: float | None = None
    while True:
        started = loop.time()
        try:
            await run()
            return
        except Exception as exc:  # noqa: BLE001 - the owner must see every failure
            delay = backoff.next(delay, loop.time() - started)
            log.exception("%s failed; retrying in %.1fs", name, delay)
            report(f"{type(exc).__name__}: {exc} (retrying every {delay:.1f}s at most)")
        await asyncio.sleep(delay)
