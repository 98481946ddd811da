"""Test certificates made with `cryptography`: self-signed ones and a small CA.

Importable from every test directory (tests/conftest.py puts this directory on sys.path).
Keys are P-256; certificates are valid from 5 minutes ago for a day.
"""

from __future__ import annotations

import datetime
import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None = None,
    signer: ec.EllipticCurvePrivateKey | None = None,
    *,
    ca: bool = False,
) -> x509.Certificate:
    """Self-signed unless `issuer`/`signer` are given; a CA, or a leaf with `subject` as SAN."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer or _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), False)
    return builder.sign(signer or key, hashes.SHA256())


def _write(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, suffix: str
) -> tuple[Path, Path]:
    cert_file, key_file = directory / f"{name}{suffix}", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def self_signed(directory: Path, name: str, suffix: str = ".pem") -> tuple[Path, Path]:
    """A self-signed certificate for `name` (`NAME{suffix}`) and its key (`NAME.key`)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return _write(directory, name, _certificate(name, key), key, suffix)


def ca_and_hosts(directory: Path, hosts: list[str]) -> Path:
    """A CA (`ca.crt`) and, per host, `HOST.crt`/`HOST.key` signed by it; returns ca.crt."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("plait test CA", ca_key, ca=True)
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for host in hosts:
        key = ec.generate_private_key(ec.SECP256R1())
        _write(directory, host, _certificate(host, key, ca.subject, ca_key), key, ".crt")
    return directory / "ca.crt"


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


def key_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def plugged_in(
    ca_dir: Path, *, levels: int = 1, not_after: dt.datetime | None = None
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """Istio's plug-in layout with `levels` intermediates below a root (the intermediates
    expire at `not_after`, default in a year): returns (root, intermediates signer-first)."""
    ca_dir.mkdir(parents=True, exist_ok=True)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = ca_cert("user root", root_key)
    parent, parent_key = root, root_key
    chain: list[x509.Certificate] = []
    for i in range(levels):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = ca_cert(
            f"user intermediate {i}", key, issuer=parent, issuer_key=parent_key, not_after=not_after
        )
        chain.insert(0, cert)
        parent, parent_key = cert, key
    (ca_dir / "ca-cert.pem").write_bytes(pem(chain[0]))
    (ca_dir / "ca-key.pem").write_bytes(key_bytes(parent_key))
    (ca_dir / "cert-chain.pem").write_bytes(b"".join(pem(c) for c in [*chain, root]))
    (ca_dir / "root-cert.pem").write_bytes(pem(root))
    return root, chain
