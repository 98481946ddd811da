"""One ADS stream: its reader and pusher tasks, and its change wake-up.

Concurrency model (one event loop, no locks):

* the reader feeds each DiscoveryRequest to the `StreamState` (ACK, NACK, stale nonce,
  subscription) and wakes the pusher; while the pusher is idle with the current config,
  the reader plans itself (`_step`): nothing to send (an ACK, usually) needs no wake-up,
  and what the plan gives is queued for the pusher to write before it plans again;
* a generation that changed this proxy's configuration wakes the pusher, through the
  callback the stream registers with `ConfigSource.on_change` for its lifetime (the
  others do not wake the stream at all, `wakeups.py`); no task of its own;
* the pusher, on each wake, fetches the proxy's config for the *current* generation only
  (generations that arrived while it was writing are coalesced into one push), writes the
  planned responses in push order, and records the newest generation the proxy has fully
  ACKed.

Metrics: each response is counted (`XdsCounters.count_push`) with a `PushReason`, and
reported to the `XdsObserver` with its size and, when a new generation caused it, the time
since that generation appeared (`GenerationTimes`: the first time any stream of the server
saw it, within one event-loop turn of its publication). When the proxy has ACKed all of a
change, the time since the first generation of that change is reported as convergence.

Failure model: the tasks run in one task group. When the client half-closes, `run`
returns (status OK); when the client disconnects or the server stops, gRPC cancels the
handler and every task of the stream is cancelled with it; a failed write (or any failure
of a task) ends the stream with that error. `close()` ends the
stream with `ServerStoppingError`. Nothing is retried here: Envoy reconnects, and a new
stream starts from an empty state and re-sends the current configuration in push order
(so a cluster removed while the proxy was away is not removed make-before-break: the new
stream cannot know which clusters the proxy still runs). A NACK is logged and kept in the
state (see `stream.py`); the stream stays up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from plait.model.proxy import Proxy
from plait.translate.resource import ProxyConfig
from plait.translate.typeurls import ENDPOINT, PUSH_ORDER, SHORT_NAMES
from plait.xds.delta import DeltaStreamState, PlannedDelta
from plait.xds.requests import ReceivedRequest, shared_names
from plait.xds.source import ConfigSource
from plait.xds.status import (
    NoObserver,
    ProxyStatus,
    PushReason,
    TypeStatus,
    XdsCounters,
    XdsObserver,
)
from plait.xds.stream import StreamState
from plait.xds.typestate import PlannedResponse, Request, RequestKind
from plait.xdsproto.delta import DeltaRequest

log = logging.getLogger(__name__)

Write = Callable[[bytes], Awaitable[None]]
LARGE_RESPONSE = 64 * 1024  # bytes of resources: see `SessionDeps.large_writes`
SLOT_HOLD_S = 1.0


class StreamError(Exception):
    """A reason to end an ADS stream; `server.py` maps each to a gRPC status."""


class BadNodeError(StreamError):
    """The first request's node does not describe a plait proxy."""


class ServerStoppingError(StreamError):
    """The server is shutting down."""


class PermissionDeniedError(StreamError):
    """The caller's certificate identity may not receive this node's configuration.

    `identity` is what the certificate says (its URI SAN, or "" when it has none).
    """

    def __init__(self, message: str, *, identity: str = "") -> None:
        super().__init__(message)
        self.identity = identity


def utcnow() -> datetime:
    return datetime.now(UTC)


class Signal:
    """A wake-up flag one task waits on (`asyncio.Event` without the per-wait loop look-up:
    `Event.wait` asks `get_running_loop`, a `getpid` system call on CPython 3.11, and an
    endpoint change makes ~2,000 waits across 1,000 streams). Bound to the loop of its
    first wait."""

    __slots__ = ("_flag", "_loop", "_waiter")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flag = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        if not self._flag:
            self._flag = True
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._flag = False

    async def wait(self) -> None:
        """Return once set (at once if it is)."""
        if self._flag:
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None


class GenerationTimes:
    """When the server's streams first saw each source generation (monotonic seconds);
    the newest `keep` generations are remembered."""

    def __init__(self, keep: int = 64) -> None:
        self._seen: OrderedDict[int, float] = OrderedDict()
        self._keep = keep

    def seen(self, generation: int) -> float:
        """The first sighting of `generation`, recorded now if this is it."""
        at = self._seen.get(generation)
        if at is None:
            at = self._seen[generation] = time.monotonic()
            while len(self._seen) > self._keep:
                self._seen.popitem(last=False)
        return at


def change_reason(old: ProxyConfig, new: ProxyConfig) -> PushReason | None:
    """What a new generation changed for one proxy: None when nothing."""
    changed = {t for t in PUSH_ORDER if old.version(t) != new.version(t)}
    if not changed:
        return None
    return PushReason.ENDPOINT if changed == {ENDPOINT} else PushReason.CONFIG


@dataclass(frozen=True)
class SessionDeps:
    """What every session shares with the server."""

    source: ConfigSource
    counters: XdsCounters
    control_plane: bytes  # the framed control_plane field, see framing.control_plane
    delta_control_plane: bytes  # the same for delta responses (framing.delta_control_plane)
    on_sync_change: Callable[[], None]
    observer: XdsObserver = field(default_factory=NoObserver)
    generations: GenerationTimes = field(default_factory=GenerationTimes)
    # Large responses are framed and written a few streams at a time, so that a
    # reconnect storm (every proxy asking for everything at once) holds a bounded number
    # of full configurations in memory rather than one per stream.
    large_writes: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(16))


def to_request(received: ReceivedRequest | Any) -> Request:
    """A DiscoveryRequest (as `read_request` received it, or a protobuf) as the plain
    `Request` the state machine reads."""
    if isinstance(received, ReceivedRequest):
        msg, names = received.msg, received.names
    else:
        msg, names = received, shared_names(received.type_url, received.resource_names)
    error = msg.error_detail.message if msg.HasField("error_detail") else None
    return Request(
        type_url=msg.type_url,
        version_info=msg.version_info,
        response_nonce=msg.response_nonce,
        resource_names=names,
        error=error,
    )


def to_delta_request(msg: Any) -> DeltaRequest:
    """A DeltaDiscoveryRequest protobuf as the plain `DeltaRequest` the state machine reads."""
    error = msg.error_detail.message if msg.HasField("error_detail") else None
    return DeltaRequest(
        type_url=msg.type_url,
        response_nonce=msg.response_nonce,
        subscribe=tuple(msg.resource_names_subscribe),
        unsubscribe=tuple(msg.resource_names_unsubscribe),
        initial_versions=msg.initial_resource_versions,  # (a read-only Mapping: no copy)
        error=error,
    )


class Session:
    """The state and tasks of one stream from one proxy; `delta` picks the incremental
    protocol (DeltaAggregatedResources) over the State of the World."""

    def __init__(self, proxy: Proxy, deps: SessionDeps, *, delta: bool = False) -> None:
        self.proxy = proxy
        self.delta = delta
        self.state: StreamState | DeltaStreamState = DeltaStreamState() if delta else StreamState()
        self.connected_since = utcnow()
        self.disconnected_at: datetime | None = None
        self._synced_at: int | None = None  # the generation whose config was ACKed in full
        self.config: ProxyConfig | None = None
        self.config_generation: int | None = None
        self._deps = deps
        self._wake = Signal()
        self._idle = False  # the pusher waits for a wake with nothing queued
        self._queued: list[PlannedResponse] | list[PlannedDelta] = []
        self._closed = asyncio.Event()
        self._reason: PushReason | None = PushReason.NEW_CONNECTION  # until in sync
        self._change_seen: float | None = None  # when the unsettled change appeared

    @property
    def connected(self) -> bool:
        return self.disconnected_at is None

    @property
    def synced_generation(self) -> int | None:
        """The newest generation the proxy has fully ACKed: a generation that did not
        change its configuration (and so did not wake the stream) counts."""
        if self._synced_at is None:
            return None
        return self._deps.source.unchanged_through(self.proxy, self._synced_at)

    def close(self) -> None:
        """End the stream with ServerStoppingError."""
        self._closed.set()

    def receive(self, first: Any) -> None:
        """Take the stream's first request (before `run`)."""
        self._on_request(first)

    async def run(self, requests: AsyncIterator[Any], write: Write) -> None:
        """Serve the stream (its first request `receive`d) until the client half-closes."""
        name = self.proxy.id
        source = self._deps.source
        try:
            with source.on_change(self.proxy, source.generation, self._changed):
                async with asyncio.TaskGroup() as tg:
                    tasks = [
                        tg.create_task(self._read(requests), name=f"ads-read {name}"),
                        tg.create_task(self._closed.wait(), name=f"ads-close {name}"),
                        tg.create_task(self._push(write), name=f"ads-push {name}"),
                    ]
                    await asyncio.wait(tasks[:2], return_when=asyncio.FIRST_COMPLETED)
                    for task in tasks:  # the client half-closed, or `close()`: end the rest
                        task.cancel()
        except ExceptionGroup as group:  # the reader, watcher or pusher failed: its error
            raise group.exceptions[0]  # noqa: B904 (the group is the context)
        if self._closed.is_set():
            raise ServerStoppingError("control plane is shutting down")

    async def _read(self, requests: AsyncIterator[Any]) -> None:
        async for msg in requests:
            self._on_request(msg)

    def _on_request(self, msg: Any) -> None:
        req: Request | DeltaRequest
        if isinstance(self.state, DeltaStreamState):
            req = to_delta_request(msg)
            kind = self.state.on_request(req, utcnow())
        else:
            req = to_request(msg)
            kind = self.state.on_request(req, utcnow())
        counters = self._deps.counters
        if kind is RequestKind.IGNORED:
            log.debug("proxy %s: ignoring unserved type %s", self.proxy.id, req.type_url)
            return
        if kind is RequestKind.NACK:
            counters.count_nack(req.type_url)
            log.warning(
                "proxy %s NACKed %s (nonce %s): %s",
                self.proxy.id,
                SHORT_NAMES.get(req.type_url),
                req.response_nonce,
                req.error,
            )
        elif kind is RequestKind.ACK:
            counters.acks += 1
        elif kind is RequestKind.STALE:
            counters.stale_requests += 1
        if self._idle and not self._wake.is_set():
            self._step()
        else:
            self._wake.set()

    def _step(self) -> None:
        """The pusher's work for a request while it is idle, done here without waking it
        (an ACK usually leaves nothing to send: one task switch per stream and change
        saved). Only when the config it holds is current; what the plan gives is queued
        for the pusher, which writes it before planning again."""
        config, generation = self.config, self.config_generation
        if config is None or generation != self._deps.source.generation:
            self._wake.set()
            return
        state = self.state
        quiet = isinstance(state, DeltaStreamState) and state.quiet(config)
        planned = [] if quiet else state.plan(config)
        if planned:
            self._queued = planned
            self._idle = False
            self._wake.set()
        else:
            self._check_synced(config, generation)

    def _check_synced(self, config: ProxyConfig, generation: int) -> None:
        if self.state.settled(config) and self._synced_at != generation:
            self._synced_at = generation
            self._settled()
            self._deps.on_sync_change()

    def _changed(self, generation: int) -> None:
        """`generation` changed this proxy's config (`ConfigSource.on_change`)."""
        self._deps.generations.seen(generation)
        self._wake.set()

    async def _push(self, write: Write) -> None:
        deps = self._deps
        while True:
            if not self._wake.is_set():
                self._idle = True
                try:
                    await self._wake.wait()
                finally:
                    self._idle = False
            self._wake.clear()
            queued, self._queued = self._queued, []
            if queued:  # planned by `_step` (recorded as sent): written first, in order
                await self._write_all(queued, write, self.config_generation)
            generation = deps.source.generation  # read before config_for: never overstate
            if self.config is None or generation != self.config_generation:
                self.config = self._load(generation)
                self.config_generation = generation
            planned = self.state.plan(self.config)
            await self._write_all(planned, write, generation)
            # a delta response leaves its type unanswered: settled only at its ACK (`_step`)
            if not (planned and self.delta):
                self._check_synced(self.config, generation)

    async def _write_all(
        self,
        plan: list[PlannedResponse] | list[PlannedDelta],
        write: Write,
        generation: int | None,
    ) -> None:
        """Write planned responses in order, counting and reporting each."""
        if not plan:
            return
        deps = self._deps
        reason = self._reason or PushReason.REQUEST
        since = None
        if generation is not None and reason in (PushReason.CONFIG, PushReason.ENDPOINT):
            since = deps.generations.seen(generation)
        for planned in plan:
            size = await self._write(planned, write)
            deps.counters.count_push(planned.type_url, reason)
            removed = len(planned.removed) if isinstance(planned, PlannedDelta) else 0
            deps.counters.count_resources(planned.type_url, len(planned.resources), removed)
            seconds = None if since is None else time.monotonic() - since
            deps.observer.pushed(SHORT_NAMES[planned.type_url], size, seconds)

    async def _write(self, planned: PlannedResponse | PlannedDelta, write: Write) -> int:
        """Frame and write one response; its size. A large one is framed within one of
        the `large_writes` slots, held until the write completes or `SLOT_HOLD_S` passes
        (a client that does not read must not hold a slot for long)."""
        deps = self._deps
        control_plane = deps.delta_control_plane if self.delta else deps.control_plane
        if sum(len(r.body) for r in planned.resources) < LARGE_RESPONSE:
            data = planned.frame(control_plane)
            await write(data)
            return len(data)
        async with self._deps.large_writes:
            data = planned.frame(control_plane)
            writing = asyncio.ensure_future(write(data))
            try:
                await asyncio.wait([writing], timeout=SLOT_HOLD_S)
            except BaseException:
                writing.cancel()
                raise
        try:
            await writing
        finally:
            writing.cancel()  # when cancelled meanwhile (a no-op once done)
        return len(data)

    def _load(self, generation: int) -> ProxyConfig:
        """The config of `generation`; notes what changed for this proxy, and when (a
        config change outranks an endpoint change until the proxy is in sync)."""
        config = self._deps.source.config_for(self.proxy)
        reason = None if self.config is None else change_reason(self.config, config)
        if reason is not None:
            if self._reason is not PushReason.CONFIG:
                self._reason = reason
            if self._change_seen is None:
                self._change_seen = self._deps.generations.seen(generation)
        return config

    def _settled(self) -> None:
        """The proxy runs its whole config: report how long a change took to converge."""
        if self._change_seen is not None:
            self._deps.observer.converged(time.monotonic() - self._change_seen)
        self._reason, self._change_seen = None, None

    def status(self, config: ProxyConfig) -> ProxyStatus:
        """This stream's status against `config` (the proxy's current configuration)."""
        types = {}
        for type_url, ts in self.state.types.items():
            types[SHORT_NAMES[type_url]] = TypeStatus(
                state=ts.sync_state(config),
                latest_version=config.version(type_url),
                sent_version=ts.sent_version,
                acked_version=ts.acked_version,
                last_ack=ts.acked_at,
                nack=ts.nack.message if ts.nack is not None else None,
            )
        nacks = [ts.nack for ts in self.state.types.values() if ts.nack is not None]
        acks = [ts.acked_at for ts in self.state.types.values() if ts.acked_at is not None]
        return ProxyStatus(
            proxy=self.proxy,
            connected=self.connected,
            connected_since=self.connected_since,
            disconnected_at=self.disconnected_at,
            synced_generation=self.synced_generation,
            types=types,
            nack=max(nacks, key=lambda n: n.at).message if nacks else None,
            last_ack=max(acks) if acks else None,
        )
