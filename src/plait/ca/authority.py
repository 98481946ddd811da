"""The mesh certificate authority: signs workload SVIDs from checked CSRs.

Concurrency: the CA's whole signing state is one immutable `CaState` held in one
attribute; `sign` reads it once, so a reload (which swaps the attribute under a lock)
never mixes an old key with a new certificate. Safe to call from threads (the xDS
server's credential callback) and from the event loop.

Failure model: `reload_if_changed` keeps the last good state when the files on disk are
broken (say, half way through a manual edit) and reports why in `last_error`, `warnings`
and `describe`; the next change on disk is tried again.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from plait.ca import files, store
from plait.ca.csr import checked_public_key
from plait.ca.files import cert_pem, key_pem
from plait.ca.pki import BACKDATE, LeafSpec, build_leaf
from plait.ca.store import CaState, Layout, Role
from plait.errors import CaError, CaFileError, IdentityError
from plait.model.identity import SpiffeId

log = logging.getLogger(__name__)

DEFAULT_WORKLOAD_TTL = dt.timedelta(hours=24)
MIN_TTL = dt.timedelta(seconds=10)
MAX_TTL = dt.timedelta(days=90)
EXPIRY_WARNING = dt.timedelta(days=30)

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def clamp_ttl(ttl: dt.timedelta) -> dt.timedelta:
    """`ttl` held within [MIN_TTL, MAX_TTL]."""
    return max(MIN_TTL, min(MAX_TTL, ttl))


@dataclass(frozen=True)
class IssuedCertificate:
    """A signed workload certificate: `chain` is leaf first, then intermediates (no root)."""

    chain: tuple[str, ...]
    not_after: dt.datetime
    serial: int
    signer: str
    """SHA-256 fingerprint (hex) of the certificate that signed the leaf."""

    @property
    def leaf(self) -> str:
        return self.chain[0]


@dataclass(frozen=True)
class CertInfo:
    """One CA certificate as `plait ca status` and `plait status` show it."""

    role: str
    file: str
    subject: str
    not_after: dt.datetime
    days_left: int
    signs: bool
    fingerprint: str

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "file": self.file,
            "subject": self.subject,
            "notAfter": self.not_after.isoformat().replace("+00:00", "Z"),
            "daysLeft": self.days_left,
            "signs": self.signs,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class CaDescription:
    ca_dir: str
    layout: str
    signer: str
    certs: tuple[CertInfo, ...]
    warnings: tuple[str, ...]
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "caDir": self.ca_dir,
            "layout": self.layout,
            "signer": self.signer,
            "certificates": [c.to_json() for c in self.certs],
            "warnings": list(self.warnings),
            "lastError": self.last_error,
        }


def describe_state(ca_dir: Path, state: CaState, now: dt.datetime) -> tuple[CertInfo, ...]:
    return tuple(
        CertInfo(
            role=c.role.value,
            file=str(ca_dir / c.file),
            subject=c.cert.subject.rfc4514_string(),
            not_after=c.not_after,
            days_left=(c.not_after - now).days,
            signs=c.signs,
            fingerprint=c.fingerprint,
        )
        for c in state.certs
    )


def expiry_warnings(
    ca_dir: Path, state: CaState, now: dt.datetime, warn_within: dt.timedelta = EXPIRY_WARNING
) -> list[str]:
    """One warning per root or intermediate that expires within `warn_within` (or has)."""
    out = []
    for c in state.certs:
        if c.not_after - now > warn_within:
            continue
        when = f"{c.not_after:%Y-%m-%d %H:%M} UTC"
        what = f"{c.role.value} certificate {ca_dir / c.file} ({c.cert.subject.rfc4514_string()})"
        state_text = f"expired on {when}" if c.not_after <= now else f"expires on {when}"
        out.append(f"{what} {state_text}; {_advice(state.layout, c.role)}")
    return out


def _advice(layout: Layout, role: Role) -> str:
    if role is Role.EXTRA_ROOT:
        return "finish the rotation: `plait ca rotate-root DIR --step finish`"
    if role is Role.NEXT_ROOT:
        return "it has not been switched to; start over with a fresh `--step add`"
    if layout is Layout.PLAIT:
        return (
            "rotate the root without downtime: `plait ca rotate-root DIR --step add`, "
            "then `--step switch`, then `--step finish` (docs/security.md)"
        )
    return (
        "put a renewed ca-cert.pem/ca-key.pem/cert-chain.pem (and root-cert.pem) in the CA "
        "directory; the running control plane picks them up without a restart"
    )


class CertificateAuthority:
    """Signs workload certificates for one trust domain from the files in `ca_dir`."""

    def __init__(
        self,
        ca_dir: Path,
        trust_domain: str,
        state: CaState,
        *,
        workload_ttl: dt.timedelta = DEFAULT_WORKLOAD_TTL,
        clock: Clock = utc_now,
    ) -> None:
        self.ca_dir = ca_dir
        self.trust_domain = trust_domain
        self.workload_ttl = clamp_ttl(workload_ttl)
        self.clock = clock
        self._state = state
        self._stamp = files.stamp(ca_dir)
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.generation = 1
        """Counts successful loads; changes whenever the signer or the bundle may have."""

    @classmethod
    def load(
        cls,
        ca_dir: Path,
        trust_domain: str,
        *,
        create: bool = False,
        workload_ttl: dt.timedelta = DEFAULT_WORKLOAD_TTL,
        clock: Clock = utc_now,
    ) -> CertificateAuthority:
        """Load the CA in `ca_dir`. With `create`, make a self-signed root there first if
        it holds none (first start); without, CaFileError. CaFileError for broken files."""
        if not store.exists(ca_dir):
            if not create:
                raise CaFileError(f"{ca_dir}: no CA here (plait makes one on `plait up`)")
            store.create_root(ca_dir, trust_domain, clock())
            log.info("made a new root CA in %s", ca_dir)
        return cls(
            ca_dir, trust_domain, store.load_state(ca_dir), workload_ttl=workload_ttl, clock=clock
        )

    def __repr__(self) -> str:
        return (
            f"CertificateAuthority(ca_dir={str(self.ca_dir)!r}, trust_domain="
            f"{self.trust_domain!r}, layout={self._state.layout.value!r}, "
            f"signer={self.signer_fingerprint[:16]}...)"
        )

    @property
    def layout(self) -> Layout:
        return self._state.layout

    @property
    def signer_fingerprint(self) -> str:
        return self._state.signer_fingerprint

    def trust_bundle(self) -> list[str]:
        """PEM roots every workload should trust: current, next (during a rotation), extra."""
        return [cert_pem(c) for c in self._state.roots]

    def reload_if_changed(self) -> bool:
        """Reload the CA directory if a file changed since the last attempt (a few stat
        calls). True if a new state is in use; on broken files keep the old one."""
        stamp = files.stamp(self.ca_dir)
        if stamp == self._stamp:
            return False
        with self._lock:
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            try:
                state = store.load_state(self.ca_dir)
            except CaError as exc:
                self.last_error = str(exc)
                log.warning("CA files changed but cannot be used; still signing as before: %s", exc)
                return False
            changed = (state.signer_fingerprint, state.roots) != (
                self._state.signer_fingerprint,
                self._state.roots,
            )
            self._state, self.last_error = state, None
            if changed:
                self.generation += 1
                log.info("CA reloaded from %s; signer %s", self.ca_dir, state.signer_fingerprint)
            return changed

    def sign(
        self, csr_pem: bytes, identity: SpiffeId, ttl: dt.timedelta | None = None
    ) -> IssuedCertificate:
        """Sign a workload certificate for `identity` from a checked CSR.

        Raises CsrError (malformed or unacceptable CSR), IdentityError (the CSR or the
        identity is not one this CA issues for the caller), CaError (the signer expired).
        """
        if identity.trust_domain != self.trust_domain:
            raise IdentityError(
                f"{identity.uri} is not in this CA's trust domain {self.trust_domain!r}"
            )
        public_key = checked_public_key(csr_pem, identity)
        state = self._state
        leaf = self._leaf(state, public_key, [x509.UniformResourceIdentifier(identity.uri)], ttl)
        log.info(
            "issued %s serial %x until %s",
            identity.uri,
            leaf.serial_number,
            leaf.not_valid_after_utc,
        )
        return IssuedCertificate(
            chain=(cert_pem(leaf), *(cert_pem(c) for c in state.intermediates)),
            not_after=leaf.not_valid_after_utc,
            serial=leaf.serial_number,
            signer=state.signer_fingerprint,
        )

    def issue_serving(
        self,
        identity: SpiffeId,
        dns: list[str],
        ips: list[str],
        ttl: dt.timedelta | None = None,
    ) -> tuple[bytes, list[str]]:
        """A serving certificate for the control plane itself: (key PEM, chain PEMs leaf
        first). The key is made here, in memory; the caller must not write it anywhere
        others can read."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri)]
        sans += [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        state = self._state
        leaf = self._leaf(state, key.public_key(), sans, ttl)
        return key_pem(key), [cert_pem(leaf), *(cert_pem(c) for c in state.intermediates)]

    def _leaf(
        self,
        state: CaState,
        public_key: Any,
        sans: list[x509.GeneralName],
        ttl: dt.timedelta | None,
    ) -> x509.Certificate:
        now = self.clock()
        if state.valid_until <= now:
            raise CaError(
                f"the signing certificate in {self.ca_dir} expired on "
                f"{state.valid_until:%Y-%m-%d}; {_advice(state.layout, Role.ROOT)}"
            )
        lifetime = clamp_ttl(self.workload_ttl if ttl is None else ttl)
        spec = LeafSpec(
            public_key=public_key,
            sans=tuple(sans),
            not_before=max(now - BACKDATE, state.signer.not_valid_before_utc),
            not_after=min(now + lifetime, state.valid_until),
        )
        return build_leaf(spec, state.signer, state.signer_key)

    def expiry_warnings(
        self, now: dt.datetime | None = None, warn_within: dt.timedelta = EXPIRY_WARNING
    ) -> list[str]:
        return expiry_warnings(self.ca_dir, self._state, now or self.clock(), warn_within)

    def warnings(self, now: dt.datetime | None = None) -> list[str]:
        """Expiry warnings, key files others can read, and why the last reload failed."""
        out = self.expiry_warnings(now)
        out += [
            f"{path} can be read by group or others; `chmod 600 {path}`"
            for path in files.loose_key_files(self.ca_dir)
        ]
        if self.last_error:
            out.append(
                f"CA files changed but cannot be used (still signing as before): {self.last_error}"
            )
        return out

    def describe(self, now: dt.datetime | None = None) -> CaDescription:
        now = now or self.clock()
        state = self._state
        return CaDescription(
            ca_dir=str(self.ca_dir),
            layout=state.layout.value,
            signer=state.signer_fingerprint,
            certs=describe_state(self.ca_dir, state, now),
            warnings=tuple(self.warnings(now)),
            last_error=self.last_error,
        )
