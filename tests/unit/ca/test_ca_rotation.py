"""Root rotation: add (trusted, not signing), switch (signs, old still trusted), finish."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from catestkit import ORDERS, TD, csr_for, load, plugged_in, verify_chain
from cryptography.x509.verification import VerificationError

from plait.ca import CertificateAuthority, rotation
from plait.errors import RotationError

NOW = dt.datetime.now(dt.UTC)


def test_full_rotation_without_a_gap_in_trust(tmp_path: Path) -> None:
    ca = CertificateAuthority.load(tmp_path / "ca", TD, create=True)
    old_root = ca.trust_bundle()[0]
    old_cert = ca.sign(csr_for(ORDERS), ORDERS)

    rotation.add_next_root(ca.ca_dir, NOW)
    assert stat.S_IMODE(os.stat(ca.ca_dir / "next-root-key.pem").st_mode) == 0o600
    assert ca.reload_if_changed()
    new_root = (ca.ca_dir / "next-root-cert.pem").read_text()
    assert ca.trust_bundle() == [old_root, new_root]
    added = ca.sign(csr_for(ORDERS), ORDERS)
    assert verify_chain(added.chain, [old_root])  # the old root still signs
    assert rotation.phase(ca.ca_dir) is rotation.Phase.ADDED

    rotation.switch_root(ca.ca_dir, NOW)
    assert ca.reload_if_changed()
    assert ca.trust_bundle() == [new_root, old_root]
    switched = ca.sign(csr_for(ORDERS), ORDERS)
    assert switched.signer != old_cert.signer
    verify_chain(switched.chain, [new_root])
    with pytest.raises(VerificationError):
        verify_chain(switched.chain, [old_root])
    verify_chain(old_cert.chain, ca.trust_bundle())  # still valid during the window
    assert (ca.ca_dir / "extra-roots.pem").read_text() == old_root
    assert not (ca.ca_dir / "next-root-key.pem").exists()
    assert stat.S_IMODE(os.stat(ca.ca_dir / "root-key.pem").st_mode) == 0o600
    roles = [c.role for c in ca.describe().certs]
    assert roles == ["root", "extra-root"]

    with pytest.raises(RotationError, match="less than 24 h"):
        rotation.finish_rotation(ca.ca_dir, NOW)
    # the switch time is extra-roots.pem's mtime (real time, not NOW, which was taken at
    # import and may be minutes old by now in a long test run)
    a_day_later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1, minutes=1)
    rotation.finish_rotation(ca.ca_dir, a_day_later)
    assert ca.reload_if_changed()
    assert ca.trust_bundle() == [new_root]
    with pytest.raises(VerificationError):
        verify_chain(old_cert.chain, ca.trust_bundle())
    assert rotation.phase(ca.ca_dir) is rotation.Phase.IDLE


def test_new_ca_started_after_switch_uses_the_new_root(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    first = CertificateAuthority.load(ca_dir, TD, create=True)
    rotation.add_next_root(ca_dir, NOW)
    rotation.switch_root(ca_dir, NOW)
    restarted = CertificateAuthority.load(ca_dir, TD, create=True)
    assert restarted.signer_fingerprint != first.signer_fingerprint
    assert len(restarted.trust_bundle()) == 2
    assert load(restarted.trust_bundle()[0]).subject.rfc4514_string().endswith(f"O={TD}")


def test_steps_out_of_order_are_refused(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    CertificateAuthority.load(ca_dir, TD, create=True)
    with pytest.raises(RotationError, match="--step add"):
        rotation.switch_root(ca_dir, NOW)
    with pytest.raises(RotationError, match="--step switch"):
        rotation.finish_rotation(ca_dir, NOW)
    rotation.add_next_root(ca_dir, NOW)
    with pytest.raises(RotationError, match="already"):
        rotation.add_next_root(ca_dir, NOW)
    rotation.switch_root(ca_dir, NOW)
    with pytest.raises(RotationError, match="not finished"):
        rotation.add_next_root(ca_dir, NOW)
    rotation.finish_rotation(ca_dir, NOW, force=True)
    rotation.add_next_root(ca_dir, NOW)  # a new rotation may start


def test_plugged_in_ca_is_refused(tmp_path: Path) -> None:
    plugged_in(tmp_path / "ca")
    with pytest.raises(RotationError, match="plugged-in"):
        rotation.add_next_root(tmp_path / "ca", NOW)


def test_running_ca_survives_the_half_done_switch(tmp_path: Path) -> None:
    """switch moves the key before the certificate; a reload in between keeps signing."""
    ca = CertificateAuthority.load(tmp_path / "ca", TD, create=True)
    before = ca.signer_fingerprint
    rotation.add_next_root(ca.ca_dir, NOW)
    ca.reload_if_changed()
    os.replace(ca.ca_dir / "next-root-key.pem", ca.ca_dir / "root-key.pem")
    assert not ca.reload_if_changed()
    assert ca.signer_fingerprint == before and ca.last_error
    verify_chain(ca.sign(csr_for(ORDERS), ORDERS).chain, ca.trust_bundle())
    os.replace(ca.ca_dir / "next-root-cert.pem", ca.ca_dir / "root-cert.pem")
    assert ca.reload_if_changed()
    assert ca.signer_fingerprint != before and ca.last_error is None
