"""The mesh directory as a source: YAML files → `ConfigChanged` events.

Loading (read, parse, validate each changed file) runs in a worker thread: for a large
mesh it takes a while, and ADS streams and `/status` keep answering meanwhile. Only this
source's task touches its `DirectorySource`, one load at a time. Last-good semantics are
`DirectorySource`'s: a file with errors keeps its resources' last good versions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from plait.api import LoadResult
from plait.sources import filewatch
from plait.sources.directory import ConfigView, DirectorySource, is_config_path
from plait.sources.events import ConfigChanged, Emit

NAME = "directory"


class MeshDirectorySource:
    def __init__(self, root: Path, check: Callable[[LoadResult], LoadResult] | None = None) -> None:
        self.root = root
        self.loader = DirectorySource(root, check=check)

    @property
    def name(self) -> str:
        return NAME

    def wants(self, path: str) -> bool:
        """A change to `path` means a reload (a YAML file below the root, not hidden)."""
        return is_config_path(path, self.root)

    async def load(self) -> ConfigView:
        return await asyncio.to_thread(self.loader.load)

    async def run(self, emit: Emit, ready: asyncio.Event) -> None:
        last = await self.load()
        emit(ConfigChanged(NAME, last))
        ready.set()
        async for paths in filewatch.changes(filewatch.visible_tree(self.root), self.wants):
            view = await self.load()
            if paths or view != last:  # the first, empty, set: only if it changed meanwhile
                emit(ConfigChanged(NAME, view))
            last = view
