"""The SDS server: the workload certificate and trust bundle, served to Envoy on a Unix socket.

Serves `envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets` (State of the
World; https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol) on grpc.aio,
two secrets named as Istio names them (`plait.model.identity`):

- `default` — a `tls_certificate`: the chain (leaf first) and the private key;
- `ROOTCA`  — a `validation_context`: the trust bundle as `trusted_ca`.

Envoy opens one stream per SDS secret config it uses (each names the secret it wants in
`resource_names`), so several streams are open at once; an empty `resource_names` gets
both secrets. Each response's `version_info` is a digest of what it carries, and its
nonce is new per response. Requests are read by the xDS subscription state machine
the control plane's ADS uses (`plait.xdsproto.subscription`): one that echoes the last
nonce is an ACK (or a NACK if it carries `error_detail`, logged and kept in
`last_nack`; the secret is not re-sent until it changes); the first request of a stream,
and any request that changes the names, is answered, even when its nonce is stale
(envoyproxy/envoy#10363); anything else (a stale nonce with the same names, a repeat)
changes nothing. When the certificate source publishes a change, every open stream whose
content changed gets a new version.

Security: the socket is the only thing guarding the private key in transit, so its
directory is created 0700 and the socket is chmod 0600 right after gRPC binds it. A
stale socket from a previous run is removed first (anything else at that path is an
error, never deleted); the socket is removed on `stop()`.

Concurrency: per stream, a task group holds a reader task that queues requests; the
certificate source's callback queues a wake-up; the handler takes items off that queue
one at a time, so responses on one stream never interleave. The reader's end (the client
half-closed) ends the handler; a failure of the reader ends it with that error. When the
client goes away gRPC cancels the handler; the task group cancels the reader and the
subscription is dropped with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import stat
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from plait.agent.identity import WorkloadCertificate
from plait.model.identity import CERT_SECRET, ROOT_SECRET
from plait.xdsproto.subscription import Request, RequestKind, Subscription

log = logging.getLogger(__name__)

SDS_SERVICE = "envoy.service.secret.v3.SecretDiscoveryService"
SDS_METHOD = "StreamSecrets"
SECRET_TYPE_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
SECRET_NAMES = (CERT_SECRET, ROOT_SECRET)


class SecretSource(Protocol):
    """What the SDS server reads: the current certificate and its changes."""

    @property
    def current(self) -> WorkloadCertificate | None: ...

    def subscribe(self, callback: Callable[[WorkloadCertificate], None]) -> Callable[[], None]: ...


def build_secret(name: str, cert: WorkloadCertificate) -> secret_pb2.Secret | None:
    """The secret called `name` made from `cert`, or None for a name plait does not serve."""
    if name == CERT_SECRET:
        return secret_pb2.Secret(
            name=name,
            tls_certificate=common_pb2.TlsCertificate(
                certificate_chain=base_pb2.DataSource(inline_bytes=b"".join(cert.chain_pem)),
                private_key=base_pb2.DataSource(inline_bytes=cert.key_pem),
            ),
        )
    if name == ROOT_SECRET:
        return secret_pb2.Secret(
            name=name,
            validation_context=common_pb2.CertificateValidationContext(
                trusted_ca=base_pb2.DataSource(inline_bytes=b"".join(cert.bundle_pem))
            ),
        )
    return None


def build_response(
    cert: WorkloadCertificate, names: Iterable[str], nonce: str
) -> discovery_pb2.DiscoveryResponse:
    """The DiscoveryResponse for the requested secret names (none named: every secret).

    Names plait does not serve are left out (Envoy then waits for them, as xDS intends
    for a resource the server does not have). `version_info` digests the content, so an
    unchanged secret keeps its version across renewals of the other one.
    """
    wanted = sorted(set(names)) or list(SECRET_NAMES)
    digest = hashlib.sha256()
    resources = []
    for name in wanted:
        secret = build_secret(name, cert)
        if secret is None:
            log.debug("SDS: no secret named %r", name)
            continue
        packed = any_pb2.Any()
        packed.Pack(secret)
        resources.append(packed)
        digest.update(packed.SerializeToString(deterministic=True))
    return discovery_pb2.DiscoveryResponse(
        version_info=digest.hexdigest()[:16],
        resources=resources,
        type_url=SECRET_TYPE_URL,
        nonce=nonce,
    )


@dataclass
class _StreamState:
    sub: Subscription = field(default_factory=Subscription)  # named secrets, not wildcard
    pending: bool = False  # a request is waiting for the first certificate

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.sub.subscribed))


_WAKE = object()
_END = object()


class SdsServer:
    """Serves secrets from a `SecretSource` to any number of Envoy streams."""

    def __init__(self, source: SecretSource, socket_path: Path | str) -> None:
        self.source = source
        self.socket_path = Path(socket_path)
        self.open_streams = 0
        self.acks = 0
        self.last_nack: str | None = None
        self._nonces = itertools.count(1)
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        """The gRPC target of this server (`unix:/path`)."""
        return f"unix:{self.socket_path}"

    async def start(self) -> None:
        """Bind the socket (0600, in a 0700 directory) and start serving."""
        _prepare_socket_path(self.socket_path)
        server = grpc.aio.server()
        method = grpc.stream_stream_rpc_method_handler(
            self._stream,
            request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
            response_serializer=discovery_pb2.DiscoveryResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SDS_SERVICE, {SDS_METHOD: method}),)
        )
        try:
            server.add_insecure_port(self.address)
            os.chmod(self.socket_path, 0o600)
            await server.start()
        except BaseException:
            await server.stop(None)
            self.socket_path.unlink(missing_ok=True)
            raise
        self._server = server
        log.info("SDS server listening on %s", self.address)

    async def stop(self, grace: float | None = 0.5) -> None:
        """End every stream, stop serving and remove the socket; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
            self.socket_path.unlink(missing_ok=True)

    async def _stream(self, requests: AsyncIterator[Any], context: Any) -> None:
        """StreamSecrets (reader/writer style)."""
        queue: asyncio.Queue[object] = asyncio.Queue()
        unsubscribe = self.source.subscribe(lambda _cert: queue.put_nowait(_WAKE))
        state = _StreamState()
        self.open_streams += 1
        try:
            async with asyncio.TaskGroup() as tg:
                reader = tg.create_task(_read(requests, queue), name="sds-read")
                while (item := await queue.get()) is not _END:
                    if item is _WAKE:
                        await self._on_change(state, context)
                    else:
                        await self._on_request(state, item, context)
                reader.cancel()
        finally:
            self.open_streams -= 1
            unsubscribe()

    async def _on_request(self, state: _StreamState, req: Any, context: Any) -> None:
        if req.type_url and req.type_url != SECRET_TYPE_URL:
            log.warning("SDS: request for unexpected type %s ignored", req.type_url)
            return
        error = req.error_detail.message if req.HasField("error_detail") else None
        request = Request(
            SECRET_TYPE_URL,
            req.version_info,
            req.response_nonce,
            tuple(req.resource_names),
            error,
        )
        kind = state.sub.on_request(request, datetime.now(UTC))
        if kind is RequestKind.NACK:
            self.last_nack = error
            log.warning(
                "Envoy rejected SDS secrets %s version %s: %s",
                list(state.names) or "all", state.sub.sent_version, error,
            )  # fmt: skip
        elif kind is RequestKind.ACK:
            self.acks += 1
        elif kind is RequestKind.STALE:
            log.debug("SDS: stale nonce %r (latest %r)", req.response_nonce, state.sub.sent_nonce)
        if state.sub.resubscribed:
            await self._send(state, context)

    async def _on_change(self, state: _StreamState, context: Any) -> None:
        if not state.sub.requested:
            return  # no request yet: nothing to answer
        cert = self.source.current
        if cert is None:
            return
        if state.pending or build_response(cert, state.names, "").version_info != (
            state.sub.sent_version
        ):
            await self._send(state, context)

    async def _send(self, state: _StreamState, context: Any) -> None:
        cert = self.source.current
        if cert is None:
            state.pending = True  # answered on the first certificate
            return
        response = build_response(cert, state.names, str(next(self._nonces)))
        state.sub.record_sent(response.version_info, response.nonce)
        state.pending = False
        await context.write(response)


async def _read(requests: AsyncIterator[Any], queue: asyncio.Queue[object]) -> None:
    try:
        async for req in requests:
            queue.put_nowait(req)
    finally:
        queue.put_nowait(_END)


def _prepare_socket_path(path: Path) -> None:
    """Make the parent directory (0700 if new) and remove a stale socket at `path`."""
    if len(str(path).encode()) > 100:
        raise ValueError(f"Unix socket path {path} is too long (keep it under 100 bytes)")
    parent = path.parent
    if not parent.exists():
        parent.mkdir(parents=True, mode=0o700)
        os.chmod(parent, 0o700)  # mkdir's mode is subject to the umask
    # Whoever can write the directory can swap the socket and hand Envoy their own
    # certificate and trust bundle: it must be ours and private.
    info = parent.lstat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise PermissionError(
            f"{parent} must be a directory owned by this user with mode 0700 (it is "
            f"uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o}): another user could "
            "replace the SDS socket in it; remove it or use another directory"
        )
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{path} exists and is not a socket; refusing to replace it")
    path.unlink()
