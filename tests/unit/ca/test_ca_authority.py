"""CertificateAuthority: first start, signing, refusals, serving certs, warnings, reload."""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from catestkit import (
    ORDERS,
    PAYMENTS,
    TD,
    Key,
    ca_cert,
    csr_for,
    key_bytes,
    load,
    make_csr,
    pem,
    verify_chain,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from plait.ca import MAX_TTL, MIN_TTL, CertificateAuthority
from plait.errors import CaError, CaFileError, CsrError, IdentityError
from plait.model.identity import SpiffeId, control_plane_identity


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.load(tmp_path / "ca", TD, create=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_first_start_makes_a_root_with_private_permissions(tmp_path: Path) -> None:
    ca_dir = tmp_path / "mesh" / ".plait" / "ca"
    CertificateAuthority.load(ca_dir, TD, create=True)
    assert mode(ca_dir / "root-key.pem") == 0o600
    assert mode(ca_dir) == 0o700
    root = load((ca_dir / "root-cert.pem").read_text())
    basic = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = root.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert root.not_valid_after_utc - root.not_valid_before_utc > dt.timedelta(days=3640)
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)


def test_loose_existing_directory_is_tightened(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir(mode=0o755)
    ca_dir.chmod(0o755)
    CertificateAuthority.load(ca_dir, TD, create=True)
    assert mode(ca_dir) == 0o700


def test_second_start_reuses_the_root(tmp_path: Path) -> None:
    first = CertificateAuthority.load(tmp_path / "ca", TD, create=True)
    second = CertificateAuthority.load(tmp_path / "ca", TD, create=True)
    assert first.signer_fingerprint == second.signer_fingerprint


def test_signed_leaf_chains_to_the_root_with_svid_fields(ca: CertificateAuthority) -> None:
    issued = ca.sign(csr_for(ORDERS), ORDERS, dt.timedelta(hours=1))
    path = verify_chain(issued.chain, ca.trust_bundle())
    assert path[-1] == load(ca.trust_bundle()[0])
    leaf = load(issued.leaf)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical and list(san.value) == [x509.UniformResourceIdentifier(ORDERS.uri)]
    assert leaf.subject == x509.Name([])
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_ski = path[-1].extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    assert issued.signer == ca.signer_fingerprint
    assert issued.not_after == leaf.not_valid_after_utc
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime == dt.timedelta(hours=1, seconds=60)


def test_only_the_public_key_is_taken_from_the_csr(ca: CertificateAuthority) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    issued = ca.sign(
        make_csr([x509.UniformResourceIdentifier(ORDERS.uri)], key, subject="admin"), ORDERS
    )
    leaf = load(issued.leaf)
    assert leaf.public_key() == key.public_key()
    assert leaf.subject == x509.Name([])


def test_serials_are_random_and_distinct(ca: CertificateAuthority) -> None:
    serials = {ca.sign(csr_for(ORDERS), ORDERS).serial for _ in range(5)}
    assert len(serials) == 5 and all(s.bit_length() > 64 for s in serials)


def test_default_ttl_and_clamping(tmp_path: Path) -> None:
    ca = CertificateAuthority.load(
        tmp_path / "ca", TD, workload_ttl=dt.timedelta(minutes=30), create=True
    )

    def lifetime(ttl: dt.timedelta | None) -> dt.timedelta:
        leaf = load(ca.sign(csr_for(ORDERS), ORDERS, ttl).leaf)
        return leaf.not_valid_after_utc - leaf.not_valid_before_utc - dt.timedelta(seconds=60)

    assert lifetime(None) == dt.timedelta(minutes=30)
    assert lifetime(dt.timedelta(seconds=1)) == MIN_TTL
    assert lifetime(dt.timedelta(days=10_000)) == MAX_TTL


def test_leaf_never_outlives_its_signer(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    soon = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=2)
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    (ca_dir / "root-cert.pem").write_bytes(pem(ca_cert("short root", key, not_after=soon)))
    (ca_dir / "root-key.pem").write_bytes(key_bytes(key))
    ca = CertificateAuthority.load(ca_dir, TD)
    assert ca.sign(csr_for(ORDERS), ORDERS, dt.timedelta(days=1)).not_after == soon


def test_expired_signer_refuses_to_sign(tmp_path: Path) -> None:
    ca = CertificateAuthority.load(tmp_path / "ca", TD, create=True)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3651)
    ca.clock = lambda: later
    with pytest.raises(CaError, match="expired"):
        ca.sign(csr_for(ORDERS), ORDERS)


@pytest.mark.parametrize(
    ("sans", "error", "message"),
    [
        (None, CsrError, "no subjectAltName"),
        (
            [
                x509.UniformResourceIdentifier(ORDERS.uri),
                x509.UniformResourceIdentifier(PAYMENTS.uri),
            ],
            CsrError,
            "2 subjectAltNames",
        ),
        (
            [x509.UniformResourceIdentifier(ORDERS.uri), x509.DNSName("orders")],
            CsrError,
            "2 subjectAltNames",
        ),
        ([x509.DNSName("orders.shop.svc")], CsrError, "is a DNSName"),
        ([x509.UniformResourceIdentifier(PAYMENTS.uri)], IdentityError, "asks for"),
        (
            [x509.UniformResourceIdentifier("spiffe://evil.example/ns/shop/sa/orders")],
            IdentityError,
            "asks for",
        ),
    ],
)
def test_csr_san_refusals(
    ca: CertificateAuthority,
    sans: list[x509.GeneralName] | None,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        ca.sign(make_csr(sans), ORDERS)


def test_identity_outside_the_trust_domain_is_refused(ca: CertificateAuthority) -> None:
    other = SpiffeId("evil.example", "shop", "orders")
    with pytest.raises(IdentityError, match="trust domain"):
        ca.sign(csr_for(other), other)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(lambda: rsa.generate_private_key(65537, 1024), id="rsa1024"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP521R1()), id="p521"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256K1()), id="secp256k1"),
    ],
)
def test_weak_or_unexpected_keys_are_refused(
    ca: CertificateAuthority, key: Callable[[], Key]
) -> None:
    with pytest.raises(CsrError, match="not accepted"):
        ca.sign(csr_for(ORDERS, key()), ORDERS)


def test_rsa_2048_is_accepted(ca: CertificateAuthority) -> None:
    issued = ca.sign(csr_for(ORDERS, rsa.generate_private_key(65537, 2048)), ORDERS)
    verify_chain(issued.chain, ca.trust_bundle())


def test_corrupted_signature_is_refused(ca: CertificateAuthority) -> None:
    csr = x509.load_pem_x509_csr(csr_for(ORDERS))
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    at = bytes(der).rindex(csr.signature) + len(csr.signature) - 5
    der[at] ^= 0x55  # flip bits inside the ECDSA signature's s value
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CsrError, match="signature does not verify"):
        ca.sign(tampered, ORDERS)


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", b"\xff\xfe" * 10],
)
def test_malformed_csrs_are_refused(ca: CertificateAuthority, data: bytes) -> None:
    with pytest.raises(CsrError, match="not a PEM certificate signing request"):
        ca.sign(data, ORDERS)


def test_issue_serving_has_uri_dns_and_ip_sans(ca: CertificateAuthority) -> None:
    identity = control_plane_identity(TD)
    key_pem, chain = ca.issue_serving(identity, ["localhost"], ["127.0.0.1"], dt.timedelta(hours=1))
    leaf = load(chain[0])
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [identity.uri]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert b"PRIVATE KEY" in key_pem
    verify_chain(chain, ca.trust_bundle())


def test_repr_and_logs_hold_no_key_material(
    ca: CertificateAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key_text = (ca.ca_dir / "root-key.pem").read_text()
    body = "".join(key_text.splitlines()[1:-1])
    ca.sign(csr_for(ORDERS), ORDERS)
    key_pem, _ = ca.issue_serving(control_plane_identity(TD), [], [])
    for text in (repr(ca), caplog.text, str(ca.describe().to_json())):
        assert "PRIVATE" not in text and body[:40] not in text
        assert key_pem.decode().splitlines()[1] not in text


def test_expiry_warnings_name_the_file_date_and_action(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    (ca_dir / "root-cert.pem").write_bytes(pem(ca_cert("old root", key, not_after=expiry)))
    (ca_dir / "root-key.pem").write_bytes(key_bytes(key))
    ca = CertificateAuthority.load(ca_dir, TD)
    (warning,) = ca.expiry_warnings()
    assert str(ca_dir / "root-cert.pem") in warning
    assert f"{expiry:%Y-%m-%d}" in warning and "rotate-root" in warning
    assert ca.expiry_warnings(warn_within=dt.timedelta(days=5)) == []
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=11)
    (expired,) = ca.expiry_warnings(later)
    assert "expired on" in expired
    (info,) = ca.describe().certs
    assert info.role == "root" and info.signs and info.days_left in (9, 10)


def test_fresh_root_has_no_warnings(ca: CertificateAuthority) -> None:
    assert ca.warnings() == []


def test_loose_key_file_is_warned_about(ca: CertificateAuthority) -> None:
    (ca.ca_dir / "root-key.pem").chmod(0o644)
    assert any("chmod 600" in w for w in ca.warnings())


def test_reload_picks_up_a_new_root_and_keeps_last_good_on_broken_files(
    ca: CertificateAuthority,
) -> None:
    before = ca.signer_fingerprint
    assert ca.reload_if_changed() is False
    (ca.ca_dir / "root-key.pem").write_bytes(b"not a key")
    assert ca.reload_if_changed() is False
    assert ca.signer_fingerprint == before and ca.last_error and "root-key.pem" in ca.last_error
    assert any("cannot be used" in w for w in ca.warnings())
    ca.sign(csr_for(ORDERS), ORDERS)  # still signs with the last good key

    key = ec.generate_private_key(ec.SECP256R1())
    (ca.ca_dir / "root-cert.pem").write_bytes(pem(ca_cert("replacement root", key)))
    (ca.ca_dir / "root-key.pem").write_bytes(key_bytes(key))
    generation = ca.generation
    assert ca.reload_if_changed() is True
    assert ca.signer_fingerprint != before and ca.last_error is None
    assert ca.generation == generation + 1
    verify_chain(ca.sign(csr_for(ORDERS), ORDERS).chain, ca.trust_bundle())


def test_load_without_a_ca_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CaFileError, match="no CA here"):
        CertificateAuthority.load(tmp_path / "nothing", TD)
