"""The ADS gRPC server (State of the World and delta) on grpc.aio.

Serves `envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources`
(State of the World, `stream.py`) and `DeltaAggregatedResources` (incremental,
`delta.py`): the bootstrap asks for delta, and any client may speak either.
Each stream's first request must carry the Envoy node: its id and metadata (written by the
agent with `to_node_metadata`) become the `Proxy`; a stream without a usable node is
refused with INVALID_ARGUMENT and recorded in `rejections`. Started with `ServerTls`, the
port speaks mutual TLS and a node whose certificate identity does not back its metadata is
refused with PERMISSION_DENIED before any response (see `auth.py`), also recorded in
`rejections`. The stream is then served by a
`Session` (see `session.py` for its tasks and failure model, `stream.py` and `delta.py`
for the protocol rules).

Status codes are chosen in one place, `_status_for`: a bad node is INVALID_ARGUMENT,
an identity that may not have the node's configuration is PERMISSION_DENIED, shutdown is
UNAVAILABLE, anything unexpected (a failing `config_for`, a bug) is INTERNAL
and logged with its traceback; Envoy retries the stream with backoff in every case.

A client that disconnects is cancelled by gRPC; its proxy stays listed by `statuses()` as
disconnected for `disconnected_ttl` seconds. When the same node id connects again, the new
stream replaces the old in the status table. `stop()` ends every stream with UNAVAILABLE
so that Envoy reconnects elsewhere or later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
from google.protobuf import json_format

from plait.model.proxy import NodeMetadataError, Proxy, from_node_metadata
from plait.translate.resource import ProxyConfig
from plait.xds import framing
from plait.xds.auth import ServerTls, authorize, claimed_identity, peer_identity, server_credentials
from plait.xds.session import (
    BadNodeError,
    PermissionDeniedError,
    ServerStoppingError,
    Session,
    SessionDeps,
    StreamError,
    utcnow,
)
from plait.xds.source import EMPTY_CONFIG, ConfigSource
from plait.xds.status import NoObserver, ProxyStatus, XdsCounters, XdsObserver

log = logging.getLogger(__name__)

SERVER_OPTIONS = (("grpc.optimization_target", "throughput"),)
"""gRPC's channel argument for what the transport favours. An xDS server writes one
response to each of many streams at once (an endpoint change at 1,000 proxies: 1,000
writes). With `throughput`, gRPC's HTTP/2 transport may defer a write's `sendmsg` out of
the caller's thread; measured at 1,000 x 1,000 (`bench.run --only scale`, six runs
alternating with the default): the endpoint change's p99 was lower in 5 of the 6 pairs,
median 209 against 238 ms (`docs/benchmarks.md`)."""

_STATUS: dict[type[StreamError], grpc.StatusCode] = {
    BadNodeError: grpc.StatusCode.INVALID_ARGUMENT,
    PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    ServerStoppingError: grpc.StatusCode.UNAVAILABLE,
}


def _status_for(exc: Exception) -> grpc.StatusCode:
    """The one place where a reason to end a stream becomes a gRPC status code."""
    code = _STATUS.get(type(exc)) if isinstance(exc, StreamError) else None
    return code if code is not None else grpc.StatusCode.INTERNAL


@dataclass(frozen=True)
class Rejection:
    """A stream the server refused; `claimed` (from the node metadata) and `identity` (from
    the client certificate) are SPIFFE URIs, "" when unknown or TLS is off."""

    at: datetime
    peer: str
    node_id: str
    code: str
    message: str
    claimed: str = ""
    identity: str = ""


def proxy_from_request(first: Any) -> Proxy:
    """The Proxy described by a stream's first DiscoveryRequest; raises BadNodeError."""
    if not first.HasField("node") or not first.node.id:
        raise BadNodeError("the first DiscoveryRequest of a stream must carry node.id")
    metadata = json_format.MessageToDict(first.node.metadata)
    try:
        return from_node_metadata(first.node.id, metadata)
    except NodeMetadataError as exc:
        raise BadNodeError(f"node {first.node.id!r}: {exc}") from exc


class AdsServer:
    """Serves each connected proxy its configuration from a `ConfigSource`; reports its
    timings to `observer` (see `XdsObserver`) and counts in `counters`."""

    def __init__(
        self,
        source: ConfigSource,
        *,
        control_plane_id: str = "plait",
        disconnected_ttl: float = 600.0,
        observer: XdsObserver | None = None,
    ) -> None:
        self.source = source
        self.counters = XdsCounters()
        self.rejections: deque[Rejection] = deque(maxlen=100)
        self.disconnected_ttl = disconnected_ttl
        self._deps = SessionDeps(
            source,
            self.counters,
            framing.control_plane(control_plane_id),
            framing.delta_control_plane(control_plane_id),
            self._notify,
            observer=observer if observer is not None else NoObserver(),
        )
        self._sessions: dict[str, Session] = {}  # by node id: the latest stream of each
        self._active: set[Session] = set()
        self._disconnected_mono: dict[str, float] = {}
        self._sync_changed = asyncio.Event()
        self._server: grpc.aio.Server | None = None
        self._tls: ServerTls | None = None
        self.port: int | None = None  # the bound port once started

    async def start(self, host: str, port: int, *, tls: ServerTls | None = None) -> int:
        """Listen on host:port (0 = any free port) and return the bound port.

        Without `tls` the port is plaintext and every node is believed (tests, benchmarks);
        with it, mutual TLS and the checks of `auth.py`.
        """
        server = grpc.aio.server(options=SERVER_OPTIONS)
        server.add_generic_rpc_handlers((framing.ads_handler(self._sotw, self._delta),))
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if tls is None:
            bound: int = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, server_credentials(tls))
        self._tls = tls
        await server.start()
        self._server, self.port = server, bound
        log.info(
            "ADS server listening on %s (port %d, %s)",
            address,
            bound,
            "mutual TLS" if tls is not None else "plaintext",
        )
        return bound

    async def stop(self, grace: float) -> None:
        """End every stream with UNAVAILABLE, then stop gRPC within `grace` seconds."""
        for session in list(self._active):
            session.close()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    def statuses(self) -> list[ProxyStatus]:
        """Every connected proxy, and those disconnected less than `disconnected_ttl` ago."""
        self._prune()
        out = [s.status(self._current_config(s)) for s in self._sessions.values()]
        return sorted(out, key=lambda s: s.proxy.id)

    def config_of(self, node_id: str) -> ProxyConfig | None:
        """What the proxy `node_id` should have now (None: no such proxy is known)."""
        self._prune()
        session = self._sessions.get(node_id)
        return None if session is None else self._current_config(session)

    def _current_config(self, session: Session) -> ProxyConfig:
        """What the proxy should have now (status must work even if the source fails)."""
        generation = self.source.generation
        held = session.config_generation
        if session.config is not None and (
            not session.connected
            or held == generation
            # a generation that did not change its config did not wake it (`wakeups.py`):
            # its config is the current one (and the very mappings its state compares)
            or (
                held is not None
                and self.source.unchanged_through(session.proxy, held) >= generation
            )
        ):
            return session.config
        try:
            return self.source.config_for(session.proxy)
        except Exception:  # the stream itself reports the failure
            return session.config if session.config is not None else EMPTY_CONFIG

    async def wait_synced(self, generation: int, timeout: float, *, min_proxies: int = 0) -> bool:
        """Wait until every connected proxy (at least `min_proxies`) has fully ACKed
        `generation` or a newer one; False when `timeout` seconds pass first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        done: set[Session] = set()  # synced at `generation` or newer (that stays so)
        while not self._synced(generation, min_proxies, done):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            # a stream's ACK, or a new generation (one that changes no proxy's config
            # wakes no stream, yet every proxy synced before counts as synced at it)
            waits = {
                asyncio.ensure_future(self._sync_changed.wait()),
                asyncio.ensure_future(self.source.wait_for_generation(self.source.generation)),
            }
            try:
                await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
        return True

    def _synced(self, generation: int, min_proxies: int, done: set[Session]) -> bool:
        """Every active session has synced `generation`; those found so are added to
        `done` and not asked again (an ACK wakes the waiter: 1,000 sessions asked on
        each of 1,000 ACKs cost the event loop ~0.5 s per change)."""
        if len(self._active) < min_proxies:
            return False
        for s in self._active:
            if s in done:
                continue
            synced = s.synced_generation
            if synced is None or synced < generation:
                return False
            done.add(s)
        return True

    def _notify(self) -> None:
        self._sync_changed.set()
        self._sync_changed = asyncio.Event()

    def _prune(self) -> None:
        cutoff = time.monotonic() - self.disconnected_ttl
        for node_id, at in list(self._disconnected_mono.items()):
            if at < cutoff:
                del self._disconnected_mono[node_id]
                self._sessions.pop(node_id, None)

    async def _sotw(self, requests: Any, context: Any) -> None:
        """The StreamAggregatedResources handler (reader/writer style)."""
        await self._serve(requests, context, delta=False)

    async def _delta(self, requests: Any, context: Any) -> None:
        """The DeltaAggregatedResources handler (reader/writer style)."""
        await self._serve(requests, context, delta=True)

    async def _serve(self, requests: Any, context: Any, *, delta: bool) -> None:
        first = await anext(requests, None)
        if first is None:
            return
        first_msg = first if delta else first.msg  # (SotW: a `ReceivedRequest`)
        node_id = first_msg.node.id
        proxy: Proxy | None = None
        try:
            proxy = proxy_from_request(first_msg)
            self._authorize(proxy, context)
            session = Session(proxy, self._deps, delta=delta)
            self._connect(session)
            try:
                session.receive(first)
                # not kept for the stream's life: a delta client's first request carries
                # every version it holds (~230 KiB of parsed message for 1,000 clusters;
                # 1,000 reconnecting streams held ~230 MiB of them)
                del first, first_msg
                await session.run(requests, context.write)
            finally:
                self._disconnect(session)
        except Exception as exc:  # every way a stream ends with an error goes through here
            code = _status_for(exc)
            message = str(exc)
            if isinstance(exc, BadNodeError | PermissionDeniedError):
                self._reject(context.peer(), node_id, proxy, exc, code)
            elif not isinstance(exc, StreamError):
                log.exception("ADS stream from %s failed", context.peer())
                message = f"control plane error: {type(exc).__name__}: {exc}"
            await context.abort(code, message)

    def _authorize(self, proxy: Proxy, context: Any) -> None:
        """Raise PermissionDeniedError unless the TLS peer may be `proxy` (TLS only)."""
        if self._tls is None:
            return
        identity = peer_identity(context.auth_context())
        authorize(
            identity, proxy, trust_domain=self._tls.trust_domain, admission=self._tls.admission
        )

    def _reject(
        self,
        peer: str,
        node_id: str,
        proxy: Proxy | None,
        exc: StreamError,
        code: grpc.StatusCode,
    ) -> None:
        """Count, record and log a refused stream (certificates stay out of the log)."""
        claimed = ""
        if proxy is not None and self._tls is not None:
            claimed = claimed_identity(proxy, self._tls.trust_domain)
        identity = exc.identity if isinstance(exc, PermissionDeniedError) else ""
        self.counters.count_rejected(
            "permission_denied" if isinstance(exc, PermissionDeniedError) else "bad_node"
        )
        self.rejections.append(
            Rejection(utcnow(), peer, node_id, code.name, str(exc), claimed, identity)
        )
        log.warning(
            "refused ADS stream from %s (node %r, claims %s, certificate %s): %s",
            peer,
            node_id,
            claimed or "-",
            identity or "-",
            exc,
        )

    def _connect(self, session: Session) -> None:
        node_id = session.proxy.id
        self._prune()
        self.counters.streams_opened += 1
        self._sessions[node_id] = session
        self._disconnected_mono.pop(node_id, None)
        self._active.add(session)
        log.info("proxy %s connected", node_id)
        self._notify()

    def _disconnect(self, session: Session) -> None:
        node_id = session.proxy.id
        session.disconnected_at = utcnow()
        self._active.discard(session)
        if self._sessions.get(node_id) is session:
            self._disconnected_mono[node_id] = time.monotonic()
        log.info("proxy %s disconnected", node_id)
        self._notify()
