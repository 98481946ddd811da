"""The agent's key, CSR and certificate checks, and the manager's renewal logic (fake CA)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import svidkit
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from plait.agent.caclient import Issued, TrustBundle
from plait.agent.identity import (
    CaClientOptions,
    CertificateManager,
    WorkloadCertificate,
    certificate_from,
    make_csr,
    new_key,
    renew_delay,
)
from plait.errors import WorkloadCertificateError
from plait.model.identity import SpiffeId

WHO = SpiffeId("cluster.local", "shop", "reviews")


def options(**kw: Any) -> CaClientOptions:
    base: dict[str, Any] = {
        "ca_url": "https://127.0.0.1:1",
        "ca_root_file": Path("/nonexistent/root.pem"),
        "token_file": Path("/nonexistent/token"),
        "identity": WHO,
        "bundle_poll_s": 3600.0,
        "start_timeout_s": 2.0,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
    }
    return CaClientOptions(**(base | kw))


def test_csr_has_one_uri_san_and_a_p256_key() -> None:
    key = new_key()

    csr = x509.load_pem_x509_csr(make_csr(key, WHO))

    assert csr.is_signature_valid
    assert isinstance(csr.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(csr.public_key().curve, ec.SECP256R1)  # type: ignore[union-attr]
    assert csr.public_key() == key.public_key()
    assert len(csr.extensions) == 1
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical  # the subject is empty
    assert list(san.value) == [x509.UniformResourceIdentifier(WHO.uri)]
    assert csr.subject == x509.Name([])


def test_every_key_is_new() -> None:
    assert new_key().private_numbers() != new_key().private_numbers()


def test_a_certificate_for_our_key_and_identity_is_accepted() -> None:
    key = new_key()

    cert = certificate_from(svidkit.issued(key.public_key(), WHO.uri), key, WHO)

    assert cert.identity == WHO
    assert cert.leaf.serial_number == cert.serial
    assert cert.bundle_pem == (svidkit.ROOT_PEM,)
    assert b"PRIVATE KEY" in cert.key_pem
    assert cert.not_after > cert.not_before


@pytest.mark.parametrize(
    "case",
    ["other key", "other identity", "two SANs"],
)
def test_a_certificate_that_does_not_match_the_request_is_refused(case: str) -> None:
    key = new_key()
    if case == "other key":
        answer = svidkit.issued(new_key().public_key(), WHO.uri)
    elif case == "other identity":
        answer = svidkit.issued(key.public_key(), "spiffe://cluster.local/ns/shop/sa/admin")
    else:
        chain = (svidkit.leaf(key.public_key(), [WHO.uri, "spiffe://x/ns/a/sa/b"]),)
        answer = Issued(chain, (svidkit.ROOT_PEM,), "s")

    with pytest.raises(ValueError):
        certificate_from(answer, key, WHO)


def test_the_private_key_is_in_no_repr() -> None:
    key = new_key()
    cert = certificate_from(svidkit.issued(key.public_key(), WHO.uri), key, WHO)
    manager = CertificateManager(options())
    manager._current = cert

    for text in (repr(cert), repr(manager), str(cert)):
        assert "PRIVATE" not in text
        assert cert.key_pem.decode().splitlines()[1] not in text


def test_renewal_is_at_about_half_the_remaining_lifetime() -> None:
    assert renew_delay(100, 0.5, 0.05, 0.5) == pytest.approx(50)
    assert renew_delay(100, 0.5, 0.05, 0.0) == pytest.approx(45)
    assert renew_delay(100, 0.5, 0.05, 0.999999) == pytest.approx(55)
    assert renew_delay(-3, 0.5, 0.05, 0.5) == 0  # already expired: at once


@pytest.mark.parametrize(
    "bad",
    [
        {"ca_url": "http://127.0.0.1:1"},
        {"renew_fraction": 1.0},
        {"jitter_fraction": 0.6},
        {"ttl_s": 0},
        {"bundle_poll_s": 0},
    ],
)
def test_options_reject_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        options(**bad)


class FakeCa:
    """Answers CSRs with certificates of `ttl_s`; `refuse` makes it fail like a 403."""

    def __init__(self, ttl_s: int = 3600) -> None:
        self.ttl_s = ttl_s
        self.refuse: str | None = None
        self.signer = "signer-1"
        self.bundle: tuple[bytes, ...] = (svidkit.ROOT_PEM,)
        self.signed = 0
        self.closed = False

    async def sign(
        self, csr_pem: bytes, ttl_s: int | None, extra_roots: tuple[bytes, ...] = ()
    ) -> Issued:
        if self.refuse is not None:
            raise WorkloadCertificateError(self.refuse)
        csr = x509.load_pem_x509_csr(csr_pem)
        uri = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value[0].value
        self.signed += 1
        public = csr.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        chain = (svidkit.leaf(public, [uri], self.ttl_s),)
        return Issued(chain, self.bundle, self.signer)

    async def trust_bundle(self, extra_roots: tuple[bytes, ...] = ()) -> TrustBundle:
        if self.refuse is not None:
            raise WorkloadCertificateError(self.refuse)
        return TrustBundle(self.bundle, self.signer)

    async def close(self) -> None:
        self.closed = True


async def until(check: Any, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_start_fails_with_the_cas_message_and_leaves_nothing_running() -> None:
    ca = FakeCa()
    ca.refuse = "CA https://127.0.0.1:1 refused: HTTP 403: identity mismatch"
    manager = CertificateManager(options(start_timeout_s=0.3), client=ca)
    before = asyncio.all_tasks()

    with pytest.raises(WorkloadCertificateError, match="https://127.0.0.1:1.*identity mismatch"):
        await manager.start()

    assert asyncio.all_tasks() == before
    assert ca.closed


async def test_a_refusal_is_retried_until_the_ca_signs() -> None:
    ca = FakeCa()
    ca.refuse = "HTTP 401: token expired"
    manager = CertificateManager(options(), client=ca)
    start = asyncio.create_task(manager.start())
    await until(lambda: manager.last_error is not None)
    ca.refuse = None

    await start

    assert manager.current is not None
    await manager.stop()


async def test_a_failed_renewal_keeps_the_current_certificate() -> None:
    ca = FakeCa(ttl_s=1)
    manager = CertificateManager(options(), client=ca)
    await manager.start()
    first = manager.current
    ca.refuse = "HTTP 503: CA down"
    try:
        await until(lambda: ca.refuse in (manager.last_error or ""))

        assert manager.current is first
        ca.refuse = None
        await until(lambda: manager.current is not first)
        assert manager.current is not None and first is not None
        assert manager.current.key_pem != first.key_pem  # a fresh key
    finally:
        await manager.stop()


async def test_subscribers_hear_renewals_and_a_new_bundle() -> None:
    ca = FakeCa()
    manager = CertificateManager(options(bundle_poll_s=0.02), client=ca)
    seen: list[WorkloadCertificate] = []
    await manager.start()
    unsubscribe = manager.subscribe(seen.append)
    try:
        ca.bundle = (svidkit.ROOT_PEM, svidkit.ROOT_PEM.replace(b"\n", b"\r\n"))
        await until(lambda: bool(seen))
        assert seen[-1].bundle_pem == ca.bundle
        assert ca.signed == 1  # the signer did not change: no renewal

        ca.signer = "signer-2"  # root rotation: renew at once under the new signer
        await until(lambda: ca.signed == 2)
        await until(lambda: seen[-1].signer == "signer-2")
        assert manager.renewals == 1
        unsubscribe()
        manager.request_renewal()
        await until(lambda: ca.signed == 3)
        assert seen[-1].signer == "signer-2" and len(seen) == 2
    finally:
        await manager.stop()
