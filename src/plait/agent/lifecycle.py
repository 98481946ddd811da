"""`async with` for parts that start and stop: start on entry, stop on the way out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self


class StartStop(ABC):
    """`async with part:` runs `start()`, then `stop()` however the block ends. As with any
    `async with`, a `start()` that raises gets no `stop()`: it cleans up after itself."""

    @abstractmethod
    async def start(self) -> object: ...

    @abstractmethod
    async def stop(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
