"""The pipeline: sources → debounce → store → snapshot build → publish.

Concurrency: one event loop. Each source runs as a child task (`start`), supervised by
`aio.retry`: a source that raises is logged, shown in `/status` (`problems`) and restarted
with backoff while the last good inputs stay in force. Sources `emit` level events into
`pending`, keyed, so a newer event replaces an unconsumed older one (bounded by the number
of keys; nothing is dropped that still matters). `run` waits for an event, then gathers
the burst (`Debounce`: until no event came for `step_s`, at most `max_s` after the first;
`endpoints_max_s` while the burst holds workload events only), applies it to the `Store`
and, if an input changed, builds the snapshot in a worker thread (parsing is done by the
sources; indexing and analysis of a large mesh still take a while) and publishes it. An
endpoint-only burst is built and translated on the fast path (`builder.py`: the endpoint
sets of the affected hosts, nothing else), and so is a burst that edits VirtualServices
and DestinationRules only (what reads them, for the proxies that read them). A build that raises keeps the last snapshot in
force and is shown in `/status` (`internal_error`) until a later build succeeds.

The pipeline knows neither files nor Kubernetes: a Kubernetes source plugs in as one more
`Source`, and tests drive it with an in-memory one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from plait.aio import Backoff, retry
from plait.model.registry import WorkloadInstance
from plait.model.snapshot import MeshSnapshot
from plait.sources.directory import ConfigView
from plait.sources.events import (
    ConfigChanged,
    JwksUrisDiscovered,
    Source,
    SourceEvent,
    WorkloadsChanged,
)

log = logging.getLogger(__name__)

EMPTY = ConfigView((), (), ())


@dataclass(frozen=True)
class Debounce:
    """Gather a burst of events: wait `step_s` after each, at most `max_s` in all, or
    `endpoints_max_s` while every event of the burst is a `WorkloadsChanged`.

    Like istiod with `PILOT_ENABLE_EDS_DEBOUNCE` on (its default), endpoint events are
    debounced too, with the same quiet period: replicas that start or stop together (a
    rollout step, a scale-up) are coalesced into one push. Their cap is shorter, 100 ms
    rather than 300: an endpoint-only change is cheap on the fast path (a few ms at 1,000
    services × 1,000 proxies, `docs/benchmarks.md`), while a replica that is gone but still
    in the proxies' endpoint sets fails requests, so under continuous churn (a large
    rollout) endpoints should not wait as long as a config burst may. A config event that
    joins the burst brings the `max_s` cap back (counted from the first event).
    """

    step_s: float = 0.01
    max_s: float = 0.3
    endpoints_max_s: float = 0.1


@dataclass
class Store:
    """The latest inputs of every source; what a snapshot is built from."""

    configs: dict[str, ConfigView] = field(default_factory=dict)
    workloads: dict[str, tuple[WorkloadInstance, ...]] = field(default_factory=dict)
    discovered: dict[str, Mapping[str, str]] = field(default_factory=dict)
    cluster_ip_sets: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def apply(self, event: SourceEvent) -> bool:
        """Take one event in; True if a snapshot input changed (errors are not inputs)."""
        if isinstance(event, ConfigChanged):
            changed = self.configs.get(event.source) is not event.view
            self.configs[event.source] = event.view
            return changed
        if isinstance(event, WorkloadsChanged):
            changed = self.workloads.get(event.source) != event.instances
            changed |= self.cluster_ip_sets.get(event.source, ()) != event.cluster_ips
            self.workloads[event.source] = event.instances
            self.cluster_ip_sets[event.source] = event.cluster_ips
            return changed
        if isinstance(event, JwksUrisDiscovered):
            changed = self.discovered.get(event.source) != event.jwks_uris
            self.discovered[event.source] = event.jwks_uris
            return changed
        if event.message is None:
            self.errors.pop(event.source, None)
        else:
            self.errors[event.source] = event.message
        return False

    @property
    def config(self) -> ConfigView:
        """Every source's config, merged (one source in local mode)."""
        views = list(self.configs.values())
        if len(views) == 1:
            return views[0]
        return ConfigView(
            tuple(r for v in views for r in v.resources),
            tuple(m for v in views for m in v.messages),
            tuple(k for v in views for k in v.kept),
        )

    @property
    def jwks_uris(self) -> dict[str, str]:
        """Every discovery source's issuer → `jwks_uri`, merged."""
        return {k: v for found in self.discovered.values() for k, v in found.items()}

    @property
    def instances(self) -> tuple[WorkloadInstance, ...]:
        return tuple(i for group in self.workloads.values() for i in group)

    @property
    def cluster_ips(self) -> dict[str, str]:
        """Every source's service cluster IPs, by hostname."""
        return {host: ip for group in self.cluster_ip_sets.values() for host, ip in group}


DEBOUNCE = Debounce()
BACKOFF = Backoff()

Build = Callable[[Store], MeshSnapshot]
"""Makes a snapshot from the store; runs in a worker thread, one build at a time."""

Publish = Callable[[MeshSnapshot], Awaitable[int]]


class Pipeline:
    def __init__(
        self,
        sources: Sequence[Source],
        build: Build,
        debounce: Debounce = DEBOUNCE,
        backoff: Backoff = BACKOFF,
    ) -> None:
        self.sources = tuple(sources)
        self.build = build
        self.debounce = debounce
        self.backoff = backoff
        self.store = Store()
        self.internal_error: str | None = None  # the last build's failure, if it failed
        self.problems: dict[str, str] = {}  # source name → why its task failed
        self.published = 0  # snapshots built and published by `run`
        self._pending: dict[tuple[str, str], SourceEvent] = {}
        self._wake = asyncio.Event()

    # -- what sources call --------------------------------------------------------------

    def emit(self, event: SourceEvent) -> None:
        self._pending[event.key] = event
        self.problems.pop(event.source, None)  # it runs again
        self._wake.set()

    # -- what the owner calls ---------------------------------------------------------

    async def start(self, tg: asyncio.TaskGroup) -> MeshSnapshot:
        """Start every source in `tg`; once each has emitted its initial state, build
        and return the first snapshot (then call `run` to keep publishing)."""
        readies = []
        for source in self.sources:
            ready = asyncio.Event()
            readies.append(ready)
            tg.create_task(self._supervise(source, ready), name=f"source {source.name}")
        for ready in readies:
            await ready.wait()
        self._take()
        return await asyncio.to_thread(self.build, self.store)

    async def run(self, publish: Publish) -> None:
        """Debounce, store, build, publish; forever (cancel it to stop)."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            start = loop.time()
            while True:
                self._wake.clear()
                deadline = start + self._cap()
                left = min(self.debounce.step_s, deadline - loop.time())
                if left <= 0:
                    break
                try:
                    async with asyncio.timeout(left):
                        await self._wake.wait()
                except TimeoutError:
                    break
            self._wake.clear()
            if not self._take():
                continue
            try:
                snapshot = await asyncio.to_thread(self.build, self.store)
            except Exception as exc:  # noqa: BLE001 - a bug here must not stop the mesh
                # Keep serving the last snapshot; status shows why nothing changed.
                log.exception("cannot build a snapshot; keeping the last one")
                self.internal_error = f"{type(exc).__name__}: {exc}"
                continue
            self.internal_error = None
            generation = await publish(snapshot)
            self.published += 1
            log.info("published generation %d", generation)

    # -- inside ----------------------------------------------------------------------

    def _cap(self) -> float:
        """How long the burst gathered so far may wait in all (see `Debounce`)."""
        if all(isinstance(e, WorkloadsChanged) for e in self._pending.values()):
            return self.debounce.endpoints_max_s
        return self.debounce.max_s

    def _take(self) -> bool:
        """Apply every pending event to the store; True if an input changed."""
        pending, self._pending = self._pending, {}
        changed = [self.store.apply(event) for event in pending.values()]
        return any(changed)

    async def _supervise(self, source: Source, ready: asyncio.Event) -> None:
        def report(message: str) -> None:
            self.problems[source.name] = message
            ready.set()  # a source that cannot start must not hold the mesh back

        await retry(
            f"source {source.name}",
            lambda: source.run(self.emit, ready),
            report,
            self.backoff,
        )
