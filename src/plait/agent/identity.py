"""The workload's certificate: a private key made here, signed by the CA, kept fresh.

`CertificateManager` makes an EC P-256 key in memory (never written to disk, never sent,
left out of every repr), sends a CSR whose only subject alternative name is the
workload's SPIFFE ID, and keeps the current `WorkloadCertificate` (key, chain, trust
bundle) for the SDS server, which `subscribe`s to changes.

Concurrency (one event loop): two loops in one task group, run by one task that this
object owns (`stop()` cancels and awaits it; neither loop ends on an error, and should the
group fail anyway, a bug, the failure is logged and kept in `last_error`).

- The renewer obtains a certificate, publishes it, then sleeps until about half of its
  remaining lifetime has passed (`renew_fraction`, with a little random jitter so that
  replicas started together do not renew together) or until a renewal is requested, and
  starts over with a *fresh* key. The lifetime is measured from the moment the
  certificate arrived, not from its notBefore (a CA may backdate notBefore).
- The bundle poller reads GET /v1/trust-bundle every `bundle_poll_s`. A changed bundle
  is published at once (Envoy then trusts old and new roots side by side); a changed
  signer (the CA signs with a new root or intermediate) asks the renewer to renew now,
  so the workload moves to the new chain while the old one is still trusted.

Subscribers are plain callables run in the loop right after each change (no awaiting in
them; the SDS server only queues a wake-up).

Failure model: a failed request — the CA unreachable, or a refusal (400/401/403, logged
with the CA's own message: a token may be re-minted, a CA restarted) — is retried with
capped exponential backoff (anything unexpected too, logged with its traceback), and
the current certificate stays published meanwhile: a certificate is never withdrawn,
Envoy keeps using it until it is replaced. `start()` is the only place a failure
surfaces as an exception: if no first certificate arrives within `start_timeout_s` it
raises `WorkloadCertificateError` naming the CA and its last answer.
`stop()` cancels both loops and closes the HTTP session.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from plait.agent.caclient import CaClient, Issued, TrustBundle
from plait.agent.process import backoff_delay
from plait.errors import WorkloadCertificateError
from plait.model.identity import SpiffeId

log = logging.getLogger(__name__)

MIN_RENEW_DELAY_S = 1.0
"""A floor under the renewal delay, so a certificate that arrives (nearly) expired — a
clock skewed against the CA's — is not renewed in a tight loop."""


@dataclass(frozen=True)
class CaClientOptions:
    """Where the CA is, how this workload proves who it is, and how often to renew.

    `ca_url` is `https://HOST:PORT`; `ca_root_file` holds the root(s) that signed the CA's
    TLS certificate; `token_file` the workload token (read at each request). `ttl_s`
    None lets the CA choose the lifetime.
    """

    ca_url: str
    ca_root_file: Path
    token_file: Path
    identity: SpiffeId
    ttl_s: int | None = None
    bundle_poll_s: float = 30.0
    start_timeout_s: float = 10.0
    request_timeout_s: float = 5.0
    renew_fraction: float = 0.5
    jitter_fraction: float = 0.05
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.ca_url.startswith("https://"):
            raise ValueError(f"ca_url {self.ca_url!r} must be an https:// URL")
        if not 0 < self.renew_fraction < 1:
            raise ValueError("renew_fraction must be between 0 and 1")
        if not 0 <= self.jitter_fraction < self.renew_fraction:
            raise ValueError("jitter_fraction must be in [0, renew_fraction)")
        if self.ttl_s is not None and self.ttl_s < 1:
            raise ValueError("ttl_s must be at least 1 second")
        if self.bundle_poll_s <= 0 or self.start_timeout_s <= 0:
            raise ValueError("bundle_poll_s and start_timeout_s must be positive")


@dataclass(frozen=True)
class WorkloadCertificate:
    """A signed workload certificate with its key and the trust bundle to verify peers."""

    identity: SpiffeId
    key_pem: bytes = field(repr=False)
    chain_pem: tuple[bytes, ...]  # leaf first, then intermediates
    bundle_pem: tuple[bytes, ...]  # roots
    signer: str
    serial: int
    not_before: datetime.datetime
    not_after: datetime.datetime

    @property
    def leaf(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.chain_pem[0])


Subscriber = Callable[[WorkloadCertificate], None]


class CaApi(Protocol):
    """The CA calls the manager makes (`caclient.CaClient`; a fake in unit tests)."""

    async def sign(
        self, csr_pem: bytes, ttl_s: int | None, extra_roots: tuple[bytes, ...] = ()
    ) -> Issued: ...

    async def trust_bundle(self, extra_roots: tuple[bytes, ...] = ()) -> TrustBundle: ...

    async def close(self) -> None: ...


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh EC P-256 private key (the kind Istio's agent makes by default)."""
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(key: ec.EllipticCurvePrivateKey, identity: SpiffeId) -> bytes:
    """A PEM CSR with an empty subject and exactly one SAN: the identity's URI.

    The SAN is critical because the subject is empty (RFC 5280 4.2.1.6), as in an
    X.509-SVID, where the subject carries no meaning.
    """
    san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.uri)])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(san, critical=True)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def _uris(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return ext.value.get_values_for_type(x509.UniformResourceIdentifier)


def certificate_from(
    issued: Issued, key: ec.EllipticCurvePrivateKey, identity: SpiffeId
) -> WorkloadCertificate:
    """Check the CA's answer against the key and identity asked for; ValueError if off."""
    leaf = x509.load_pem_x509_certificate(issued.chain_pem[0])
    ours = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    theirs = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if theirs != ours:
        raise ValueError("the certificate is not for the key in the CSR")
    if _uris(leaf) != [identity.uri]:
        raise ValueError(f"the certificate names {_uris(leaf)}, not {identity.uri}")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return WorkloadCertificate(
        identity=identity,
        key_pem=key_pem,
        chain_pem=issued.chain_pem,
        bundle_pem=issued.bundle_pem,
        signer=issued.signer,
        serial=leaf.serial_number,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
    )


def renew_delay(remaining_s: float, fraction: float, jitter: float, rnd: float) -> float:
    """Seconds until renewal: `fraction` ± `jitter` of the remaining lifetime (rnd in [0,1))."""
    return max(0.0, remaining_s * (fraction + jitter * (2 * rnd - 1)))


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class CertificateManager:
    """Obtains and renews one workload certificate (see the module docstring)."""

    def __init__(self, options: CaClientOptions, *, client: CaApi | None = None) -> None:
        self.options = options
        self.renewals = 0  # certificates obtained after the first one
        self.last_error: str | None = None
        self._current: WorkloadCertificate | None = None
        self._subscribers: list[Subscriber] = []
        self._first = asyncio.Event()
        self._renew_now = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._client = client

    def __repr__(self) -> str:
        cert = self._current
        held = (
            f"serial {cert.serial:x} until {cert.not_after:%Y-%m-%dT%H:%M:%SZ}" if cert else "none"
        )
        return f"CertificateManager({self.options.identity.uri} from {self.options.ca_url}; {held})"

    @property
    def current(self) -> WorkloadCertificate | None:
        """The certificate to serve now (None until the first one arrives)."""
        return self._current

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(cert)` after every change; returns the function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def request_renewal(self) -> None:
        """Renew now instead of at the scheduled time."""
        self._renew_now.set()

    async def start(self) -> None:
        """Start renewing and polling; returns once the first certificate is in.

        Raises WorkloadCertificateError (naming the CA and its last answer) after
        `start_timeout_s` without a certificate; nothing is left running then.
        """
        if self._runner is not None:
            raise RuntimeError("CertificateManager.start() was already called")
        o = self.options
        if self._client is None:
            self._client = CaClient(o.ca_url, o.ca_root_file, o.token_file, o.request_timeout_s)
        # owned here: `stop()` cancels and awaits it; `_run` logs a failure
        self._runner = asyncio.create_task(self._run(), name=f"certificates {o.identity}")
        try:
            async with asyncio.timeout(o.start_timeout_s):
                await self._first.wait()
        except TimeoutError:
            await self.stop()
            raise WorkloadCertificateError(
                f"no certificate for {o.identity} from the CA at {o.ca_url} within "
                f"{o.start_timeout_s:g}s: {self.last_error or 'no answer'}"
            ) from None
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Cancel the loops and close the HTTP session; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            await asyncio.wait([runner])
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    # -- internals -------------------------------------------------------------------

    async def _run(self) -> None:
        o = self.options
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._renew_loop(), name=f"renew {o.identity}")
                tg.create_task(self._bundle_loop(), name=f"bundle {o.identity}")
        except Exception as exc:  # a bug: the loops themselves never end on an error
            self.last_error = f"certificate renewal stopped: {exc!r}"
            log.error("%s: certificate renewal stopped", o.identity, exc_info=exc)

    def _trusted(self) -> tuple[bytes, ...]:
        return self._current.bundle_pem if self._current is not None else ()

    def _publish(self, cert: WorkloadCertificate) -> None:
        self._current = cert
        for callback in list(self._subscribers):
            try:
                callback(cert)
            except Exception:
                log.exception("a certificate subscriber failed")

    async def _issue(self) -> WorkloadCertificate:
        assert self._client is not None
        o = self.options
        key = new_key()
        issued = await self._client.sign(make_csr(key, o.identity), o.ttl_s, self._trusted())
        try:
            return certificate_from(issued, key, o.identity)
        except ValueError as exc:
            raise WorkloadCertificateError(
                f"CA {o.ca_url} sent an unusable certificate: {exc}"
            ) from exc

    async def _renew_loop(self) -> None:
        o = self.options
        failures = 0
        while True:
            self._renew_now.clear()
            try:
                cert = await self._issue()
            except Exception as exc:  # a refusal, an outage, or a bug: never end the loop
                self.last_error = str(exc) or type(exc).__name__
                failures += 1
                delay = backoff_delay(failures, o.backoff_initial_s, o.backoff_max_s)
                log.warning(
                    "%s: %s (retrying in %.1fs)", o.identity, self.last_error, delay,
                    exc_info=not isinstance(exc, WorkloadCertificateError),
                )  # fmt: skip
                await asyncio.sleep(delay)
                continue
            failures = 0
            self.last_error = None
            if self._first.is_set():
                self.renewals += 1
            remaining = (cert.not_after - _utcnow()).total_seconds()
            delay = max(
                MIN_RENEW_DELAY_S,
                renew_delay(remaining, o.renew_fraction, o.jitter_fraction, random.random()),
            )
            log.info(
                "%s: certificate serial %x valid until %s; renewing in %.1fs",
                o.identity, cert.serial, cert.not_after.isoformat(), delay,
            )  # fmt: skip
            self._publish(cert)
            self._first.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._renew_now.wait()

    async def _bundle_loop(self) -> None:
        assert self._client is not None
        o = self.options
        while True:
            await asyncio.sleep(o.bundle_poll_s)
            cert = self._current
            if cert is None:
                continue
            try:
                bundle = await self._client.trust_bundle(self._trusted())
            except Exception as exc:  # as for renewals: log, try again at the next poll
                log.warning(
                    "%s: trust bundle not refreshed: %s", o.identity, exc,
                    exc_info=not isinstance(exc, WorkloadCertificateError),
                )  # fmt: skip
                continue
            cert = self._current
            assert cert is not None
            if bundle.roots_pem != cert.bundle_pem:
                log.info(
                    "%s: the trust bundle changed (%d roots)", o.identity, len(bundle.roots_pem)
                )
                self._publish(dataclasses.replace(cert, bundle_pem=bundle.roots_pem))
            if bundle.signer != cert.signer:
                log.info("%s: the CA signs with a new certificate; renewing now", o.identity)
                self._renew_now.set()
