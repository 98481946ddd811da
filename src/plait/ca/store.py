"""Loading the CA directory into one consistent, immutable `CaState` (or a CaFileError
that names the file and says what to do), and making the first root.

The state is read whole and checked whole: key matches certificate, the chain links up
to a root, every CA certificate is a CA. A running CA swaps its state only for another
complete, valid one (see `CertificateAuthority.reload_if_changed`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from cryptography import x509

from plait.ca import files
from plait.ca.files import SigningKey
from plait.ca.pki import fingerprint, is_ca, is_self_signed, issued_by, new_root, same_public_key
from plait.errors import CaFileError


class Layout(StrEnum):
    PLAIT = "plait-made"
    PLUGGED = "plugged-in"


class Role(StrEnum):
    ROOT = "root"
    INTERMEDIATE = "intermediate"
    NEXT_ROOT = "next-root"
    EXTRA_ROOT = "extra-root"


@dataclass(frozen=True)
class CaCert:
    """One certificate of the CA directory, with the file it came from and its role."""

    role: Role
    file: str
    cert: x509.Certificate
    signs: bool = False

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert)

    @property
    def not_after(self) -> dt.datetime:
        return self.cert.not_valid_after_utc


@dataclass(frozen=True)
class CaState:
    """One consistent load of the CA directory. `signer_key` never appears in repr."""

    layout: Layout
    signer: x509.Certificate
    signer_key: SigningKey = field(repr=False)
    intermediates: tuple[x509.Certificate, ...]
    """Sent after every leaf: the signer (unless it is a root) and its issuers below the root."""
    roots: tuple[x509.Certificate, ...]
    """The trust bundle: current root(s), then the next root, then extra roots; no duplicates."""
    certs: tuple[CaCert, ...]
    valid_until: dt.datetime
    """The earliest not_after among the signer, its issuers and its root: a leaf's cap."""

    @property
    def signer_fingerprint(self) -> str:
        return fingerprint(self.signer)


def exists(ca_dir: Path) -> bool:
    """Whether `ca_dir` holds a CA of either layout (complete or not)."""
    return any((ca_dir / n).exists() for n in (files.ROOT_CERT, files.ROOT_KEY, files.PLUGGED_CERT))


def create_root(ca_dir: Path, trust_domain: str, now: dt.datetime) -> None:
    """Make the first self-signed root (key first, 0600; then the certificate)."""
    files.ensure_private_dir(ca_dir)
    cert, key = new_root(trust_domain, now)
    files.write_private(ca_dir / files.ROOT_KEY, files.key_pem(key))
    files.write_public(ca_dir / files.ROOT_CERT, files.cert_pem(cert).encode())


def load_state(ca_dir: Path) -> CaState:
    if (ca_dir / files.PLUGGED_CERT).exists() or (ca_dir / files.PLUGGED_KEY).exists():
        return _load_plugged(ca_dir)
    return _load_plait(ca_dir)


def _require_ca(path: Path, cert: x509.Certificate) -> None:
    if not is_ca(cert):
        raise CaFileError(f"{path}: {cert.subject.rfc4514_string()!r} is not a CA certificate")


def _keyed(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, SigningKey]:
    cert = files.load_cert(cert_path)
    _require_ca(cert_path, cert)
    key = files.load_signing_key(key_path)
    if not same_public_key(cert, key):
        raise CaFileError(
            f"{key_path}: does not match {cert_path.name}; the key and certificate must be "
            "a pair (restore the matching file)"
        )
    return cert, key


def _extra_roots(ca_dir: Path) -> list[x509.Certificate]:
    path = ca_dir / files.EXTRA_ROOTS
    if not path.exists():
        return []
    certs = files.load_certs(path, at_least_one=False)
    for cert in certs:
        _require_ca(path, cert)
    return certs


def _dedup(certs: list[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    seen: dict[str, x509.Certificate] = {}
    for cert in certs:
        seen.setdefault(fingerprint(cert), cert)
    return tuple(seen.values())


def _load_plait(ca_dir: Path) -> CaState:
    root_cert, root_key = ca_dir / files.ROOT_CERT, ca_dir / files.ROOT_KEY
    if not root_cert.exists() and root_key.exists():
        raise CaFileError(
            f"{root_cert}: missing while {files.ROOT_KEY} exists; restore it, or remove "
            f"{files.ROOT_KEY} to let plait make a new root"
        )
    if not root_key.exists():
        raise CaFileError(
            f"{root_key}: missing; restore it, or supply ca-cert.pem, ca-key.pem, "
            "cert-chain.pem and root-cert.pem (a plugged-in CA)"
        )
    next_cert, next_key = ca_dir / files.NEXT_ROOT_CERT, ca_dir / files.NEXT_ROOT_KEY
    if next_cert.exists() != next_key.exists():
        present, absent = (next_cert, next_key) if next_cert.exists() else (next_key, next_cert)
        raise CaFileError(
            f"{absent}: missing while {present.name} exists (an interrupted `plait ca "
            "rotate-root` step?); restore the pair, or finish the step by moving "
            f"{files.NEXT_ROOT_CERT}/{files.NEXT_ROOT_KEY} to {files.ROOT_CERT}/{files.ROOT_KEY}"
        )
    root, key = _keyed(root_cert, root_key)
    if not is_self_signed(root):
        raise CaFileError(
            f"{root_cert}: not self-signed; to sign with an intermediate use the plugged-in "
            "layout (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem)"
        )
    certs = [CaCert(Role.ROOT, files.ROOT_CERT, root, signs=True)]
    bundle = [root]
    if next_cert.exists():
        nxt, _ = _keyed(next_cert, next_key)
        certs.append(CaCert(Role.NEXT_ROOT, files.NEXT_ROOT_CERT, nxt))
        bundle.append(nxt)
    for extra in _extra_roots(ca_dir):
        certs.append(CaCert(Role.EXTRA_ROOT, files.EXTRA_ROOTS, extra))
        bundle.append(extra)
    return CaState(
        layout=Layout.PLAIT,
        signer=root,
        signer_key=key,
        intermediates=(),
        roots=_dedup(bundle),
        certs=tuple(certs),
        valid_until=root.not_valid_after_utc,
    )


def _load_plugged(ca_dir: Path) -> CaState:
    signer_path, chain_path = ca_dir / files.PLUGGED_CERT, ca_dir / files.PLUGGED_CHAIN
    signer, key = _keyed(signer_path, ca_dir / files.PLUGGED_KEY)
    roots = files.load_certs(ca_dir / files.ROOT_CERT)
    for root in roots:
        _require_ca(ca_dir / files.ROOT_CERT, root)
    root_prints = {fingerprint(r) for r in roots}
    chain = files.load_certs(chain_path) if chain_path.exists() else []
    if chain and fingerprint(chain[0]) == fingerprint(signer):
        chain = chain[1:]
    between = [c for c in chain if fingerprint(c) not in root_prints]
    for cert in between:
        _require_ca(chain_path, cert)
    if fingerprint(signer) in root_prints:
        path: list[x509.Certificate] = []
        top = signer
    else:
        path = [signer, *between]
        for child, parent in zip(path, path[1:], strict=False):
            if not issued_by(child, parent):
                raise CaFileError(
                    f"{chain_path}: {child.subject.rfc4514_string()!r} is not issued by the next "
                    f"certificate {parent.subject.rfc4514_string()!r}; list the intermediates "
                    "from ca-cert.pem up to the root, in that order"
                )
        top = path[-1]
    issuer = next((r for r in roots if issued_by(top, r)), None)
    if issuer is None:
        raise CaFileError(
            f"{ca_dir / files.ROOT_CERT}: no root in it issued {top.subject.rfc4514_string()!r} "
            f"(the top of {files.PLUGGED_CERT} + {files.PLUGGED_CHAIN}); supply the matching root"
        )
    signer_print = fingerprint(signer)
    certs = [
        CaCert(Role.ROOT, files.ROOT_CERT, r, signs=fingerprint(r) == signer_print) for r in roots
    ]
    if path:
        certs.append(CaCert(Role.INTERMEDIATE, files.PLUGGED_CERT, signer, signs=True))
        certs += [CaCert(Role.INTERMEDIATE, files.PLUGGED_CHAIN, c) for c in between]
    extras = _extra_roots(ca_dir)
    certs += [CaCert(Role.EXTRA_ROOT, files.EXTRA_ROOTS, c) for c in extras]
    return CaState(
        layout=Layout.PLUGGED,
        signer=signer,
        signer_key=key,
        intermediates=tuple(path),
        roots=_dedup([*roots, *extras]),
        certs=tuple(certs),
        valid_until=min(c.not_valid_after_utc for c in [*path, signer, issuer]),
    )
