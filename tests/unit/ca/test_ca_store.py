"""CA directory layouts: a plugged-in intermediate CA (Istio's layout) and broken files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from catestkit import ORDERS, TD, ca_cert, csr_for, key_bytes, load, pem, plugged_in, verify_chain
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from plait.ca import CertificateAuthority, Layout
from plait.errors import CaFileError


def test_plugged_in_intermediate_signs_and_sends_its_chain(tmp_path: Path) -> None:
    root, (intermediate,) = plugged_in(tmp_path / "ca")
    ca = CertificateAuthority.load(tmp_path / "ca", TD, create=True)
    assert ca.layout is Layout.PLUGGED
    assert not (tmp_path / "ca" / "root-key.pem").exists()  # nothing made on top
    issued = ca.sign(csr_for(ORDERS), ORDERS)
    assert len(issued.chain) == 2 and load(issued.chain[1]) == intermediate
    assert ca.trust_bundle() == [pem(root).decode()]
    path = verify_chain(issued.chain, ca.trust_bundle())
    assert path == [load(issued.leaf), intermediate, root]
    assert issued.signer == ca.signer_fingerprint
    roles = {(c.role, Path(c.file).name, c.signs) for c in ca.describe().certs}
    assert roles == {("root", "root-cert.pem", False), ("intermediate", "ca-cert.pem", True)}


def test_two_intermediates(tmp_path: Path) -> None:
    root, chain = plugged_in(tmp_path / "ca", levels=2)
    ca = CertificateAuthority.load(tmp_path / "ca", TD)
    issued = ca.sign(csr_for(ORDERS), ORDERS)
    assert [load(p) for p in issued.chain[1:]] == chain
    assert verify_chain(issued.chain, ca.trust_bundle())[-1] == root


def test_chain_file_without_the_signer_first_is_accepted(tmp_path: Path) -> None:
    root, chain = plugged_in(tmp_path / "ca", levels=2)
    (tmp_path / "ca" / "cert-chain.pem").write_bytes(pem(chain[1]) + pem(root))
    ca = CertificateAuthority.load(tmp_path / "ca", TD)
    verify_chain(ca.sign(csr_for(ORDERS), ORDERS).chain, ca.trust_bundle())


def test_plugged_in_root_signing_directly(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    key = ec.generate_private_key(ec.SECP384R1())
    root = ca_cert("user root", key)
    for name in ("ca-cert.pem", "root-cert.pem", "cert-chain.pem"):
        (ca_dir / name).write_bytes(pem(root))
    (ca_dir / "ca-key.pem").write_bytes(key_bytes(key))
    ca = CertificateAuthority.load(ca_dir, TD)
    issued = ca.sign(csr_for(ORDERS), ORDERS)
    assert len(issued.chain) == 1
    verify_chain(issued.chain, ca.trust_bundle())


def test_leaf_is_capped_by_the_intermediate(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = ca_cert("root", root_key)
    soon = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=1)
    inter = ca_cert("inter", key, issuer=root, issuer_key=root_key, not_after=soon)
    (ca_dir / "ca-cert.pem").write_bytes(pem(inter))
    (ca_dir / "ca-key.pem").write_bytes(key_bytes(key))
    (ca_dir / "cert-chain.pem").write_bytes(pem(inter) + pem(root))
    (ca_dir / "root-cert.pem").write_bytes(pem(root))
    ca = CertificateAuthority.load(ca_dir, TD)
    assert ca.sign(csr_for(ORDERS), ORDERS).not_after == soon
    (warning,) = ca.expiry_warnings()
    assert "ca-cert.pem" in warning and "intermediate" in warning


def _broken(ca_dir: Path, name: str, data: bytes) -> None:
    (ca_dir / name).write_bytes(data)


def test_mismatched_key_names_the_file(tmp_path: Path) -> None:
    plugged_in(tmp_path / "ca")
    other = ec.generate_private_key(ec.SECP256R1())
    _broken(tmp_path / "ca", "ca-key.pem", key_bytes(other))
    with pytest.raises(CaFileError, match=r"ca-key.pem: does not match ca-cert.pem"):
        CertificateAuthority.load(tmp_path / "ca", TD)


def test_chain_in_wrong_order_names_the_chain_file(tmp_path: Path) -> None:
    root, chain = plugged_in(tmp_path / "ca", levels=3)
    _broken(tmp_path / "ca", "cert-chain.pem", pem(chain[0]) + pem(chain[2]) + pem(chain[1]))
    with pytest.raises(CaFileError, match=r"cert-chain.pem: .* is not issued by the next"):
        CertificateAuthority.load(tmp_path / "ca", TD)


def test_foreign_root_names_the_root_file(tmp_path: Path) -> None:
    plugged_in(tmp_path / "ca")
    stranger = ca_cert("stranger", ec.generate_private_key(ec.SECP256R1()))
    _broken(tmp_path / "ca", "root-cert.pem", pem(stranger))
    with pytest.raises(CaFileError, match=r"root-cert.pem: no root in it issued"):
        CertificateAuthority.load(tmp_path / "ca", TD)


def test_encrypted_key_is_explained(tmp_path: Path) -> None:
    plugged_in(tmp_path / "ca")
    key = ec.generate_private_key(ec.SECP256R1())
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    _broken(tmp_path / "ca", "ca-key.pem", encrypted)
    with pytest.raises(CaFileError, match="encrypted"):
        CertificateAuthority.load(tmp_path / "ca", TD)


def test_garbage_certificate_names_the_file(tmp_path: Path) -> None:
    plugged_in(tmp_path / "ca")
    _broken(tmp_path / "ca", "ca-cert.pem", b"-----BEGIN CERTIFICATE-----\nnope\n")
    with pytest.raises(CaFileError, match=r"ca-cert.pem: (not a list of PEM|holds no)"):
        CertificateAuthority.load(tmp_path / "ca", TD)


def test_leaf_as_signer_is_refused(tmp_path: Path) -> None:
    plugged_in(tmp_path / "ca")
    ca = CertificateAuthority.load(tmp_path / "other", TD, create=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    issued = ca.sign(csr_for(ORDERS, leaf_key), ORDERS)
    _broken(tmp_path / "ca", "ca-cert.pem", issued.leaf.encode())
    _broken(tmp_path / "ca", "ca-key.pem", key_bytes(leaf_key))
    with pytest.raises(CaFileError, match="not a CA certificate"):
        CertificateAuthority.load(tmp_path / "ca", TD)


def test_root_key_without_certificate_is_not_silently_replaced(tmp_path: Path) -> None:
    CertificateAuthority.load(tmp_path / "ca", TD, create=True)
    (tmp_path / "ca" / "root-cert.pem").unlink()
    with pytest.raises(CaFileError, match="root-cert.pem: missing while root-key.pem exists"):
        CertificateAuthority.load(tmp_path / "ca", TD, create=True)


def test_interrupted_switch_is_explained(tmp_path: Path) -> None:
    CertificateAuthority.load(tmp_path / "ca", TD, create=True)
    (tmp_path / "ca" / "next-root-cert.pem").write_text(
        (tmp_path / "ca" / "root-cert.pem").read_text()
    )
    with pytest.raises(CaFileError, match="next-root-key.pem: missing .* interrupted"):
        CertificateAuthority.load(tmp_path / "ca", TD)
