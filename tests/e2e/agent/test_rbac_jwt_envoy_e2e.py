"""Real Envoy, real requests through the translated jwt_authn and RBAC filters.

One Envoy from a static bootstrap holds one listener per scenario; each listener's HCM
runs `security_filters` for a proxy whose labels select that scenario's policies, then a
direct `200 ok`. JWTs are signed RS256 with a key made here (PyJWT); the JWKS is inline.
Peer identities (mTLS principals) need sidecars on both sides and are tested by the mesh
e2e tests.
"""

from __future__ import annotations

import http.client
import http.server
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from authzkit import hcm_bootstrap, write_bootstrap
from plait.agent.envoy import find_envoy
from plait.api import load_text
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind
from plait.model.snapshot import MeshSnapshot, build_snapshot
from plait.translate.authfilters import security_clusters, security_filters
from plait.translate.rbac import ACCESS_DENIED_BODY
from prockit import stop_process

pytestmark = pytest.mark.e2e

ISSUER = "https://issuer.test"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
JWKS = json.dumps({"keys": [{**json.loads(RSAAlgorithm.to_jwk(KEY.public_key())), "kid": "k1"}]})

CONFIG = f"""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: get-only, namespace: shop}}
spec:
  selector: {{matchLabels: {{case: methods}}}}
  rules: [{{to: [{{operation: {{methods: [GET]}}}}]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: allow-all, namespace: shop}}
spec:
  selector: {{matchLabels: {{case: deny}}}}
  rules: [{{}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: no-admin, namespace: shop}}
spec:
  selector: {{matchLabels: {{case: deny}}}}
  action: DENY
  rules:
  - to: [{{operation: {{paths: ["/admin*"]}}}}]
  - when: [{{key: "request.headers[x-user]", values: [mallory]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: audit-everything, namespace: shop}}
spec:
  selector: {{matchLabels: {{case: deny}}}}
  action: AUDIT
  rules: [{{}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: nothing, namespace: shop}}
spec:
  selector: {{matchLabels: {{case: empty}}}}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: tokens, namespace: shop}}
spec:
  selector: {{matchLabels: {{jwt: "on"}}}}
  jwtRules:
  - issuer: {ISSUER}
    audiences: [shop]
    jwks: '{JWKS}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: need-token, namespace: shop}}
spec:
  selector: {{matchLabels: {{case: required}}}}
  rules: [{{from: [{{source: {{requestPrincipals: ["*"]}}}}]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: admins, namespace: shop}}
spec:
  selector: {{matchLabels: {{case: claims}}}}
  rules:
  - from: [{{source: {{requestPrincipals: ["{ISSUER}/alice", "{ISSUER}/bob"]}}}}]
    when:
    - {{key: "request.auth.claims[groups]", values: [admin]}}
"""

CASES = {
    "methods": {},
    "deny": {},
    "empty": {},
    "jwt": {"jwt": "on"},
    "required": {"jwt": "on"},
    "claims": {"jwt": "on"},
    "remote": {},
}

REMOTE = """
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: remote, namespace: shop}}
spec:
  selector: {{matchLabels: {{case: remote}}}}
  jwtRules: [{{issuer: "{issuer}", jwksUri: "http://127.0.0.1:{port}/keys.json"}}]
"""


def _snapshot(jwks_port: int) -> MeshSnapshot:
    text = CONFIG + REMOTE.format(issuer=ISSUER, port=jwks_port)
    result = load_text(text, "policies.yaml")
    assert not result.errors, result.errors
    return build_snapshot(result.resources, [], version=1)


def _proxy(case: str) -> Proxy:
    labels = Labels.of({"case": case, **CASES[case]})
    return Proxy(id=case, kind=ProxyKind.SIDECAR, workload=case, namespace="shop", labels=labels)


def _token(key: Any = KEY, expires_in: int = 300, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "sub": "alice", "aud": "shop", "iat": now, "exp": now + expires_in}
    payload.update(claims)
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})


class Envoy:
    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports

    def request(
        self,
        case: str,
        method: str = "GET",
        path: str = "/",
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.ports[case], timeout=5)
        try:
            sent = dict(headers or {})
            if token is not None:
                sent["Authorization"] = f"Bearer {token}"
            conn.request(method, path, headers=sent)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()


def _admin_get(admin: str, path: str) -> Any:
    with urllib.request.urlopen(f"http://{admin}{path}", timeout=2) as r:  # noqa: S310
        return r.read().decode()


def _wait_listeners(admin_file: Path, proc: subprocess.Popen[bytes]) -> dict[str, int]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Envoy exited with {proc.returncode}")
        if admin_file.exists() and admin_file.read_text().strip():
            admin = admin_file.read_text().strip()
            try:
                if _admin_get(admin, "/ready").strip() == "LIVE":
                    found = json.loads(_admin_get(admin, "/listeners?format=json"))
                    return {
                        s["name"]: s["local_address"]["socket_address"]["port_value"]
                        for s in found["listener_statuses"]
                    }
            except OSError:
                pass
        time.sleep(0.05)
    raise TimeoutError("Envoy did not become ready within 15 s")


class _Keys(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = JWKS.encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[int]:
    """A JWKS endpoint on a free port (the bound socket holds the port: no race)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory, jwks_server: int) -> Iterator[Envoy]:
    tmp = tmp_path_factory.mktemp("rbac-jwt")
    snapshot = _snapshot(jwks_server)
    chains = {case: security_filters(snapshot, _proxy(case)) for case in CASES}
    clusters = [c for case in CASES for c in security_clusters(snapshot, _proxy(case))]
    bootstrap = write_bootstrap(tmp / "bootstrap.json", hcm_bootstrap(chains, clusters))
    log = tmp / "envoy.log"
    admin_file = tmp / "admin.txt"
    cmd = [
        str(find_envoy()), "-c", str(bootstrap), "--disable-hot-restart", "--concurrency", "1",
        "--log-level", "info", "--component-log-level", "rbac:debug,jwt:debug",
        "--admin-address-path", str(admin_file),
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    started = False
    try:
        ports = _wait_listeners(admin_file, proc)
        started = True
        yield Envoy(ports)
    finally:
        stop_process(proc)
        if not started:
            print(f"===== Envoy log {log}\n" + log.read_text()[-20000:])


@pytest.fixture(autouse=True)
def _log_on_failure(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    yield
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        for log in tmp_path_factory.getbasetemp().glob("rbac-jwt*/envoy.log"):
            print(f"===== Envoy log {log}\n" + log.read_text()[-20000:])


def test_method_rule_allows_get_and_denies_post_with_403(envoy: Envoy) -> None:
    assert envoy.request("methods", "GET") == (200, "ok")
    assert envoy.request("methods", "POST") == (403, ACCESS_DENIED_BODY)


def test_deny_beats_allow_and_audit_does_not_deny(envoy: Envoy) -> None:
    assert envoy.request("deny", "GET", "/") == (200, "ok")
    assert envoy.request("deny", "GET", "/admin/users") == (403, ACCESS_DENIED_BODY)
    # normalised before matching, as under Istio: no sneaking past with dot segments
    assert envoy.request("deny", "GET", "/public/../admin") == (403, ACCESS_DENIED_BODY)
    assert envoy.request("deny", "GET", "/", headers={"x-user": "mallory"})[0] == 403
    assert envoy.request("deny", "GET", "/", headers={"x-user": "alice"})[0] == 200


def test_empty_policy_denies_everything(envoy: Envoy) -> None:
    assert envoy.request("empty", "GET") == (403, ACCESS_DENIED_BODY)


def test_jwt_valid_passes_bad_gets_401_missing_passes(envoy: Envoy) -> None:
    assert envoy.request("jwt", token=_token())[0] == 200
    assert envoy.request("jwt", token=_token(expires_in=-120))[0] == 401
    assert envoy.request("jwt", token=_token(key=OTHER_KEY))[0] == 401
    # Envoy answers a verified token for another audience with 403 (as under Istio)
    assert envoy.request("jwt", token=_token(aud="elsewhere")) == (
        403,
        "Audiences in Jwt are not allowed",
    )
    assert envoy.request("jwt", token="not.a.jwt")[0] == 401
    assert envoy.request("jwt")[0] == 200  # no token: only an AuthorizationPolicy can demand one


def test_request_principals_require_a_token(envoy: Envoy) -> None:
    assert envoy.request("required") == (403, ACCESS_DENIED_BODY)
    assert envoy.request("required", token=_token())[0] == 200
    assert envoy.request("required", token=_token(key=OTHER_KEY))[0] == 401


def test_claims_in_when_match_strings_and_lists(envoy: Envoy) -> None:
    assert envoy.request("claims", token=_token(groups=["dev", "admin"]))[0] == 200
    assert envoy.request("claims", token=_token(groups="admin", sub="bob"))[0] == 200
    assert envoy.request("claims", token=_token(groups=["dev"]))[0] == 403
    assert envoy.request("claims", token=_token(groups=["admin"], sub="carol"))[0] == 403
    assert envoy.request("claims")[0] == 403


def test_remote_jwks_is_fetched_through_the_translated_cluster(envoy: Envoy) -> None:
    token = _token()
    deadline = time.monotonic() + 10
    status = 0
    while time.monotonic() < deadline:  # the first fetch is asynchronous
        status, _ = envoy.request("remote", token=token)
        if status == 200:
            break
        time.sleep(0.1)
    assert status == 200
    assert envoy.request("remote", token=_token(key=OTHER_KEY))[0] == 401
