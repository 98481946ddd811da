"""A throwaway CA for agent unit tests: SVIDs signed for a key, as the CA would answer."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plait.agent.caclient import Issued

ROOT_KEY = ec.generate_private_key(ec.SECP256R1())
_NOW = datetime.datetime.now(datetime.UTC)
ROOT = (
    x509.CertificateBuilder()
    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit root")]))
    .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit root")]))
    .public_key(ROOT_KEY.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(_NOW - datetime.timedelta(minutes=5))
    .not_valid_after(_NOW + datetime.timedelta(days=1))
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .sign(ROOT_KEY, hashes.SHA256())
)
ROOT_PEM = ROOT.public_bytes(serialization.Encoding.PEM)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def leaf(public_key: ec.EllipticCurvePublicKey, uris: list[str], ttl_s: int = 3600) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ROOT.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=5))
        .not_valid_after(now + datetime.timedelta(seconds=ttl_s))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=True,
        )
        .sign(ROOT_KEY, hashes.SHA256())
    )
    return pem(cert)


def issued(public_key: ec.EllipticCurvePublicKey, uri: str, ttl_s: int = 3600) -> Issued:
    """The CA's answer for `public_key` and `uri`: leaf, root as bundle, a signer digest."""
    return Issued((leaf(public_key, [uri], ttl_s),), (ROOT_PEM,), "root-digest")
