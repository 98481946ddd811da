"""Where the ADS server gets configuration from: the `ConfigSource` protocol.

The server depends on this small protocol, not on the cache class (as go-control-plane's
server sees only `ConfigWatcher`). A source holds a monotonically increasing *generation*
that bumps on every new mesh snapshot; `config_for` answers "what should this proxy have
now" and must be pure (the real cache memoizes it per generation and shares `Resource`
objects between proxies). Debouncing bursts of changes is the source's job; the server
only coalesces generations that arrive while a push is in flight.

`StaticConfigSource` is the in-memory implementation used by tests and benchmarks.
Concurrency: it lives on one event loop; `set` is synchronous and wakes every
`wait_for_generation` waiter, and calls the `on_change` callbacks of the proxies whose
configuration it changed (`wakeups.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Protocol, TypeAlias

from plait.model.proxy import Proxy
from plait.translate.resource import ProxyConfig
from plait.xds.wakeups import Wakeups, unchanged_ids

EMPTY_CONFIG = ProxyConfig.of(())


class ConfigSource(Protocol):
    """What the ADS server needs from the configuration cache."""

    @property
    def generation(self) -> int:
        """Bumps on every new mesh snapshot."""
        ...

    def config_for(self, proxy: Proxy) -> ProxyConfig:
        """Everything `proxy` should have at the current generation; pure, may be memoized."""
        ...

    async def wait_for_generation(self, after: int) -> int:
        """Return the current generation as soon as it is greater than `after`."""
        ...

    def on_change(
        self, proxy: Proxy, after: int, wake: Callable[[int], None]
    ) -> AbstractContextManager[None]:
        """Within the block, `wake(generation)` (quick, in the publisher's call) for each
        generation greater than `after` that may have changed `proxy`'s configuration."""
        ...

    def unchanged_through(self, proxy: Proxy, generation: int) -> int:
        """The newest generation known to give `proxy` the configuration of `generation`."""
        ...


Configs: TypeAlias = Mapping[str, ProxyConfig] | Callable[[Proxy], ProxyConfig]


class StaticConfigSource:
    """An in-memory ConfigSource: configs by proxy id (or a function of the proxy).

    A proxy id missing from the mapping gets an empty configuration.
    """

    def __init__(self, configs: Configs | None = None) -> None:
        self._configs: Configs = configs if configs is not None else {}
        self._wakeups = Wakeups()

    @property
    def generation(self) -> int:
        return self._wakeups.generation

    def set(self, configs: Configs) -> int:
        """Replace every proxy's configuration; returns the new generation."""
        watched = self._wakeups.watched()
        before = {}
        for node_id, proxy in watched.items():
            try:
                before[node_id] = self.config_for(proxy)
            except Exception:  # noqa: BLE001, S112 - counts as changed
                continue
        self._configs = configs
        return self._wakeups.advance(unchanged_ids(watched, before, self.config_for))

    def config_for(self, proxy: Proxy) -> ProxyConfig:
        if callable(self._configs):
            return self._configs(proxy)
        return self._configs.get(proxy.id, EMPTY_CONFIG)

    async def wait_for_generation(self, after: int) -> int:
        return await self._wakeups.wait_for_generation(after)

    def on_change(
        self, proxy: Proxy, after: int, wake: Callable[[int], None]
    ) -> AbstractContextManager[None]:
        return self._wakeups.on_change(proxy, after, wake)

    def unchanged_through(self, proxy: Proxy, generation: int) -> int:
        return self._wakeups.unchanged_through(proxy, generation)
