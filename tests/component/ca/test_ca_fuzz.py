"""Malformed CSRs and tokens thrown at the running CA server: every answer is a 4xx JSON
error (never a 500, never a dropped connection), and a valid request works afterwards.

The server runs on its own event loop in a thread so that hypothesis can drive plain,
synchronous HTTPS requests (one connection per request).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import http.client
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from ca_httpkit import csr_for, csr_pem
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plait.ca import CaServer, CertificateAuthority, TokenIssuer, TokenVerifier
from plait.model.identity import SpiffeId

ORDERS = SpiffeId("cluster.local", "shop", "orders")
HOUR = dt.timedelta(hours=1)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@dataclass
class Target:
    port: int
    context: ssl.SSLContext
    token: str
    issuer: TokenIssuer
    server: CaServer

    def request(
        self,
        body: bytes,
        auth: bytes | None = None,
        *,
        method: str = "POST",
        path: str = "/v1/certificates",
        chunked: bool = False,
    ) -> tuple[int, Any]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=10)
        try:
            conn.putrequest(method, path)
            if auth is not None:
                conn.putheader("Authorization", auth)
            conn.putheader("Content-Type", "application/json")
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                step = 16 * 1024
                for at in range(0, len(body), step):
                    piece = body[at : at + step]
                    conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                conn.send(b"0\r\n\r\n")
            else:
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
            resp = conn.getresponse()
            status, raw, ctype = resp.status, resp.read(), resp.getheader("Content-Type", "")
        finally:
            conn.close()
        assert ctype.startswith("application/json"), (status, raw[:200])
        return status, json.loads(raw)

    def bearer(self, token: str | bytes) -> bytes:
        return b"Bearer " + (token.encode("latin-1") if isinstance(token, str) else token)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    ca = CertificateAuthority.load(
        tmp_path_factory.mktemp("fuzz") / "ca", "cluster.local", create=True
    )
    issuer = TokenIssuer.generate()
    server = CaServer(ca, TokenVerifier(issuer.public_key_pem))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        port = asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        context = ssl.create_default_context(cadata="".join(ca.trust_bundle()))
        token = issuer.mint("shop", "orders", "orders-v1-0", HOUR)
        yield Target(port, context, token, issuer, server)
        status, body = Target(port, context, token, issuer, server).request(
            json.dumps({"csr": csr_for(ORDERS)}).encode(), b"Bearer " + token.encode()
        )
        assert status == 200, body  # a valid request still works after all the abuse
        assert "500" not in str(server.counters())
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def assert_refused(answer: tuple[int, Any], *allowed: int) -> None:
    status, body = answer
    assert 400 <= status < 500, answer
    assert not allowed or status in allowed, answer
    assert isinstance(body, dict) and isinstance(body.get("error"), str), answer


def _pem(text: str) -> str:
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{text}\n-----END CERTIFICATE REQUEST-----\n"


VALID_CSR = csr_for(ORDERS)
TOKEN = TokenIssuer.generate().mint("shop", "orders", "orders-v1-0", HOUR)


def _der(pem: str) -> bytes | None:
    try:
        return base64.b64decode("".join(pem.strip().splitlines()[1:-1]), validate=False)
    except ValueError:
        return None


csr_strings = st.one_of(
    st.text(max_size=300),
    st.integers(min_value=0, max_value=len(VALID_CSR) - 1).map(lambda n: VALID_CSR[:n]),
    st.binary(min_size=1, max_size=400).map(lambda b: _pem(base64.b64encode(b).decode())),
    st.tuples(st.integers(30, len(VALID_CSR) - 40), st.sampled_from("AZaz09+/")).map(
        lambda t: VALID_CSR[: t[0]] + t[1] + VALID_CSR[t[0] + 1 :]
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


@FUZZ
@given(body=st.binary(max_size=2048))
def test_random_bodies(target: Target, body: bytes) -> None:
    assert_refused(target.request(body, target.bearer(target.token)), 400)


@FUZZ
@given(
    body=st.one_of(
        json_values,
        st.fixed_dictionaries({"csr": json_values}),
        st.fixed_dictionaries({"csr": st.just(VALID_CSR), "ttlSeconds": json_values}),
    )
)
def test_wrong_json_shapes(target: Target, body: Any) -> None:
    if isinstance(body, dict) and body.get("csr") == VALID_CSR:
        ttl = body.get("ttlSeconds")
        if ttl is None or (isinstance(ttl, int) and not isinstance(ttl, bool) and ttl > 0):
            return  # a valid request
    assert_refused(target.request(json.dumps(body).encode(), target.bearer(target.token)), 400)


@FUZZ
@given(csr=csr_strings)
def test_malformed_csrs(target: Target, csr: str) -> None:
    if _der(csr) == _der(VALID_CSR):
        return  # a mutation that left the DER as it was (same char, padding bits)
    body = json.dumps({"csr": csr}).encode()
    assert_refused(target.request(body, target.bearer(target.token)), 400)


# What HTTP allows in a field value (RFC 9110 5.5: VCHAR, SP, HTAB, obs-text); anything
# else is refused by aiohttp's parser before the app runs (see test_control_characters).
_FIELD_BYTES = [0x09, *range(0x20, 0x7F), *range(0x80, 0x100)]
token_bytes = st.lists(st.sampled_from(_FIELD_BYTES), max_size=600).map(bytes)


@FUZZ
@given(
    token=st.one_of(
        st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=600),
        token_bytes,
        st.integers(0, 200).flatmap(
            lambda i: st.sampled_from("abcxyzAB-_.").map(
                lambda c: TOKEN[:i] + c + TOKEN[i + 1 :] if i < len(TOKEN) else TOKEN + c
            )
        ),
    )
)
def test_malformed_tokens(target: Target, token: str | bytes) -> None:
    if token == target.token:
        return
    answer = target.request(json.dumps({"csr": VALID_CSR}).encode(), target.bearer(token))
    if answer[0] == 200:  # a mutation that kept the token valid (e.g. base64 padding bits)
        return
    assert_refused(answer, 401)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any]) -> str:
    claims = {
        "iss": "plait-local",
        "aud": "plait-ca",
        "sub": "system:serviceaccount:shop:orders",
        "exp": 4_000_000_000,
        "plait/instance": "orders-v1-0",
    }
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("huge body", 413),
        ("huge chunked body", 413),
        ("non-utf8 body", 400),
        ("deeply nested json", 400),
        ("many SANs", 400),
        ("weak RSA key", 400),
        ("csr with non-ascii", 400),
        ("expired token", 401),
        ("alg none", 401),
        ("alg None with signature", 401),
        ("token too long", 401),
        ("other identity", 403),
        ("unknown path", 404),
        ("wrong method", 405),
    ],
)
def test_hand_made_cases(target: Target, case: str, expect: int) -> None:
    auth = target.bearer(target.token)
    body = json.dumps({"csr": VALID_CSR}).encode()
    kwargs: dict[str, Any] = {}
    if case == "huge body":
        body = b'{"csr": "' + b"A" * 200_000 + b'"}'
    elif case == "huge chunked body":
        body, kwargs = b'{"csr": "' + b"A" * 200_000 + b'"}', {"chunked": True}
    elif case == "non-utf8 body":
        body = b'{"csr": "\xff\xfe\xfd"}'
    elif case == "deeply nested json":
        body = b"[" * 50_000 + b"]" * 50_000
        body = body[:60_000]
    elif case == "many SANs":
        sans: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(f"spiffe://cluster.local/ns/shop/sa/s{i}")
            for i in range(300)
        ]
        body = json.dumps({"csr": csr_pem(sans)}).encode()
    elif case == "weak RSA key":
        weak = rsa.generate_private_key(65537, 1024)
        body = json.dumps(
            {"csr": csr_pem([x509.UniformResourceIdentifier(ORDERS.uri)], weak)}
        ).encode()
    elif case == "csr with non-ascii":
        body = json.dumps({"csr": "-----BEGIN CERTIFICATE REQUEST-----\né\n"}).encode()
    elif case == "expired token":
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        auth = target.bearer(target.issuer.mint("shop", "orders", "o-0", HOUR, now=past))
    elif case == "alg none":
        auth = target.bearer(_unsigned({"alg": "none", "typ": "JWT"}))
    elif case == "alg None with signature":
        auth = target.bearer(_unsigned({"alg": "None"}) + _b64(b"sig"))
    elif case == "token too long":
        auth = target.bearer("a" * 12_000)
    elif case == "other identity":
        body = json.dumps({"csr": csr_for(SpiffeId("cluster.local", "shop", "payments"))}).encode()
    elif case == "unknown path":
        kwargs = {"path": "/v1/../etc/passwd"}
    elif case == "wrong method":
        kwargs = {"method": "PUT"}
    assert_refused(target.request(body, auth, **kwargs), expect)


def test_control_characters_in_a_header_get_a_400_not_a_dropped_connection(
    target: Target,
) -> None:
    """Not valid HTTP, so aiohttp's parser answers (plain text) before the API runs."""
    conn = http.client.HTTPSConnection("127.0.0.1", target.port, context=target.context, timeout=10)
    try:
        conn.putrequest("POST", "/v1/certificates")
        conn.putheader("Authorization", b"Bearer " + target.token.encode() + b"\x01")
        conn.putheader("Content-Length", "2")
        conn.endheaders(b"{}")
        resp = conn.getresponse()
        assert resp.status == 400
    finally:
        conn.close()
