"""The SDS server over a real Unix socket with a gRPC client: secrets per stream, ACK and
NACK, stale nonces, pushes on change, and the socket's permissions."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest

from plait.agent.identity import WorkloadCertificate
from plait.agent.sds import SdsServer
from plait.model.identity import SpiffeId
from sdskit import SdsStream, secrets

NOW = datetime.datetime.now(datetime.UTC)


def cert(n: int, roots: bytes = b"ROOTS-1\n") -> WorkloadCertificate:
    """A stand-in certificate (the SDS server does not parse PEM)."""
    return WorkloadCertificate(
        identity=SpiffeId("cluster.local", "default", "web"),
        key_pem=f"KEY-{n}\n".encode(),
        chain_pem=(f"LEAF-{n}\n".encode(), b"INTERMEDIATE\n"),
        bundle_pem=(roots,),
        signer="s",
        serial=n,
        not_before=NOW,
        not_after=NOW + datetime.timedelta(hours=1),
    )


class Source:
    def __init__(self, current: WorkloadCertificate | None) -> None:
        self.current = current
        self.subscribers: list[Callable[[WorkloadCertificate], None]] = []

    def subscribe(self, callback: Callable[[WorkloadCertificate], None]) -> Callable[[], None]:
        self.subscribers.append(callback)
        return lambda: self.subscribers.remove(callback)

    def publish(self, new: WorkloadCertificate) -> None:
        self.current = new
        for callback in list(self.subscribers):
            callback(new)


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short directory (Unix socket paths must stay under ~100 bytes)."""
    base = Path(tempfile.mkdtemp(dir="/tmp", prefix="sds"))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def served(sock_dir: Path) -> AsyncIterator[tuple[Source, SdsServer, grpc.aio.Channel]]:
    source = Source(cert(1))
    server = SdsServer(source, sock_dir / "agent" / "sds.sock")
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        yield source, server, channel
    finally:
        await channel.close()
        await server.stop()


async def test_each_stream_gets_the_secret_it_names(
    served: tuple[Source, SdsServer, grpc.aio.Channel],
) -> None:
    _, server, channel = served
    certs, roots, both = SdsStream(channel), SdsStream(channel), SdsStream(channel)

    await certs.request(["default"])
    await roots.request(["ROOTCA"])
    await both.request([])

    tls = secrets(await certs.read())["default"].tls_certificate
    assert tls.certificate_chain.inline_bytes == b"LEAF-1\nINTERMEDIATE\n"
    assert tls.private_key.inline_bytes == b"KEY-1\n"
    ca = secrets(await roots.read())["ROOTCA"].validation_context.trusted_ca
    assert ca.inline_bytes == b"ROOTS-1\n"
    assert set(secrets(await both.read())) == {"default", "ROOTCA"}
    assert server.open_streams == 3


async def test_a_renewal_is_pushed_to_the_streams_whose_secret_changed(
    served: tuple[Source, SdsServer, grpc.aio.Channel],
) -> None:
    source, _, channel = served
    certs, roots = SdsStream(channel), SdsStream(channel)
    await certs.request(["default"])
    await roots.request(["ROOTCA"])
    first_cert, first_roots = await certs.read(), await roots.read()
    await certs.ack(["default"])
    await roots.ack(["ROOTCA"])

    source.publish(cert(2))  # new key and leaf, same roots
    renewed = await certs.read()
    source.publish(dataclasses.replace(cert(2), bundle_pem=(b"ROOTS-1\n", b"ROOTS-2\n")))
    rotated = await roots.read()  # the first thing the ROOTCA stream sees after its ACK

    assert renewed.version_info != first_cert.version_info
    assert renewed.nonce != first_cert.nonce
    assert secrets(renewed)["default"].tls_certificate.private_key.inline_bytes == b"KEY-2\n"
    assert rotated.version_info != first_roots.version_info
    ca = secrets(rotated)["ROOTCA"].validation_context.trusted_ca.inline_bytes
    assert ca == b"ROOTS-1\nROOTS-2\n"


async def test_a_nack_is_recorded_and_not_answered_with_the_same_secret(
    served: tuple[Source, SdsServer, grpc.aio.Channel],
) -> None:
    source, server, channel = served
    stream = SdsStream(channel)
    await stream.request(["default"])
    first = await stream.read()
    await stream.request(["default"], first.nonce, "", error="bad private key")
    await stream.request(["default"], "stale-nonce")  # stale, same names: ignored
    deadline = asyncio.get_running_loop().time() + 5
    while server.last_nack != "bad private key":  # the server reads requests on its own task
        assert asyncio.get_running_loop().time() < deadline, "the NACK was not recorded"
        await asyncio.sleep(0.01)

    source.publish(cert(3))
    after = await stream.read()

    assert set(secrets(after)) == {"default"}  # the stale request changed nothing
    assert secrets(after)["default"].tls_certificate.private_key.inline_bytes == b"KEY-3\n"
    await stream.ack(["default"])
    await stream.request(["default", "ROOTCA"], after.nonce, after.version_info)  # new names
    assert set(secrets(await stream.read())) == {"default", "ROOTCA"}


async def test_a_stale_nonce_does_not_lose_a_subscription_change(
    served: tuple[Source, SdsServer, grpc.aio.Channel],
) -> None:
    """envoyproxy/envoy#10363: new names sent with an outdated nonce must be answered."""
    source, _, channel = served
    stream = SdsStream(channel)
    await stream.request(["default"])
    first = await stream.read()
    source.publish(cert(2))
    second = await stream.read()

    # the client, still running `first`, asks for one more secret with the nonce it saw
    await stream.request(["default", "ROOTCA"], first.nonce, first.version_info)
    answer = await stream.read()

    assert set(secrets(answer)) == {"default", "ROOTCA"}
    assert answer.nonce not in (first.nonce, second.nonce)
    assert secrets(answer)["default"].tls_certificate.private_key.inline_bytes == b"KEY-2\n"


async def test_a_request_before_the_first_certificate_is_answered_when_it_arrives(
    sock_dir: Path,
) -> None:
    source = Source(None)
    server = SdsServer(source, sock_dir / "sds.sock")
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        stream = SdsStream(channel)
        await stream.request(["default"])
        await _until(lambda: bool(source.subscribers))
        source.publish(cert(5))
        response = await stream.read()
    finally:
        await channel.close()
        await server.stop()

    assert secrets(response)["default"].tls_certificate.private_key.inline_bytes == b"KEY-5\n"


async def test_the_socket_is_private_and_removed_on_stop(sock_dir: Path) -> None:
    stale = sock_dir / "agent" / "sds.sock"
    stale.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))  # what a killed agent leaves behind
    server = SdsServer(Source(cert(1)), stale)

    await server.start()
    try:
        assert stat.S_IMODE(os.stat(stale).st_mode) == 0o600
        assert stat.S_ISSOCK(os.stat(stale).st_mode)
    finally:
        await server.stop()
    assert not stale.exists()

    fresh = sock_dir / "new" / "dir" / "sds.sock"
    server = SdsServer(Source(cert(1)), fresh)
    await server.start()
    await server.stop()
    assert stat.S_IMODE(os.stat(fresh.parent).st_mode) == 0o700


async def test_a_directory_others_can_write_is_refused(sock_dir: Path) -> None:
    """Another user who can write the directory could swap the socket for their own."""
    shared = sock_dir / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(PermissionError, match="0700"):
        await SdsServer(Source(cert(1)), shared / "sds.sock").start()
    assert not (shared / "sds.sock").exists()


async def test_a_file_that_is_not_a_socket_is_never_replaced(sock_dir: Path) -> None:
    precious = sock_dir / "sds.sock"
    precious.write_text("data")

    with pytest.raises(FileExistsError):
        await SdsServer(Source(cert(1)), precious).start()

    assert precious.read_text() == "data"


async def _until(check: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)
