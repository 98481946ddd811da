"""The control plane's own serving credentials (CA HTTPS and the xDS gRPC server).

`ServingCertificate` re-issues the certificate from the CA at half-life, when the CA's
signer changes (a root switch) and when the trust bundle changes (a root added or
dropped: the xDS server must then verify clients against the new bundle). Each new set
gets a higher `version`, so a server can tell whether to reload. The key is made in
memory and never written to disk by this module.

Thread-safe: `current()` may be called from gRPC's credential-fetch threads and from the
event loop.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

from cryptography import x509

from plait.ca.authority import CertificateAuthority
from plait.model.identity import SpiffeId, control_plane_identity


@dataclass(frozen=True)
class ServingCredentials:
    """A private key, its certificate chain (leaf first) and the trust bundle to verify
    peers with. `repr` never shows the key."""

    key_pem: bytes
    chain: tuple[str, ...]
    trust_bundle: tuple[str, ...]
    not_after: dt.datetime
    version: int

    @property
    def chain_pem(self) -> bytes:
        return "".join(self.chain).encode("ascii")

    @property
    def trust_bundle_pem(self) -> bytes:
        return "".join(self.trust_bundle).encode("ascii")

    def __repr__(self) -> str:
        return f"ServingCredentials(version={self.version}, not_after={self.not_after.isoformat()})"


class ServingCertificate:
    """Keeps a fresh serving certificate for `identity` (default: the control plane's)."""

    def __init__(
        self,
        ca: CertificateAuthority,
        *,
        identity: SpiffeId | None = None,
        dns: tuple[str, ...] = ("localhost",),
        ips: tuple[str, ...] = ("127.0.0.1",),
        ttl: dt.timedelta | None = None,
    ) -> None:
        self.ca = ca
        self.identity = identity or control_plane_identity(ca.trust_domain)
        self.dns, self.ips, self.ttl = list(dns), list(ips), ttl
        self._lock = threading.Lock()
        self._current: ServingCredentials | None = None
        self._renew_at = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._issued_for: tuple[str, tuple[str, ...]] = ("", ())

    def current(self) -> ServingCredentials:
        """The credentials to serve with now, re-issued first if they are due."""
        with self._lock:
            bundle = tuple(self.ca.trust_bundle())
            basis = (self.ca.signer_fingerprint, bundle)
            cur = self._current
            if cur is None or basis != self._issued_for or self.ca.clock() >= self._renew_at:
                cur = self._issue(bundle, 1 if cur is None else cur.version + 1)
                self._issued_for, self._current = basis, cur
            return cur

    def _issue(self, bundle: tuple[str, ...], version: int) -> ServingCredentials:
        now = self.ca.clock()
        key_pem, chain = self.ca.issue_serving(self.identity, self.dns, self.ips, self.ttl)
        not_after = x509.load_pem_x509_certificate(chain[0].encode()).not_valid_after_utc
        self._renew_at = now + (not_after - now) / 2
        return ServingCredentials(key_pem, tuple(chain), bundle, not_after, version)
