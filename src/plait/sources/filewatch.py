"""File change notifications for the file-based sources (watchfiles, i.e. inotify).

watchfiles groups a burst: it yields once no change has arrived for `STEP_MS`, at most
`MAX_MS` after the first. Its watcher runs in a thread that looks at a cancellation only
between waits, so each wait is bounded (`WAKE_MS`): cancelling a source ends it within
that time instead of the 5 s watchfiles would otherwise take.

A source reads its files, then starts watching: a change in between would be missed. So
`changes` yields one empty set as soon as the watcher runs, and the source reads again
then (and emits only if something differs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import watchfiles

STEP_MS = 30
MAX_MS = 300
WAKE_MS = 200


async def changes(root: Path, wanted: Callable[[str], bool]) -> AsyncIterator[set[str]]:
    """An empty set once watching has begun, then the paths below `root` that `wanted`
    accepts, one set per burst of changes."""
    started = False
    async for batch in watchfiles.awatch(
        root,
        step=STEP_MS,
        debounce=MAX_MS,
        rust_timeout=WAKE_MS,
        yield_on_timeout=True,
        watch_filter=lambda _change, path: wanted(path),
    ):
        if batch or not started:
            started = True
            yield {path for _, path in batch}
