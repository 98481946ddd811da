"""RequestAuthentication (JWT) and requestPrincipals with real tokens: a valid token is
accepted, an expired or wrongly signed one gets 401, and a path that requires a request
principal refuses requests without one (403)."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from labkit import Lab, statuses
from seckit import header

ECHO = "http://echo:8080"
ISSUER = "https://issuer.example.com"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks() -> str:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(KEY.public_key()))
    jwk.update(kid="k1", alg="RS256", use="sig")
    return json.dumps({"keys": [jwk]})


def token(
    *, sub: str = "alice", expires_in: int = 300, key: rsa.RSAPrivateKey = KEY, **claims: Any
) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "sub": sub, "iat": now, "exp": now + expires_in, **claims}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})


def bearer(value: str) -> dict[str, str]:
    return {"authorization": f"Bearer {value}"}


POLICIES = f"""apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: echo-jwt}}
spec:
  selector: {{matchLabels: {{app: echo}}}}
  jwtRules:
  - issuer: {ISSUER}
    jwks: '{jwks()}'
    outputPayloadToHeader: x-jwt-payload
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: echo-secure}}
spec:
  selector: {{matchLabels: {{app: echo}}}}
  rules:
  - to: [{{operation: {{notPaths: [/secure/*]}}}}]
  - from: [{{source: {{requestPrincipals: ["{ISSUER}/alice"]}}}}]
    to: [{{operation: {{paths: [/secure/*]}}}}]
  - from: [{{source: {{requestPrincipals: ["*"]}}}}]
    to: [{{operation: {{paths: [/secure/team]}}}}]
    when: [{{key: "request.auth.claims[groups]", values: [admins]}}]
"""


async def test_jwt_validation_and_request_principals(lab: Lab) -> None:
    with lab.config("jwt", POLICIES):
        valid = await lab.send(f"{ECHO}/secure/data", 5, headers=bearer(token()))
        assert statuses(valid) == {200: 5}
        # the payload reached the app; the token itself did not (forwardOriginalToken: false)
        assert header(valid[0], "x-jwt-payload")
        assert header(valid[0], "authorization") is None

        expired = await lab.send(f"{ECHO}/open", 3, headers=bearer(token(expires_in=-120)))
        assert statuses(expired) == {401: 3}
        forged = await lab.send(f"{ECHO}/open", 3, headers=bearer(token(key=OTHER_KEY)))
        assert statuses(forged) == {401: 3}
        garbage = await lab.send(f"{ECHO}/open", 3, headers=bearer("not.a.jwt"))
        assert statuses(garbage) == {401: 3}

        # no token: fine where no request principal is required, 403 where one is
        assert statuses(await lab.send(f"{ECHO}/open", 3)) == {200: 3}
        assert statuses(await lab.send(f"{ECHO}/secure/data", 3)) == {403: 3}
        # a valid token of another subject is not alice
        bob = await lab.send(f"{ECHO}/secure/data", 3, headers=bearer(token(sub="bob")))
        assert statuses(bob) == {403: 3}
        # a claim condition
        admin = bearer(token(sub="bob", groups=["admins", "dev"]))
        assert statuses(await lab.send(f"{ECHO}/secure/team", 3, headers=admin)) == {200: 3}
        dev = bearer(token(sub="bob", groups=["dev"]))
        assert statuses(await lab.send(f"{ECHO}/secure/team", 3, headers=dev)) == {403: 3}
    # without the policies, nothing is checked
    assert statuses(await lab.send(f"{ECHO}/secure/data", 3)) == {200: 3}
