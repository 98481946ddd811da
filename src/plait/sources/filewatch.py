"""File change notifications for the file-based sources (watchfiles, i.e. inotify).

watchfiles groups a burst: it yields once no change has arrived for `STEP_MS`, at most
`MAX_MS` after the first.

Only the directories a source reads are watched, each non-recursively: the mesh
directory's hidden `.plait/` holds the run's logs, which every proxy and app appends to
per request, and a recursive watch made the sources wake for each of those writes (about
0.02 cores at 1,000 log lines/s, for nothing). The set of directories is computed again
after every batch; when it changes (a directory was made or removed), watching restarts
on the new set.

A source reads its files, then starts watching: a change in between would be missed. So
`changes` yields one empty set as soon as the watcher runs (its first `WAKE_MS` timeout),
also after every restart, and the source reads again then (and emits only if something
differs).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import watchfiles

STEP_MS = 30
MAX_MS = 300
WAKE_MS = 200

Dirs = Callable[[], frozenset[Path]]


def visible_tree(root: Path) -> Dirs:
    """`root` and every directory below it that is not hidden (what a config source reads)."""

    def dirs() -> frozenset[Path]:
        out = {root}
        for top, names, _ in os.walk(root):
            names[:] = [n for n in names if not n.startswith(".")]
            out.update(Path(top) / n for n in names)
        return frozenset(out)

    return dirs


def one_below(root: Path, name: str) -> Dirs:
    """`root` (to see `name` appear) and `root/name` once it exists."""

    def dirs() -> frozenset[Path]:
        below = root / name
        return frozenset({root, below} if below.is_dir() else {root})

    return dirs


async def changes(dirs: Dirs, wanted: Callable[[str], bool]) -> AsyncIterator[set[str]]:
    """An empty set once watching has begun, then the paths in `dirs()` that `wanted`
    accepts (and directories made or removed there), one set per burst of changes."""
    while True:
        watching = dirs()
        started = False

        def relevant(
            _change: watchfiles.Change, path: str, watching: frozenset[Path] = watching
        ) -> bool:
            return wanted(path) or Path(path) in watching or os.path.isdir(path)

        async for batch in watchfiles.awatch(
            *watching,
            recursive=False,
            step=STEP_MS,
            debounce=MAX_MS,
            rust_timeout=WAKE_MS,
            yield_on_timeout=True,
            watch_filter=relevant,
        ):
            paths = {path for _, path in batch}
            found = {p for p in paths if wanted(p)}
            if found or not started:
                started = True
                yield found
            if paths - found and dirs() != watching:
                break  # a directory came or went: watch the new set
