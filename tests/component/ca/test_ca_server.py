"""The CA's HTTPS API on 127.0.0.1:0: issuing, refusing, the bundle, its own TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl

import pytest
from ca_httpkit import CaClient, csr_for, csr_pem
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from plait.ca import CaServer, CertificateAuthority, TokenIdentity, TokenIssuer, rotation
from plait.errors import TokenReviewError
from plait.model.identity import SpiffeId, control_plane_identity

TD = "cluster.local"
ORDERS = SpiffeId(TD, "shop", "orders")
PAYMENTS = SpiffeId(TD, "shop", "payments")
HOUR = dt.timedelta(hours=1)


def _certs(pems: list[str]) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate(p.encode()) for p in pems]


async def test_valid_token_gets_a_certificate(
    client: CaClient, issuer: TokenIssuer, ca: CertificateAuthority, server: CaServer
) -> None:
    token = issuer.mint("shop", "orders", "orders-v1-0", HOUR)
    answer = await client.post({"csr": csr_for(ORDERS), "ttlSeconds": 600}, token)
    assert answer.status == 200, answer.body
    body = answer.body
    assert body["trustBundle"] == ca.trust_bundle()
    assert body["signer"] == ca.signer_fingerprint
    leaf, *rest = _certs(body["certChain"])
    verifier = PolicyBuilder().store(Store(_certs(body["trustBundle"]))).build_client_verifier()
    verified = verifier.verify(leaf, rest)
    assert verified.subjects == [x509.UniformResourceIdentifier(ORDERS.uri)]
    expires = dt.datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
    assert expires == leaf.not_valid_after_utc
    assert (
        dt.timedelta(seconds=590) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=600)
    )
    assert server.counters()["issued"] == 1


async def test_token_for_one_workload_cannot_get_anothers_identity(
    client: CaClient, issuer: TokenIssuer, server: CaServer
) -> None:
    token = issuer.mint("shop", "orders", "orders-v1-0", HOUR)
    answer = await client.post({"csr": csr_for(PAYMENTS)}, token)
    assert answer.status == 403
    assert answer.body == {
        "error": f"the CSR asks for {PAYMENTS.uri!r}, but the caller is {ORDERS.uri}"
    }
    other_ns = SpiffeId(TD, "bank", "orders")
    assert (await client.post({"csr": csr_for(other_ns)}, token)).status == 403
    assert server.counters() == {"issued": 0, "refused": {"forbidden": 2}}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic b3JkZXJzOnB3"}, {"Authorization": "Bearer "}],
    ids=["none", "basic", "empty"],
)
async def test_no_token_is_401(client: CaClient, headers: dict[str, str]) -> None:
    answer = await client.post({"csr": csr_for(ORDERS)}, headers=headers)
    assert answer.status == 401
    assert answer.body == {"error": "missing bearer token"}


async def test_expired_or_foreign_tokens_are_401(client: CaClient, issuer: TokenIssuer) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    expired = issuer.mint("shop", "orders", "orders-v1-0", HOUR, now=past)
    answer = await client.post({"csr": csr_for(ORDERS)}, expired)
    assert (answer.status, answer.body) == (401, {"error": "token has expired"})
    foreign = TokenIssuer.generate().mint("shop", "orders", "orders-v1-0", HOUR)
    answer = await client.post({"csr": csr_for(ORDERS)}, foreign)
    assert (answer.status, answer.body) == (401, {"error": "token signature does not verify"})


async def test_bad_csr_is_400_with_a_reason(client: CaClient, issuer: TokenIssuer) -> None:
    token = issuer.mint("shop", "orders", "orders-v1-0", HOUR)
    two = csr_pem([x509.UniformResourceIdentifier(ORDERS.uri), x509.DNSName("orders")])
    answer = await client.post({"csr": two}, token)
    assert answer.status == 400 and "2 subjectAltNames" in answer.body["error"]
    answer = await client.post({"csr": csr_for(ORDERS), "ttlSeconds": "600"}, token)
    assert answer.status == 400 and "ttlSeconds" in answer.body["error"]


async def test_trust_bundle_needs_no_token(client: CaClient, ca: CertificateAuthority) -> None:
    answer = await client.get("/v1/trust-bundle")
    assert answer.status == 200
    assert answer.body == {"trustBundle": ca.trust_bundle(), "signer": ca.signer_fingerprint}


async def test_serving_certificate_is_the_control_planes_identity(
    server: CaServer, ca: CertificateAuthority
) -> None:
    context = ssl.create_default_context(cadata="".join(ca.trust_bundle()))
    for host in ("127.0.0.1", "localhost"):
        _, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=context, server_hostname=host
        )
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        await writer.wait_closed()
    cert = x509.load_der_x509_certificate(der)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        control_plane_identity(TD).uri
    ]
    creds = server.serving_credentials()
    assert x509.load_pem_x509_certificate(creds.chain[0].encode()) == cert


async def _served_by(port: int, bundle: str) -> bytes:
    """The key identifier of the CA that signed the certificate the server presents."""
    context = ssl.create_default_context(cadata=bundle)
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    cert = x509.load_der_x509_certificate(der)
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier is not None
    return aki.key_identifier


async def test_root_switch_reaches_the_running_server(
    server: CaServer, ca: CertificateAuthority, issuer: TokenIssuer
) -> None:
    old_version = server.serving_credentials().version
    now = dt.datetime.now(dt.UTC)
    rotation.add_next_root(ca.ca_dir, now)
    rotation.switch_root(ca.ca_dir, now)
    new_root = x509.load_pem_x509_certificate((ca.ca_dir / "root-cert.pem").read_bytes())
    bundle = (ca.ca_dir / "root-cert.pem").read_text() + (ca.ca_dir / "extra-roots.pem").read_text()
    deadline = asyncio.get_running_loop().time() + 5
    new_ski = new_root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    while await _served_by(server.port, bundle) != new_ski:
        assert asyncio.get_running_loop().time() < deadline, "serving cert not re-issued"
        await asyncio.sleep(0.05)
    assert server.serving_credentials().version > old_version
    token = issuer.mint("shop", "orders", "orders-v1-0", HOUR)
    updated = CaClient(server.port, [bundle])  # a client that took the bundle after `add`
    try:
        answer = await updated.post({"csr": csr_for(ORDERS)}, token)
    finally:
        await updated.close()
    assert answer.status == 200
    assert answer.body["signer"] == ca.signer_fingerprint
    assert len(answer.body["trustBundle"]) == 2


class _ApiServerAway:
    """An authenticator that cannot judge tokens now (a TokenReview's API server away)."""

    async def authenticate(self, token: str) -> TokenIdentity:
        raise TokenReviewError("cannot reach the API server: ConnectError")


async def test_an_authenticator_that_cannot_judge_is_503_not_401(
    ca: CertificateAuthority,
) -> None:
    srv = CaServer(ca, _ApiServerAway())
    await srv.start()
    client = CaClient(srv.port, ca.trust_bundle())
    try:
        answer = await client.post({"csr": csr_for(ORDERS)}, "a-token")
        assert answer.status == 503
        assert answer.body == {"error": "cannot reach the API server: ConnectError"}
        assert srv.counters()["refused"] == {"unavailable": 1}
    finally:
        await client.close()
        await srv.stop()
