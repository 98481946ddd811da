"""`plait up`'s background work while the mesh runs, in one task group: reconciling
replicas with the Deployments on every change of the mesh directory (its events come
from the same `MeshDirectorySource` the control plane uses) and re-minting tokens.

Each failure is logged, reported as a progress line and in the state file's `problems`
(so `plait status` shows it), and retried with backoff; none ends the loop silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from plait.aio import Backoff, Stopped, retry, until
from plait.local.identity import TOKEN_REFRESH_S, LocalIdentity
from plait.local.statefile import MeshState, write_state
from plait.sources.directory import ConfigView
from plait.sources.events import ConfigChanged, SourceEvent
from plait.sources.meshdir import MeshDirectorySource

Progress = Callable[[str], None]
Reconcile = Callable[[ConfigView], Awaitable[None]]
log = logging.getLogger(__name__)

RECONCILE_BACKOFF = Backoff(first=1.0, most=30.0, stable=math.inf)
"""A failed reconcile is tried again (without a new edit) after 1 s, 2 s, … 30 s; the
delay starts again at 1 s after one succeeds."""
TOKEN_RETRY_S = 60.0
"""After a failed re-mint, the next try comes this soon rather than an hour later."""


class Problems:
    """What each background task last failed with, kept in the state file."""

    def __init__(self, root: Path, state: MeshState) -> None:
        self.root = root
        self.state = state

    def set(self, task: str, message: str | None) -> None:
        """Record (or clear) what a background task failed with; `plait status` shows it."""
        if self.state.problems.get(task) == message:
            return
        if message is None:
            self.state.problems.pop(task, None)
        else:
            self.state.problems[task] = message
        with contextlib.suppress(OSError):
            write_state(self.root, self.state)

    def reporter(self, task: str) -> Callable[[str], None]:
        return lambda message: self.set(task, message)


async def watch(
    stop: asyncio.Event,
    directory: MeshDirectorySource,
    reconcile: Reconcile,
    identity: LocalIdentity,
    problems: Problems,
    progress: Progress,
) -> None:
    """Until `stop`: reconcile on every directory change, and re-mint tokens.

    Cancelling it abandons a reconcile in flight (the mesh's `stop()` ends what it began).
    """
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                reconcile_loop(directory, reconcile, problems, progress), name="reconcile"
            )
            tg.create_task(refresh_tokens(identity, problems, progress), name="token re-minting")
            tg.create_task(until(stop), name="until stopped")
    except* Stopped:
        pass


async def reconcile_loop(
    directory: MeshDirectorySource, reconcile: Reconcile, problems: Problems, progress: Progress
) -> None:
    """Reconcile with the newest config view; a failure is reported and retried with
    backoff (a new edit retries at once)."""
    latest: ConfigView | None = None
    changed = asyncio.Event()

    def emit(event: SourceEvent) -> None:
        nonlocal latest
        if isinstance(event, ConfigChanged):
            latest = event.view
            changed.set()
            problems.set("directory", None)  # it runs (again)

    ready = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(
            retry(
                "mesh directory",
                lambda: directory.run(emit, ready),
                problems.reporter("directory"),
            ),
            name="mesh directory",
        )
        delay: float | None = None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await changed.wait()
            changed.clear()
            if latest is None:
                continue
            began = time.monotonic()
            try:
                await reconcile(latest)
            except Exception as exc:  # noqa: BLE001 - reported, retried; never a silent end
                delay = RECONCILE_BACKOFF.next(delay, time.monotonic() - began)
                log.exception("reconcile failed")
                progress(f"error: {exc} (trying again in {delay:.0f}s)")
                problems.set("replicas", f"{type(exc).__name__}: {exc}")
                continue
            delay = None
            problems.set("replicas", None)


async def refresh_tokens(identity: LocalIdentity, problems: Problems, progress: Progress) -> None:
    """Re-mint every replica's token before it expires (agents read it per request).
    A failure (a full disk) is reported and tried again within `TOKEN_RETRY_S`."""
    wait = TOKEN_REFRESH_S
    while True:
        await asyncio.sleep(wait)
        try:
            identity.refresh_tokens()
        except Exception as exc:  # noqa: BLE001 - tokens lapse in 24 h if this stops
            log.exception("cannot re-mint workload tokens")
            progress(f"error: cannot re-mint workload tokens: {exc}")
            problems.set("tokens", f"{type(exc).__name__}: {exc}")
            wait = min(TOKEN_RETRY_S, TOKEN_REFRESH_S)
            continue
        problems.set("tokens", None)
        wait = TOKEN_REFRESH_S
