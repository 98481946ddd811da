"""OpenID discovery for an issuer-only RequestAuthentication rule, end to end: an
OIDC-like issuer served by the test on loopback (discovery document + JWKS), the control
plane reading its `jwks_uri`, the sidecar's Envoy fetching the keys from it, and real
JWTs through it: a token signed by the issuer's key gets 200, a forged one 401; an
issuer without a discovery document is shown in the control plane's status."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from labkit import Lab, statuses

ECHO = "http://echo:8080"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Issuer(http.server.ThreadingHTTPServer):
    """`/.well-known/openid-configuration` pointing at `/keys`, the JWKS; counts requests."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Issuer

    def do_GET(self) -> None:  # noqa: N802
        self.server.hits.append(self.path)
        if self.path == "/.well-known/openid-configuration":
            body: dict[str, Any] = {
                "issuer": self.server.url,
                "jwks_uri": f"{self.server.url}/keys",
            }
        elif self.path == "/keys":
            jwk = {**json.loads(RSAAlgorithm.to_jwk(KEY.public_key())), "kid": "k1", "alg": "RS256"}
            body = {"keys": [jwk]}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    server = Issuer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def token(issuer: str, key: rsa.RSAPrivateKey = KEY) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": issuer, "sub": "alice", "iat": now, "exp": now + 300}
    value = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    return {"authorization": f"Bearer {value}"}


def policy(issuer: str) -> str:
    return f"""apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: echo-oidc}}
spec:
  selector: {{matchLabels: {{app: echo}}}}
  jwtRules: [{{issuer: "{issuer}"}}, {{issuer: "{issuer}/missing"}}]
"""


async def test_issuer_only_rule_gets_keys_by_openid_discovery(lab: Lab, issuer: Issuer) -> None:
    with lab.config("oidc", policy(issuer.url)):
        deadline = time.monotonic() + 30
        while True:
            valid = await lab.send(f"{ECHO}/ok", 1, headers=token(issuer.url))
            if statuses(valid) == {200: 1}:
                break
            assert time.monotonic() < deadline, (
                f"a valid token still gets {statuses(valid)}; issuer saw {issuer.hits}; "
                f"control plane: {lab.mesh.cp_status().get('sourceErrors')}"
            )
            await asyncio.sleep(0.2)
        assert "/.well-known/openid-configuration" in issuer.hits  # the control plane read it
        assert "/keys" in issuer.hits  # and Envoy fetched the keys it names
        assert statuses(await lab.send(f"{ECHO}/ok", 3, headers=token(issuer.url))) == {200: 3}
        forged = await lab.send(f"{ECHO}/ok", 3, headers=token(issuer.url, OTHER_KEY))
        assert statuses(forged) == {401: 3}
        assert statuses(await lab.send(f"{ECHO}/ok", 2)) == {200: 2}  # no token: passes
        # the issuer whose discovery document is missing is reported, and retried
        errors = lab.mesh.cp_status()["sourceErrors"].get("oidc-discovery", "")
        assert f"{issuer.url}/missing" in errors and "HTTP 404" in errors, errors
