"""ServingCertificate: the control plane's own credentials, renewed at half-life and when
the signer or the trust bundle changes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from catestkit import TD, load, verify_chain
from cryptography import x509

from plait.ca import CertificateAuthority, ServingCertificate, rotation
from plait.model.identity import control_plane_identity


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def test_serving_credentials_renew_when_due(tmp_path: Path) -> None:
    clock = Clock()
    ca = CertificateAuthority.load(tmp_path / "ca", TD, clock=clock, create=True)
    serving = ServingCertificate(ca, ttl=dt.timedelta(hours=2))
    first = serving.current()
    assert first.version == 1 and serving.current() is first
    leaf = load(first.chain[0])
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert control_plane_identity(TD).uri in sans.get_values_for_type(
        x509.UniformResourceIdentifier
    )
    verify_chain(first.chain, list(first.trust_bundle))
    assert "PRIVATE" not in repr(first) and first.key_pem.startswith(b"-----BEGIN PRIVATE KEY")

    clock.now += dt.timedelta(minutes=59)
    assert serving.current() is first
    clock.now += dt.timedelta(minutes=2)  # past half-life
    second = serving.current()
    assert second.version == 2 and second.key_pem != first.key_pem

    rotation.add_next_root(ca.ca_dir, clock.now)
    ca.reload_if_changed()
    third = serving.current()  # the bundle changed: the xDS server must trust both roots
    assert third.version == 3 and len(third.trust_bundle) == 2

    rotation.switch_root(ca.ca_dir, clock.now)
    ca.reload_if_changed()
    fourth = serving.current()
    assert fourth.version == 4
    verify_chain(fourth.chain, [fourth.trust_bundle[0]], at=clock.now)  # the new root signs
