"""SDS responses: which secrets, what they hold, and versions that follow the content."""

from __future__ import annotations

import dataclasses

import pytest
import svidkit
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

import sdskit
from plait.agent.identity import WorkloadCertificate, certificate_from, new_key
from plait.agent.sds import SECRET_TYPE_URL, build_response
from plait.model.identity import SpiffeId

WHO = SpiffeId("cluster.local", "shop", "reviews")


def workload_cert() -> WorkloadCertificate:
    key = new_key()
    return certificate_from(svidkit.issued(key.public_key(), WHO.uri), key, WHO)


def secrets(names: list[str], cert: WorkloadCertificate) -> dict[str, secret_pb2.Secret]:
    response = build_response(cert, names, "7")
    assert response.type_url == SECRET_TYPE_URL
    assert response.nonce == "7"
    return sdskit.secrets(response)


def test_default_holds_the_chain_and_the_key() -> None:
    cert = workload_cert()

    (secret,) = secrets(["default"], cert).values()

    tls = secret.tls_certificate
    assert tls.certificate_chain.inline_bytes == b"".join(cert.chain_pem)
    assert tls.private_key.inline_bytes == cert.key_pem


def test_rootca_holds_the_trust_bundle_only() -> None:
    cert = dataclasses.replace(workload_cert(), bundle_pem=(b"ROOT-1\n", b"ROOT-2\n"))

    (secret,) = secrets(["ROOTCA"], cert).values()

    assert secret.validation_context.trusted_ca.inline_bytes == b"ROOT-1\nROOT-2\n"
    assert not secret.HasField("tls_certificate")


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([], {"default", "ROOTCA"}),
        (["ROOTCA", "default"], {"default", "ROOTCA"}),
        (["file-cert:/etc/x.pem"], set()),  # not served by plait
    ],
)
def test_the_requested_names_are_answered(names: list[str], expected: set[str]) -> None:
    assert set(secrets(names, workload_cert())) == expected


def test_the_version_follows_the_content_of_the_answer() -> None:
    first = workload_cert()
    renewed = workload_cert()
    new_roots = dataclasses.replace(first, bundle_pem=(b"OTHER\n",))

    def version(names: list[str], cert: WorkloadCertificate) -> str:
        return str(build_response(cert, names, "1").version_info)

    assert version(["default"], first) == version(["default"], first)
    assert version(["default"], first) != version(["default"], renewed)
    assert version(["ROOTCA"], first) == version(["ROOTCA"], renewed)  # same roots
    assert version(["ROOTCA"], first) != version(["ROOTCA"], new_roots)
    assert version(["default"], first) == version(["default"], new_roots)
