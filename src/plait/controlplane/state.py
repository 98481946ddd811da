"""MeshState: the current snapshot, served to the xDS server as its ConfigSource.

Single event loop, no locks: `publish` makes the new Translator from the previous one
(it takes over what did not change), has it translate for every known proxy in a worker
thread (nothing else sees it until then, and the event loop keeps serving the streams),
then swaps it in and bumps the generation. Waiters (every stream's watcher) wait on an
`asyncio.Event` replaced at each generation, so all wake in the same loop iteration; with
a Condition they woke one after another, each re-taking its lock in turn, and the
thousandth stream started its push about a thousand loop iterations after the first. A
translation failure for one proxy is recorded and that proxy keeps the last config it
was given, so one bad resource never takes the rest of the mesh down.
"""

from __future__ import annotations

import asyncio
import logging

from plait.model.proxy import Proxy
from plait.model.snapshot import MeshSnapshot
from plait.translate.proxy import Built, Translator
from plait.translate.resource import ProxyConfig

log = logging.getLogger(__name__)


class MeshState:
    def __init__(self, snapshot: MeshSnapshot) -> None:
        self._generation = 1
        self._translator = Translator(snapshot)
        self._changed = asyncio.Event()  # set (and replaced) when the generation bumps
        self._publishing = asyncio.Lock()  # one at a time: a newer snapshot is never undone
        self._last_config: dict[str, ProxyConfig] = {}
        self.translation_errors: dict[str, str] = {}

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def snapshot(self) -> MeshSnapshot:
        return self._translator.snapshot

    @property
    def built(self) -> Built:
        """What the current snapshot's translation built itself (see `Translator`)."""
        return self._translator.built

    async def publish(self, snapshot: MeshSnapshot) -> int:
        async with self._publishing:
            translator = Translator(snapshot, previous=self._translator)
            await asyncio.to_thread(translator.warm)
            self._translator = translator
            self._generation += 1
            self._changed.set()
            self._changed = asyncio.Event()
        return self._generation

    def config_for(self, proxy: Proxy) -> ProxyConfig:
        try:
            config = self._translator.config_for(proxy)
        except Exception as exc:  # noqa: BLE001 - a translator bug must not kill the stream
            log.exception("translation failed for %s", proxy.id)
            self.translation_errors[proxy.id] = f"{type(exc).__name__}: {exc}"
            previous = self._last_config.get(proxy.id)
            if previous is None:
                raise
            return previous
        self.translation_errors.pop(proxy.id, None)
        self._last_config[proxy.id] = config
        return config

    async def wait_for_generation(self, after: int) -> int:
        while self._generation <= after:
            await self._changed.wait()
        return self._generation
