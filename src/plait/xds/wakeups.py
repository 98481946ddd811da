"""Per-proxy wake-ups: a new generation wakes only the streams whose proxy it changed.

A `ConfigSource` bumps its generation for every new mesh snapshot, but most snapshots
change the configuration of a few proxies only (a Sidecar-scoped edit, an endpoint of a
service few proxies reach). Waking every stream for every generation cost ~1,000 task
wake-ups, config look-ups and plans per change at 1,000 proxies (`docs/benchmarks.md`,
"Per-stream work"). `Wakeups` keeps, per watched node id, the generation at which its
configuration last changed; the source tells it which watched proxies a new generation
left unchanged (`unchanged_ids`: their configuration versions are all equal) and only the
others' streams are woken.

A stream that is not woken still counts as synced at the new generation
(`unchanged_through`): its proxy runs that generation's configuration already.

Rules that keep it correct:

* A proxy the source did not compare (a stream that started waiting while the new
  translation was running, a translation that failed) counts as changed.
* A watch starts as changed at the current generation, so a stream that knows only an
  older generation is woken at once. It lives while a stream of the proxy is open, and
  remembers the last generations that changed the proxy's config, so that
  `unchanged_through` never goes back.
* Two streams of one node id with different `Proxy` objects (a reconnect with new
  metadata, the old stream not gone yet) share one watch that always wakes.

A stream's pusher is woken by a callback (`on_change`), called inside `advance`, rather
than by a watcher task of its own: one task switch per stream and change saved (at 1,000
streams, ~1,000 task steps per endpoint change).

Single event loop, no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from plait.model.proxy import Proxy
from plait.translate.resource import ProxyConfig

ConfigFor: TypeAlias = Callable[[Proxy], ProxyConfig]
Wake: TypeAlias = Callable[[int], None]
log = logging.getLogger(__name__)


def same_config(old: ProxyConfig | None, new: ProxyConfig) -> bool:
    """`new` gives a proxy holding `old` nothing to do: the same versions of every type."""
    return old is new or (old is not None and old.versions == new.versions)


_HISTORY = 16  # generations that changed a watched proxy, remembered per watch


@dataclass
class _Watch:
    proxy: Proxy | None  # None: several different Proxy objects share the node id
    changes: list[int]  # generations that changed the config, ascending (the first: since)
    wakes: list[Wake] = field(default_factory=list)  # one per stream (`Wakeups.on_change`)

    @property
    def changed_at(self) -> int:
        return self.changes[-1]


class Wakeups:
    """The generation counter of a source, and who waits for which proxy's changes."""

    def __init__(self) -> None:
        self.generation = 1
        self._all = asyncio.Event()  # set (and replaced) at every generation
        self._watches: dict[str, _Watch] = {}

    def watched(self) -> dict[str, Proxy]:
        """The proxies whose streams wait, by node id (those a source should compare)."""
        return {i: w.proxy for i, w in self._watches.items() if w.proxy is not None}

    def advance(self, unchanged_ids: Collection[str] = ()) -> int:
        """Bump the generation; wake the waiters of every proxy not in `unchanged_ids`."""
        self.generation += 1
        for node_id, watch in self._watches.items():
            if node_id in unchanged_ids and watch.proxy is not None:
                continue
            watch.changes.append(self.generation)
            del watch.changes[:-_HISTORY]
            for wake in tuple(watch.wakes):
                try:
                    wake(self.generation)
                except Exception:  # a stream's callback must not stop the others' wake-ups
                    log.exception("wake-up of %s failed", node_id)
        self._all.set()
        self._all = asyncio.Event()
        return self.generation

    async def wait_for_generation(self, after: int) -> int:
        while self.generation <= after:
            await self._all.wait()
        return self.generation

    @contextlib.contextmanager
    def on_change(self, proxy: Proxy, after: int, wake: Wake) -> Iterator[None]:
        """Within the block, `wake(generation)` for every generation newer than `after`
        that changes `proxy`'s config (at once if one did already). It is called inside
        `advance`, so it must be quick: a stream sets its pusher's flag."""
        watch = self._watches.get(proxy.id)
        if watch is None:
            watch = self._watches[proxy.id] = _Watch(proxy, [self.generation])
        elif watch.proxy is not proxy and watch.proxy != proxy:
            watch.proxy = None
        watch.wakes.append(wake)
        try:
            if watch.changed_at > after:
                wake(self.generation)
            yield
        finally:
            watch.wakes.remove(wake)
            if not watch.wakes and self._watches.get(proxy.id) is watch:
                del self._watches[proxy.id]

    def unchanged_through(self, proxy: Proxy, generation: int) -> int:
        """The newest generation whose config for `proxy` is the one of `generation`, as
        far as known (`generation` itself unless a stream of the proxy waits). It does
        not go back when a later generation changes the config."""
        watch = self._watches.get(proxy.id)
        if watch is None or generation < watch.changes[0]:
            return generation
        for changed in watch.changes:
            if changed > generation:
                return changed - 1
        return self.generation


def unchanged_ids(
    watched: Mapping[str, Proxy],
    before: Mapping[str, ProxyConfig],
    config_for: ConfigFor,
    fresh: dict[str, ProxyConfig] | None = None,
) -> set[str]:
    """The node ids of `watched` whose config `config_for` gives the same as `before`
    (a proxy whose translation fails counts as changed: its stream reports it); every
    watched proxy's new config is put in `fresh`, when given."""
    out = set()
    for node_id, proxy in watched.items():
        try:
            new = config_for(proxy)
        except Exception:  # noqa: BLE001, S112 - the stream's own config_for reports it
            continue
        if fresh is not None:
            fresh[node_id] = new
        old = before.get(node_id)
        if old is not None and same_config(old, new):
            out.add(node_id)
    return out
