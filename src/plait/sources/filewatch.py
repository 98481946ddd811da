"""File change notifications for the file-based sources (watchfiles, i.e. inotify).

watchfiles groups a burst: it yields once no change has arrived for `STEP_MS`, at most
`MAX_MS` after the first.

A source reads its files, then starts watching: a change in between would be missed. So
`changes` yields one empty set as soon as the watcher runs (its first `WAKE_MS` timeout),
and the source reads again then (and emits only if something differs).
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
