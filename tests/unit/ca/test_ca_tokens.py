"""Workload tokens: minted by plait up, verified by the CA; only EdDSA, all claims checked."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import stat
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from plait.ca import TokenIdentity, TokenIssuer, TokenVerifier
from plait.errors import TokenError

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer.generate()


@pytest.fixture
def verifier(issuer: TokenIssuer) -> TokenVerifier:
    return TokenVerifier(issuer.public_key_pem)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims: dict[str, Any] = {
        "iss": "plait-local",
        "aud": "plait-ca",
        "sub": "system:serviceaccount:shop:orders",
        "iat": now,
        "exp": now + 3600,
        "plait/instance": "orders-v1-0",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(key: Ed25519PrivateKey, **overrides: Any) -> str:
    return jwt.encode(_claims(**overrides), key, algorithm="EdDSA")


def test_valid_token(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token = issuer.mint("shop", "orders", "orders-v1-0", HOUR)
    identity = verifier.verify(token)
    assert identity == TokenIdentity("shop", "orders", "orders-v1-0")
    assert identity.spiffe_id("cluster.local").uri == "spiffe://cluster.local/ns/shop/sa/orders"
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "system:serviceaccount:shop:orders"
    assert (claims["iss"], claims["aud"]) == ("plait-local", "plait-ca")


def test_key_file_is_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "token-key.pem"
    first = TokenIssuer.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    second = TokenIssuer.load_or_create(path)
    assert first.public_key_pem == second.public_key_pem
    TokenVerifier(first.public_key_pem).verify(second.mint("a", "b", "c", HOUR))
    assert "PRIVATE" not in repr(first)


def test_wrong_kind_of_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_text("nope")
    with pytest.raises(TokenError, match="not an unencrypted Ed25519"):
        TokenIssuer.load_or_create(path)


def _reason(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(TokenError) as info:
        verifier.verify(token)
    message = str(info.value)
    assert token not in message or len(token) < 4
    return message


def test_expired(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    token = issuer.mint("shop", "orders", "orders-v1-0", HOUR, now=past)
    assert _reason(verifier, token) == "token has expired"


def test_wrong_key(verifier: TokenVerifier) -> None:
    token = TokenIssuer.generate().mint("shop", "orders", "orders-v1-0", HOUR)
    assert _reason(verifier, token) == "token signature does not verify"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "someone-else"}, "token audience is not plait-ca"),
        ({"iss": "kubernetes"}, "token issuer is not plait-local"),
        ({"exp": None}, "token lacks the 'exp' claim"),
        ({"aud": None}, "token lacks the 'aud' claim"),
        ({"sub": None}, "token lacks the 'sub' claim"),
        ({"plait/instance": None}, "token lacks the 'plait/instance' claim"),
        ({"sub": "orders"}, "token subject is not"),
        ({"sub": "system:serviceaccount:shop"}, "token subject is not"),
        ({"sub": "system:serviceaccount:shop:orders:extra"}, "token subject is not"),
        ({"sub": "system:serviceaccount:sh/op:orders"}, "token subject is not"),
        ({"sub": ["system:serviceaccount:shop:orders"]}, "token"),
        ({"plait/instance": 7}, "instance"),
        ({"nbf": int(dt.datetime.now(dt.UTC).timestamp()) + 3600}, "not valid yet"),
        ({"exp": "tomorrow"}, "token"),
    ],
)
def test_claims_are_checked(
    issuer: TokenIssuer, verifier: TokenVerifier, overrides: dict[str, Any], reason: str
) -> None:
    assert reason in _reason(verifier, _signed(issuer._key, **overrides))


def test_alg_none_is_refused(verifier: TokenVerifier) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    token = f"{header}.{_b64(json.dumps(_claims()).encode())}."
    assert _reason(verifier, token) == "token algorithm is not EdDSA"


def test_hs256_keyed_with_the_public_key_is_refused(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    """The classic confusion: sign HS256 with the verifier's public key as HMAC secret."""
    import hashlib
    import hmac

    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(_claims()).encode())
    signing_input = f"{header}.{payload}".encode()
    mac = hmac.new(issuer.public_key_pem, signing_input, hashlib.sha256).digest()
    assert _reason(verifier, f"{header}.{payload}.{_b64(mac)}") == "token algorithm is not EdDSA"


def test_es256_token_is_refused(verifier: TokenVerifier) -> None:
    token = jwt.encode(_claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    assert _reason(verifier, token) == "token algorithm is not EdDSA"


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a.b.c", "....", "é.é.é", "x" * 9000, "eyJhbGciOiJFZERTQSJ9.e30.AAAA"],
)
def test_garbage(verifier: TokenVerifier, token: str) -> None:
    assert _reason(verifier, token).startswith("token ")


def test_verifier_rejects_a_non_ed25519_key() -> None:
    from cryptography.hazmat.primitives import serialization

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(TokenError, match="not an Ed25519"):
        TokenVerifier(pem)
