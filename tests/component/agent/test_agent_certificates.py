"""The certificate manager against the real mesh CA (plait.ca) over HTTPS: the first
certificate, renewal at about half-life, a refused identity, and SDS pushes on renewal."""

from __future__ import annotations

import asyncio
import datetime
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from meshca import MeshCa
from plait.agent.identity import CertificateManager, WorkloadCertificate
from plait.agent.sds import SdsServer
from plait.ca import rotation
from plait.errors import WorkloadCertificateError
from plait.model.identity import SpiffeId
from sdskit import SdsStream, secrets

WEB = SpiffeId("cluster.local", "shop", "web")
PAYMENTS = SpiffeId("cluster.local", "shop", "payments")
TTL_S = 10  # the CA's shortest


@pytest.fixture
async def mesh_ca(tmp_path: Path) -> AsyncIterator[MeshCa]:
    async with MeshCa(tmp_path, workload_ttl_s=TTL_S) as ca:
        yield ca


def chains_to(leaf_pem: bytes, roots: tuple[bytes, ...]) -> bool:
    leaf = x509.load_pem_x509_certificate(leaf_pem)
    for root_pem in roots:
        root = x509.load_pem_x509_certificate(root_pem)
        try:
            leaf.verify_directly_issued_by(root)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {timeout}s: {what}") from None


async def test_the_first_certificate_names_the_workload_and_chains_to_the_root(
    mesh_ca: MeshCa,
) -> None:
    manager = CertificateManager(mesh_ca.options(WEB))
    await manager.start()
    try:
        cert = manager.current
        assert cert is not None
        leaf = cert.leaf
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == [WEB.uri]
        assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
        assert cert.bundle_pem == (mesh_ca.root_file.read_bytes(),)
        assert chains_to(cert.chain_pem[-1], cert.bundle_pem)
        assert cert.signer == mesh_ca.ca.signer_fingerprint
        lifetime = (cert.not_after - leaf.not_valid_before_utc).total_seconds()
        assert lifetime <= TTL_S + 120  # the CA backdates notBefore a little
    finally:
        await manager.stop()


async def test_renewal_brings_a_new_key_and_serial_at_about_half_life(mesh_ca: MeshCa) -> None:
    manager = CertificateManager(mesh_ca.options(WEB, jitter_fraction=0.02))
    arrived: list[tuple[float, WorkloadCertificate]] = []
    await manager.start()
    started = time.monotonic()
    manager.subscribe(lambda c: arrived.append((time.monotonic(), c)))
    try:
        first = manager.current
        assert first is not None
        await until(lambda: bool(arrived), TTL_S, "a renewed certificate")
        at, second = arrived[0]
    finally:
        await manager.stop()

    assert second.serial != first.serial
    assert second.key_pem != first.key_pem  # a fresh key for every certificate
    assert second.leaf.public_key() != first.leaf.public_key()
    assert TTL_S * 0.4 <= at - started <= TTL_S * 0.65
    assert manager.renewals == 1


async def test_a_token_for_another_identity_is_refused_with_the_cas_reason(
    mesh_ca: MeshCa,
) -> None:
    manager = CertificateManager(mesh_ca.options(PAYMENTS, token_for=WEB, start_timeout_s=1.0))
    before = asyncio.all_tasks()

    with pytest.raises(WorkloadCertificateError) as info:
        await manager.start()

    message = str(info.value)
    assert mesh_ca.url in message
    assert "HTTP 403" in message
    assert manager.current is None
    assert asyncio.all_tasks() == before  # nothing left running
    assert mesh_ca.server.counters()["issued"] == 0


async def test_sds_serves_the_cas_certificate_and_pushes_the_renewed_one(
    mesh_ca: MeshCa,
) -> None:
    sock_dir = Path(tempfile.mkdtemp(dir="/tmp", prefix="sds"))
    manager = CertificateManager(mesh_ca.options(WEB, renew_fraction=0.2))
    sds = SdsServer(manager, sock_dir / "sds.sock")
    await manager.start()
    await sds.start()
    channel = grpc.aio.insecure_channel(sds.address)
    try:
        stream = SdsStream(channel)
        await stream.request(["default", "ROOTCA"])
        first = secrets(await stream.read())
        await stream.ack(["default", "ROOTCA"])
        second = secrets(await stream.read(timeout=TTL_S))
    finally:
        await channel.close()
        await sds.stop()
        await manager.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)

    def serial(found: dict[str, secret_pb2.Secret]) -> int:
        chain = found["default"].tls_certificate.certificate_chain.inline_bytes
        return x509.load_pem_x509_certificate(chain).serial_number

    assert serial(second) != serial(first)
    roots = first["ROOTCA"].validation_context.trusted_ca.inline_bytes
    assert roots == mesh_ca.root_file.read_bytes()
    assert manager.renewals >= 1


async def test_a_root_rotation_is_followed_without_dropping_trust(tmp_path: Path) -> None:
    async with MeshCa(tmp_path) as mesh_ca:
        manager = CertificateManager(mesh_ca.options(WEB, bundle_poll_s=0.05))
        await manager.start()
        try:
            first = manager.current
            assert first is not None
            ca_dir = mesh_ca.root_file.parent
            now = datetime.datetime.now(datetime.UTC)

            rotation.add_next_root(ca_dir, now)
            mesh_ca.ca.reload_if_changed()
            await until(lambda: len(current(manager).bundle_pem) == 2, 5, "the new root trusted")
            assert current(manager).serial == first.serial  # trust first; no new certificate yet

            rotation.switch_root(ca_dir, now)
            mesh_ca.ca.reload_if_changed()
            await until(lambda: current(manager).signer != first.signer, 5, "a renewal")
            renewed = current(manager)
        finally:
            await manager.stop()

    new_root = mesh_ca.root_file.read_bytes()
    assert renewed.signer == mesh_ca.ca.signer_fingerprint
    assert chains_to(renewed.chain_pem[-1], (new_root,))
    assert not chains_to(renewed.chain_pem[-1], first.bundle_pem)
    assert set(renewed.bundle_pem) >= {new_root, *first.bundle_pem}  # old and new trusted


def current(manager: CertificateManager) -> WorkloadCertificate:
    cert = manager.current
    assert cert is not None
    return cert
