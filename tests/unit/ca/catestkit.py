"""Helpers for the CA tests: CSRs of every shape, chain verification, CA directories."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from plait.model.identity import SpiffeId
from testpki import ca_cert, key_bytes, pem, plugged_in

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


__all__ = ["ca_cert", "key_bytes", "pem", "plugged_in"]
