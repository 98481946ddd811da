"""RequestAuthentication → Envoy's `envoy.filters.http.jwt_authn` filter and JWKS clusters.

Istio's mapping (pilot/pkg/security/authn/policy_applier.go, convertToEnvoyJwtConfig):
the jwtRules of every RequestAuthentication that applies to a proxy, sorted by issuer,
become providers `origins-0`, `origins-1`, ... A request without a token passes (only an
AuthorizationPolicy can demand one); a token that is present but malformed, expired or
wrongly signed gets 401 (a well-signed one for another audience: 403, Envoy's
`Audiences in Jwt are not allowed`). One provider: `requires_any [P, allow_missing]`;
several: `requires_any [P1, ..., Pn, requires_all [any(P1, allow_missing), ...]]` (the
outer list lets providers share a token location). `allow_missing`, unlike
`allow_missing_or_failed`, fails a token that is present and bad:
https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/filters/http/jwt_authn/v3/config.proto

The verified payload goes to dynamic metadata under `envoy.filters.http.jwt_authn` /
`payload` (PAYLOAD_KEY) so that RBAC can match `requestPrincipals` and
`request.auth.claims[...]`; `scope` and `permission` are split at spaces, as in Istio.

`jwks` is inlined. Envoy refuses a whole listener whose inline JWKS has no usable key, so
such a `jwks` is replaced by PUBLIC_ONLY_JWKS (a public key whose private half was
discarded when it was made): every token then fails with 401, requests without one pass,
and the listener keeps working (Istio fails closed the same way when it cannot fetch).

`jwksUri` is fetched by Envoy (by default Istio has istiod fetch and inline the keys;
plait's translation is pure and does no I/O): through the mesh's own cluster
`outbound|PORT||HOST` when HOST:PORT is a registered service (as Istio does; TLS to such a
host then needs a DestinationRule, as in Istio), otherwise through a cluster built here
under that same name (`jwks_clusters`): STATIC for an IP, STRICT_DNS for a name, TLS
verified against the system CAs for https. The fetch is asynchronous (`fast_listener`),
so an unreachable JWKS server never holds a listener back; until keys arrive every token
fails (401) and requests without a token pass.

A rule with only `issuer` gets its keys by OpenID discovery, as in Istio: the control
plane reads `<issuer>/.well-known/openid-configuration` (`sources.oidc`, I/O outside
translation) and the snapshot carries the `jwks_uri` found (`discovered_jwks_uris`), which
is then used exactly like a `jwksUri` the rule gave. Until discovery succeeds the rule
fails closed with PUBLIC_ONLY_JWKS.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, http_uri_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import duration_pb2, empty_pb2

from plait.api import Loaded
from plait.api.common import is_ip
from plait.api.security import JwtPresence, JwtRule, RequestAuthentication
from plait.model.snapshot import MeshSnapshot
from plait.translate import names, pbtime
from plait.translate.clienttls import SYSTEM_CA, TLS_SOCKET
from plait.translate.clusters import host_cluster

JWT_FILTER = "envoy.filters.http.jwt_authn"
PAYLOAD_KEY = "payload"
"""Dynamic metadata key (under JWT_FILTER) holding the verified JWT payload."""

SPACE_DELIMITED_CLAIMS = ("permission", "scope")
JWKS_TIMEOUT_SECONDS = 5
JWKS_CACHE_SECONDS = 5 * 60
JWKS_CONNECT_TIMEOUT_SECONDS = 5

PUBLIC_ONLY_JWKS = json.dumps(
    {
        "keys": [
            {
                "kty": "RSA",
                "e": "AQAB",
                "n": (
                    "utlAaUUdqKmLLo8gwklxd5uFyNM3-AEhcVddH6SnjAkALVSbnYtGUkEhfRCdzpcopjBsENXkisHw"
                    "D6TdrTB1lvQUqVDLNtEMYzcLgluqIq-oiMuCHNDA9lusD-aySUhbKTnUD01xh3qyvS9hJox5PCr-"
                    "l0o2zrj7SixRe-C34ByT3nMDppOQSROEz-FlTqdu-iuesenxNlUm2lLp6EU9I72zLSbFpJuWRDrg"
                    "QcOBYzDFrtwUJNeifZr22wiSwXYQJYLTHytVB5JmJI9sPz-MgtJvayd_7ATFDPzU4DnMv3yXQsl2"
                    "dhJ80aMRCIzlmQPvmfBld09L8onmp-8yNmVPdQ"
                ),
            }
        ]
    }
)
"""Fail-closed JWKS: an RSA public key whose private key was never kept anywhere."""

_CURVES: Mapping[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}


@dataclass(frozen=True)
class JwksSource:
    """Where a `jwksUri` is fetched from: host, port, TLS, and the cluster that reaches it."""

    uri: str
    host: str
    port: int
    tls: bool
    cluster: str
    in_mesh: bool  # the cluster is the mesh's own outbound cluster (not built here)


def jwks_source(snapshot: MeshSnapshot, uri: str) -> JwksSource:
    parts = urlsplit(uri)
    tls = parts.scheme.lower() == "https"
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if tls else 80)
    service = snapshot.services.get(host)
    in_mesh = service is not None and service.port(port) is not None
    return JwksSource(uri, host, port, tls, names.outbound_cluster(host, port), in_mesh)


def _rules(items: Sequence[Loaded]) -> list[JwtRule]:
    rules: list[JwtRule] = []
    for item in items:
        policy = item.resource
        if isinstance(policy, RequestAuthentication):
            rules += policy.spec.jwt_rules
    return sorted(rules, key=lambda r: r.issuer)  # stable: snapshot order within an issuer


def rule_jwks_uri(snapshot: MeshSnapshot, rule: JwtRule) -> str | None:
    """Where Envoy fetches the rule's keys: its `jwksUri`, or (with neither `jwks` nor
    `jwksUri`) the one OpenID discovery found for its issuer; None for inline keys or
    before discovery succeeded."""
    if rule.jwks is not None:
        return None
    if rule.jwks_uri is not None:
        return rule.jwks_uri
    return snapshot.discovered_jwks_uris.get(rule.issuer)


def _provider(snapshot: MeshSnapshot, rule: JwtRule) -> jwt_pb2.JwtProvider:
    provider = jwt_pb2.JwtProvider(
        issuer=rule.issuer,
        audiences=list(rule.audiences),
        forward=rule.forward_original_token,
        forward_payload_header=rule.output_payload_to_header or "",
        payload_in_metadata=PAYLOAD_KEY,
        normalize_payload_in_metadata=jwt_pb2.JwtProvider.NormalizePayload(
            space_delimited_claims=sorted({*SPACE_DELIMITED_CLAIMS, *rule.space_delimited_claims})
        ),
        from_headers=[
            jwt_pb2.JwtHeader(name=h.name, value_prefix=h.prefix) for h in rule.from_headers
        ],
        from_params=list(rule.from_params),
        from_cookies=list(rule.from_cookies),
        claim_to_headers=[
            jwt_pb2.JwtClaimToHeader(header_name=c.header, claim_name=c.claim)
            for c in rule.output_claim_to_headers
        ],
    )
    uri = rule_jwks_uri(snapshot, rule)
    if rule.jwks is not None:
        usable = has_usable_key(rule.jwks)
        provider.local_jwks.inline_string = rule.jwks if usable else PUBLIC_ONLY_JWKS
    elif uri is None:  # keys by OpenID discovery, which has not succeeded (yet)
        provider.local_jwks.inline_string = PUBLIC_ONLY_JWKS
    else:
        source = jwks_source(snapshot, uri)
        timeout = (
            pbtime.duration(rule.timeout)
            if rule.timeout is not None
            else duration_pb2.Duration(seconds=JWKS_TIMEOUT_SECONDS)
        )
        provider.remote_jwks.CopyFrom(
            jwt_pb2.RemoteJwks(
                http_uri=http_uri_pb2.HttpUri(uri=uri, cluster=source.cluster, timeout=timeout),
                cache_duration=duration_pb2.Duration(seconds=JWKS_CACHE_SECONDS),
                async_fetch=jwt_pb2.JwksAsyncFetch(fast_listener=True),
            )
        )
    return provider


def _b64(value: object) -> bytes:
    if not isinstance(value, str) or not value:
        raise ValueError("not a base64url string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def _usable(key: object) -> bool:
    """Whether Envoy (jwt_verify_lib) can load this JWK; it skips keys it cannot."""
    if not isinstance(key, dict):
        return False
    kty = key.get("kty")
    try:
        if kty == "RSA":
            n, e = _b64(key.get("n")), _b64(key.get("e"))
            rsa.RSAPublicNumbers(int.from_bytes(e), int.from_bytes(n)).public_key()
        elif kty == "EC":
            curve = _CURVES[str(key.get("crv"))]
            x, y = _b64(key.get("x")), _b64(key.get("y"))
            ec.EllipticCurvePublicNumbers(int.from_bytes(x), int.from_bytes(y), curve).public_key()
        elif kty == "oct":
            _b64(key.get("k"))
        elif kty == "OKP":
            return key.get("crv") == "Ed25519" and len(_b64(key.get("x"))) == 32
        else:
            return False
    except (KeyError, ValueError):
        return False
    return True


def has_usable_key(jwks: str) -> bool:
    """True when the JWKS text holds at least one key Envoy can use."""
    try:
        doc = json.loads(jwks)
    except ValueError:
        return False
    keys = doc.get("keys") if isinstance(doc, dict) else None
    return isinstance(keys, list) and any(_usable(k) for k in keys)


def _requires(name: str) -> jwt_pb2.JwtRequirement:
    return jwt_pb2.JwtRequirement(provider_name=name)


def _any(requirements: list[jwt_pb2.JwtRequirement]) -> jwt_pb2.JwtRequirement:
    return jwt_pb2.JwtRequirement(
        requires_any=jwt_pb2.JwtRequirementOrList(requirements=requirements)
    )


def jwt_authentication(
    snapshot: MeshSnapshot, items: Sequence[Loaded]
) -> jwt_pb2.JwtAuthentication | None:
    """The filter config for the RequestAuthentications `items`; None without jwtRules."""
    rules = _rules(items)
    if not rules:
        return None
    config = jwt_pb2.JwtAuthentication(bypass_cors_preflight=True)
    names_ = [f"origins-{i}" for i in range(len(rules))]
    for name, rule in zip(names_, rules, strict=True):
        config.providers[name].CopyFrom(_provider(snapshot, rule))
    config.rules.append(
        jwt_pb2.RequirementRule(match=rc.RouteMatch(prefix="/"), requires=_requirement(rules))
    )
    return config


def _requirement(rules: Sequence[JwtRule]) -> jwt_pb2.JwtRequirement:
    """Istio's requirement (module docstring), unless a rule has `presence: REQUIRED`:
    then a valid token of one REQUIRED rule must be present, and the tokens of OPTIONAL
    rules are checked when present."""
    names_ = [f"origins-{i}" for i in range(len(rules))]
    missing = jwt_pb2.JwtRequirement(allow_missing=empty_pb2.Empty())
    required = [n for n, r in zip(names_, rules, strict=True) if r.presence is JwtPresence.REQUIRED]
    optional = [_any([_requires(n), missing]) for n in names_ if n not in required]
    if required:
        options = [_all([_requires(n), *optional]) if optional else _requires(n) for n in required]
        return options[0] if len(options) == 1 else _any(options)
    if len(optional) == 1:
        return optional[0]
    return _any([*(_requires(n) for n in names_), _all(optional)])


def _all(requirements: list[jwt_pb2.JwtRequirement]) -> jwt_pb2.JwtRequirement:
    return jwt_pb2.JwtRequirement(
        requires_all=jwt_pb2.JwtRequirementAndList(requirements=requirements)
    )


def jwt_filter(snapshot: MeshSnapshot, items: Sequence[Loaded]) -> hcm_pb2.HttpFilter | None:
    """The `jwt_authn` HTTP filter for `items`, or None when they hold no jwtRule."""
    config = jwt_authentication(snapshot, items)
    if config is None:
        return None
    f = hcm_pb2.HttpFilter(name=JWT_FILTER)
    f.typed_config.Pack(config)
    return f


def jwks_clusters(snapshot: MeshSnapshot, items: Sequence[Loaded]) -> list[cluster_pb2.Cluster]:
    """Clusters for the `jwksUri` hosts of `items` that are not mesh services (deduplicated)."""
    built: dict[str, cluster_pb2.Cluster] = {}
    for rule in _rules(items):
        uri = rule_jwks_uri(snapshot, rule)
        if uri is None:
            continue
        source = jwks_source(snapshot, uri)
        if not source.in_mesh and source.cluster not in built:
            built[source.cluster] = jwks_cluster(source)
    return [built[name] for name in sorted(built)]


def jwks_cluster(source: JwksSource) -> cluster_pb2.Cluster:
    """A cluster reaching a JWKS server outside the mesh (STATIC for an IP, else DNS)."""
    ip = is_ip(source.host)
    cluster = host_cluster(source.cluster, source.host, source.port, JWKS_CONNECT_TIMEOUT_SECONDS)
    if source.tls:
        cluster.transport_socket.CopyFrom(_tls_socket(source.host, ip))
    return cluster


def _tls_socket(host: str, ip: bool) -> base_pb2.TransportSocket:
    """TLS verified against the system CAs, the certificate naming `host`."""
    san = common_pb2.SubjectAltNameMatcher(
        san_type=(
            common_pb2.SubjectAltNameMatcher.IP_ADDRESS
            if ip
            else common_pb2.SubjectAltNameMatcher.DNS
        ),
        matcher=string_pb2.StringMatcher(exact=host),
    )
    common = tls_pb2.CommonTlsContext()
    common.validation_context.trusted_ca.filename = SYSTEM_CA
    common.validation_context.match_typed_subject_alt_names.append(san)
    context = tls_pb2.UpstreamTlsContext(common_tls_context=common, sni="" if ip else host)
    socket = base_pb2.TransportSocket(name=TLS_SOCKET)
    socket.typed_config.Pack(context)
    return socket


__all__ = [
    "JWT_FILTER",
    "PAYLOAD_KEY",
    "PUBLIC_ONLY_JWKS",
    "JwksSource",
    "jwks_cluster",
    "jwks_clusters",
    "has_usable_key",
    "jwks_source",
    "jwt_authentication",
    "jwt_filter",
    "rule_jwks_uri",
]
