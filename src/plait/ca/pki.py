"""X.509 building blocks: the self-signed root, workload leaves, fingerprints.

Workload leaves follow the X.509-SVID profile
(https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md) and Istio's shape:
an empty subject with one critical URI SAN, CA:false, digitalSignature+keyEncipherment,
EKU serverAuth+clientAuth, AKI pointing at the signer.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from plait.ca.files import SigningKey

ROOT_LIFETIME = dt.timedelta(days=3650)
BACKDATE = dt.timedelta(seconds=60)
"""Certificates start a minute in the past, so a slightly slow peer clock accepts them."""

CertificatePublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def signature_hash(key: SigningKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def acceptable_key(key: object) -> str | None:
    """None if `key` is an EC P-256/P-384 or RSA 2048..8192 public key, else why not."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name in ("secp256r1", "secp384r1"):
            return None
        return f"EC curve {key.curve.name} is not accepted (use P-256 or P-384)"
    if isinstance(key, rsa.RSAPublicKey):
        if 2048 <= key.key_size <= 8192:
            return None
        return f"RSA key of {key.key_size} bits is not accepted (use 2048 to 8192 bits)"
    return f"{type(key).__name__.lstrip('_')} keys are not accepted (use EC P-256/P-384 or RSA)"


def new_root(trust_domain: str, now: dt.datetime) -> tuple[x509.Certificate, SigningKey]:
    """A self-signed EC P-256 root for ten years; its CN carries the creation time and a
    random tag, so the roots of a rotation are told apart by name, not only by key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
            x509.NameAttribute(
                NameOID.COMMON_NAME,
                f"plait root CA {now:%Y-%m-%dT%H:%M:%SZ} {secrets.token_hex(4)}",
            ),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + ROOT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


@dataclass(frozen=True)
class LeafSpec:
    """What goes into a leaf besides the signer: its key, SANs and validity."""

    public_key: CertificatePublicKey
    sans: tuple[x509.GeneralName, ...]
    not_before: dt.datetime
    not_after: dt.datetime


def build_leaf(
    spec: LeafSpec, signer: x509.Certificate, signer_key: SigningKey
) -> x509.Certificate:
    try:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            signer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        )
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(signer.subject)
        .public_key(spec.public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_LEAF_USAGE, critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        # RFC 5280 4.2.1.6: with an empty subject the SAN extension is critical.
        .add_extension(x509.SubjectAlternativeName(list(spec.sans)), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(spec.public_key), critical=False)
        .add_extension(aki, critical=False)
        .sign(signer_key, signature_hash(signer_key))
    )


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def same_public_key(cert: x509.Certificate, key: SigningKey) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return cert.public_key().public_bytes(enc, fmt) == key.public_key().public_bytes(enc, fmt)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates and CRLs; a leaf signs and enciphers for TLS, nothing else."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


_CA_USAGE = _key_usage(ca=True)
_LEAF_USAGE = _key_usage(ca=False)
