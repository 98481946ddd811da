"""Helpers for the CA tests: CSRs of every shape, chain verification, CA directories."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from plait.model.identity import SpiffeId

TD = "cluster.local"
ORDERS = SpiffeId(TD, "shop", "orders")
PAYMENTS = SpiffeId(TD, "shop", "payments")

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def make_csr(
    sans: list[x509.GeneralName] | None,
    key: Key | None = None,
    *,
    subject: str = "",
) -> bytes:
    """A PEM CSR with exactly these SANs (None: no SAN extension at all)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)] if subject else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def csr_for(identity: SpiffeId, key: Key | None = None) -> bytes:
    return make_csr([x509.UniformResourceIdentifier(identity.uri)], key)


def load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def verify_chain(
    chain: list[str] | tuple[str, ...], bundle: list[str], at: dt.datetime | None = None
) -> list[x509.Certificate]:
    """Verify `chain` (leaf first) as a client certificate against `bundle` with
    cryptography's path builder; returns the built path (leaf ... root)."""
    builder = PolicyBuilder().store(Store([load(p) for p in bundle]))
    if at is not None:
        builder = builder.time(at)
    verified = builder.build_client_verifier().verify(load(chain[0]), [load(p) for p in chain[1:]])
    return list(verified.chain)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def ca_cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: x509.Certificate | None = None,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    not_after: dt.datetime | None = None,
    path_length: int | None = None,
) -> x509.Certificate:
    """A CA certificate, self-signed unless `issuer` is given."""
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key((issuer_key or key).public_key()),
            critical=False,
        )
        .sign(issuer_key or key, hashes.SHA256())
    )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_bytes(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def plugged_in(ca_dir: Path, *, levels: int = 1) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """Istio's plug-in layout with `levels` intermediates below a root: returns
    (root, intermediates signer-first)."""
    ca_dir.mkdir(parents=True, exist_ok=True)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = ca_cert("user root", root_key)
    parent, parent_key = root, root_key
    chain: list[x509.Certificate] = []
    for i in range(levels):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = ca_cert(f"user intermediate {i}", key, issuer=parent, issuer_key=parent_key)
        chain.insert(0, cert)
        parent, parent_key = cert, key
    (ca_dir / "ca-cert.pem").write_bytes(pem(chain[0]))
    (ca_dir / "ca-key.pem").write_bytes(key_bytes(parent_key))
    (ca_dir / "cert-chain.pem").write_bytes(b"".join(pem(c) for c in [*chain, root]))
    (ca_dir / "root-cert.pem").write_bytes(pem(root))
    return root, chain
