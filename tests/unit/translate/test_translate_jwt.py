"""translate.jwt: RequestAuthentication → jwt_authn filter and JWKS clusters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import json_format
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from translate_kit import snapshot

from authzkit import envoy_validate, hcm_bootstrap, write_bootstrap
from plait.model.snapshot import MeshSnapshot
from plait.translate.jwt import (
    JWT_FILTER,
    PUBLIC_ONLY_JWKS,
    has_usable_key,
    jwks_clusters,
    jwt_authentication,
    jwt_filter,
)
from policykit import request_authentication

RSA_JWKS = json.dumps(
    {
        "keys": [
            json.loads(
                RSAAlgorithm.to_jwk(
                    rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
                )
            )
        ]
    }
)


def _ra(rules: str, name: str = "ra", ns: str = "default") -> str:
    return request_authentication(name, f"jwtRules: {rules}", ns)


def _config(snap: MeshSnapshot) -> dict[str, Any]:
    config = jwt_authentication(snap, snap.request_authentications)
    assert config is not None
    return json_format.MessageToDict(config)


def test_one_rule_token_optional_but_must_be_valid() -> None:
    snap = snapshot(_ra(f"[{{issuer: me, jwks: '{RSA_JWKS}'}}]"))
    config = _config(snap)
    assert config["rules"] == [
        {
            "match": {"prefix": "/"},
            "requires": {
                "requiresAny": {
                    "requirements": [{"providerName": "origins-0"}, {"allowMissing": {}}]
                }
            },
        }
    ]
    assert config["bypassCorsPreflight"] is True
    provider = config["providers"]["origins-0"]
    assert provider == {
        "issuer": "me",
        "localJwks": {"inlineString": RSA_JWKS},
        "payloadInMetadata": "payload",
        "normalizePayloadInMetadata": {"spaceDelimitedClaims": ["permission", "scope"]},
    }


def test_every_jwt_rule_field() -> None:
    rule = (
        f"[{{issuer: me, audiences: [a, b], jwks: '{RSA_JWKS}', "
        "fromHeaders: [{name: x-jwt, prefix: 'Bearer '}, {name: y-jwt}], "
        "fromParams: [token], fromCookies: [session], forwardOriginalToken: true, "
        "outputPayloadToHeader: x-payload, "
        "outputClaimToHeaders: [{header: x-sub, claim: sub}]}]"
    )
    provider = _config(snapshot(_ra(rule)))["providers"]["origins-0"]
    assert provider["audiences"] == ["a", "b"]
    assert provider["fromHeaders"] == [
        {"name": "x-jwt", "valuePrefix": "Bearer "},
        {"name": "y-jwt"},
    ]
    assert provider["fromParams"] == ["token"]
    assert provider["fromCookies"] == ["session"]
    assert provider["forward"] is True
    assert provider["forwardPayloadHeader"] == "x-payload"
    assert provider["claimToHeaders"] == [{"headerName": "x-sub", "claimName": "sub"}]


def test_several_rules_sorted_by_issuer_any_valid_token_or_none() -> None:
    text = _ra(f"[{{issuer: zed, jwks: '{RSA_JWKS}'}}]", "b") + _ra(
        f"[{{issuer: amy, jwks: '{RSA_JWKS}'}}]", "a"
    )
    config = _config(snapshot(text))
    assert config["providers"]["origins-0"]["issuer"] == "amy"
    assert config["providers"]["origins-1"]["issuer"] == "zed"

    def optional(name: str) -> dict[str, Any]:
        return {"requiresAny": {"requirements": [{"providerName": name}, {"allowMissing": {}}]}}

    assert config["rules"][0]["requires"] == {
        "requiresAny": {
            "requirements": [
                {"providerName": "origins-0"},
                {"providerName": "origins-1"},
                {"requiresAll": {"requirements": [optional("origins-0"), optional("origins-1")]}},
            ]
        }
    }


def test_no_rules_no_filter() -> None:
    snap = snapshot(_ra("[]"))
    assert jwt_filter(snap, snap.request_authentications) is None
    assert jwt_filter(snap, ()) is None
    one = snapshot(_ra(f"[{{issuer: me, jwks: '{RSA_JWKS}'}}]"))
    f = jwt_filter(one, one.request_authentications)
    assert f is not None and f.name == JWT_FILTER


def _jwk(key: Any) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPublicKey):
        return dict(json.loads(RSAAlgorithm.to_jwk(key)))
    if isinstance(key, ec.EllipticCurvePublicKey):
        return dict(json.loads(ECAlgorithm.to_jwk(key)))
    return dict(json.loads(OKPAlgorithm.to_jwk(key)))


@pytest.mark.parametrize(
    ("keys", "usable"),
    [
        ([_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())], True),
        ([_jwk(ed25519.Ed25519PrivateKey.generate().public_key())], True),
        ([{"kty": "oct", "k": "c2VjcmV0"}], True),
        ([{"kty": "RSA", "n": "!!", "e": "AQAB"}, json.loads(RSA_JWKS)["keys"][0]], True),
        ([], False),
        ([{"kty": "RSA", "n": json.loads(RSA_JWKS)["keys"][0]["n"]}], False),  # no e
        ([{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}], False),  # not on the curve
        ([{"kty": "XYZ"}], False),
        (["key"], False),
    ],
)
def test_has_usable_key(keys: list[Any], usable: bool) -> None:
    assert has_usable_key(json.dumps({"keys": keys})) is usable


def test_unusable_inline_jwks_fails_closed_instead_of_breaking_the_listener() -> None:
    provider = _config(snapshot(_ra("""[{issuer: me, jwks: '{"keys": []}'}]""")))
    assert provider["providers"]["origins-0"]["localJwks"] == {"inlineString": PUBLIC_ONLY_JWKS}
    assert has_usable_key(PUBLIC_ONLY_JWKS)


def test_remote_jwks_through_own_tls_cluster() -> None:
    snap = snapshot(_ra("[{issuer: me, jwksUri: 'https://Login.Example.com/keys', timeout: 2s}]"))
    remote = _config(snap)["providers"]["origins-0"]["remoteJwks"]
    assert remote == {
        "httpUri": {
            "uri": "https://Login.Example.com/keys",
            "cluster": "outbound|443||login.example.com",
            "timeout": "2s",
        },
        "cacheDuration": "300s",
        "asyncFetch": {"fastListener": True},
    }
    (cluster,) = jwks_clusters(snap, snap.request_authentications)
    assert cluster.name == "outbound|443||login.example.com"
    assert cluster.type == cluster_pb2.Cluster.STRICT_DNS
    address = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address
    assert (address.socket_address.address, address.socket_address.port_value) == (
        "login.example.com",
        443,
    )
    tls = tls_pb2.UpstreamTlsContext()
    assert cluster.transport_socket.typed_config.Unpack(tls)
    assert tls.sni == "login.example.com"
    validation = tls.common_tls_context.validation_context
    assert validation.trusted_ca.filename == "/etc/ssl/certs/ca-certificates.crt"
    assert [m.matcher.exact for m in validation.match_typed_subject_alt_names] == [
        "login.example.com"
    ]


def test_remote_jwks_plain_http_on_an_ip_is_static_and_deduplicated() -> None:
    text = _ra(
        "[{issuer: a, jwksUri: 'http://10.1.2.3:8081/a'}, "
        "{issuer: b, jwksUri: 'http://10.1.2.3:8081/b'}]"
    )
    snap = snapshot(text)
    (cluster,) = jwks_clusters(snap, snap.request_authentications)
    assert cluster.name == "outbound|8081||10.1.2.3"
    assert cluster.type == cluster_pb2.Cluster.STATIC
    assert not cluster.HasField("transport_socket")


def test_remote_jwks_on_a_mesh_service_uses_its_cluster() -> None:
    text = """
apiVersion: v1
kind: Service
metadata: {name: auth, namespace: idp}
spec:
  selector: {app: auth}
  ports: [{name: http, port: 8080}]
""" + _ra("[{issuer: me, jwksUri: 'http://auth.idp.svc.cluster.local:8080/jwks'}]")
    snap = snapshot(text)
    remote = _config(snap)["providers"]["origins-0"]["remoteJwks"]
    assert remote["httpUri"]["cluster"] == "outbound|8080||auth.idp.svc.cluster.local"
    assert jwks_clusters(snap, snap.request_authentications) == []


def test_envoy_accepts_the_filter_and_clusters(tmp_path: Path) -> None:
    text = _ra(
        f"[{{issuer: me, audiences: [x], jwks: '{RSA_JWKS}', "
        "fromHeaders: [{name: x-jwt, prefix: 'Bearer '}], outputPayloadToHeader: x-p}, "
        "{issuer: you, jwksUri: 'https://login.example.com/keys'}, "
        "{issuer: ip, jwksUri: 'http://127.0.0.1:9/keys'}]"
    )
    snap = snapshot(text)
    f = jwt_filter(snap, snap.request_authentications)
    assert f is not None
    clusters = jwks_clusters(snap, snap.request_authentications)
    bootstrap = hcm_bootstrap({"l": [f]}, clusters)
    result = envoy_validate(write_bootstrap(tmp_path / "b.json", bootstrap))
    assert result.returncode == 0, result.stdout + result.stderr
