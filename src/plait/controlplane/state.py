"""MeshState: the current snapshot, served to the xDS server as its ConfigSource.

Single event loop, no locks: `publish` makes the new Translator from the previous one
(it takes over what did not change), has it translate for every known proxy in a worker
thread (nothing else sees it until then, and the event loop keeps serving the streams),
then swaps it in and bumps the generation. In the same worker thread it compares, for
every proxy a stream waits on, the new config with the one that proxy's stream was last
given (`config_for`): only the streams of proxies whose config versions differ are woken
(`plait.xds.wakeups`), so a Sidecar-scoped edit or an endpoint change few proxies reach
costs nothing on the other streams. Waiters wait on `asyncio.Event`s replaced at each
generation, so all wake in the same loop iteration (with a Condition they woke one after
another, each re-taking its lock in turn). A translation failure for one proxy is
recorded and that proxy keeps the last config it was given, so one bad resource never
takes the rest of the mesh down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager

from plait.model.proxy import Proxy
from plait.model.snapshot import MeshSnapshot
from plait.translate.proxy import Built, Translator
from plait.translate.resource import ProxyConfig
from plait.xds.wakeups import Wakeups, unchanged_ids

log = logging.getLogger(__name__)


class MeshState:
    def __init__(self, snapshot: MeshSnapshot) -> None:
        self._wakeups = Wakeups()
        self._translator = Translator(snapshot)
        self._publishing = asyncio.Lock()  # one at a time: a newer snapshot is never undone
        # by node id: the config `config_for` gave last (or `publish` compared), the Proxy
        # it was made for, and the generation it is of
        self._last_config: dict[str, tuple[Proxy, ProxyConfig, int]] = {}
        self.translation_errors: dict[str, str] = {}

    @property
    def generation(self) -> int:
        return self._wakeups.generation

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
            watched = self._wakeups.watched()
            # only the current generation's config of a proxy tells what its streams hold
            # (an older one, of a stream gone, may not), so each publish records the next
            generation = self.generation
            before = {}
            for node_id, proxy in watched.items():
                last = self._last_config.get(node_id)
                if (
                    last is not None
                    and last[2] == generation
                    and (last[0] is proxy or last[0] == proxy)
                ):
                    before[node_id] = last[1]
            fresh: dict[str, ProxyConfig] = {}
            unchanged = await asyncio.to_thread(self._translate, translator, watched, before, fresh)
            self._translator = translator
            # a proxy whose translation failed is woken: its stream clears the error
            generation = self._wakeups.advance(unchanged - self.translation_errors.keys())
            for node_id, config in fresh.items():
                self._last_config[node_id] = (watched[node_id], config, generation)
            return generation

    @staticmethod
    def _translate(
        translator: Translator,
        watched: dict[str, Proxy],
        before: dict[str, ProxyConfig],
        fresh: dict[str, ProxyConfig],
    ) -> set[str]:
        """Warm `translator`; the node ids of `watched` whose config is as `before` (and
        every watched proxy's new config in `fresh`)."""
        translator.warm()
        return unchanged_ids(watched, before, translator.config_for, fresh)

    def config_for(self, proxy: Proxy) -> ProxyConfig:
        try:
            config = self._translator.config_for(proxy)
        except Exception as exc:  # noqa: BLE001 - a translator bug must not kill the stream
            log.exception("translation failed for %s", proxy.id)
            self.translation_errors[proxy.id] = f"{type(exc).__name__}: {exc}"
            previous = self._last_config.get(proxy.id)
            if previous is None:
                raise
            return previous[1]
        self.translation_errors.pop(proxy.id, None)
        self._last_config[proxy.id] = (proxy, config, self.generation)
        return config

    async def wait_for_generation(self, after: int) -> int:
        return await self._wakeups.wait_for_generation(after)

    def on_change(
        self, proxy: Proxy, after: int, wake: Callable[[int], None]
    ) -> AbstractContextManager[None]:
        return self._wakeups.on_change(proxy, after, wake)

    def unchanged_through(self, proxy: Proxy, generation: int) -> int:
        return self._wakeups.unchanged_through(proxy, generation)
