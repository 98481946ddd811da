"""The newer Istio security fields, translated as Istio does and accepted by Envoy:
path templates, trust domains, `experimental.envoy.filters.*` conditions, bare service
accounts, `istio.io/dry-run` as Go's ParseBool reads it, JWT `presence`,
`spaceDelimitedClaims`, issuer-only rules, and ServiceEntry resolution DYNAMIC_DNS."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from envoy.extensions.filters.http.jwt_authn.v3.config_pb2 import JwtAuthentication
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2
from google.protobuf import json_format
from translate_kit import clusters, sidecar, snapshot

from authzkit import envoy_validate, hcm_bootstrap, write_bootstrap
from plait.api.security import Action
from plait.model.authz import PoliciesByAction
from plait.translate.egress import DFP_CLUSTER_TYPE
from plait.translate.jwt import PUBLIC_ONLY_JWKS, jwks_clusters, jwt_authentication, jwt_filter
from plait.translate.proxy import Translator
from plait.translate.rbac import RbacContext, rbac_config, rbac_filters
from policykit import by_action

POLICY = """---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: p, namespace: foo, annotations: {annotations}}}
spec: {spec}
"""
RA = """---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: ra, namespace: foo}}
spec: {{jwtRules: {rules}}}
"""


def policies(text: str) -> PoliciesByAction:
    return by_action(snapshot(text).authorization_policies)


def rbac(spec: str, annotations: str = "{}") -> dict[str, Any]:
    config = rbac_config(
        policies(POLICY.format(spec=spec, annotations=annotations)).allow,
        Action.ALLOW,
        RbacContext(),
    )
    assert config is not None
    return json_format.MessageToDict(config)


def test_path_templates_use_envoys_uri_template_matcher() -> None:
    config = rbac("{rules: [{to: [{operation: {paths: ['/a/{*}/b', '/c/{**}']}}]}]}")
    rules = config["rules"]["policies"]["ns[foo]-policy[p]-rule[0]"]["permissions"][0]
    templates = [r["uriTemplate"] for r in rules["andRules"]["rules"][0]["orRules"]["rules"]]
    assert [t["name"] for t in templates] == ["uri-template", "uri-template"]
    assert {t["typedConfig"]["@type"] for t in templates} == {
        "type.googleapis.com/" + uri_template_match_pb2.UriTemplateMatchConfig.DESCRIPTOR.full_name
    }
    assert [t["typedConfig"]["pathTemplate"] for t in templates] == ["/a/*/b", "/c/**"]


def test_trust_domains_match_the_peer_spiffe_id() -> None:
    config = rbac(
        "{rules: [{from: [{source: {trustDomains: [td1, '*.corp'], notTrustDomains: ['*']}}]}]}"
    )
    ids = config["rules"]["policies"]["ns[foo]-policy[p]-rule[0]"]["principals"][0]["andIds"]["ids"]
    names = [i["authenticated"]["principalName"] for i in ids[0]["orIds"]["ids"]]
    assert names == [
        {"prefix": "spiffe://td1/"},
        {"safeRegex": {"regex": r"spiffe://[^/]*\.corp/.*"}},
    ]
    assert ids[1]["notId"]["orIds"]["ids"][0]["authenticated"]["principalName"] == {
        "prefix": "spiffe://"
    }


def test_source_trust_domain_and_experimental_filter_conditions() -> None:
    config = rbac(
        "{rules: [{when: [{key: source.trustDomain, values: [td1]}, "
        "{key: 'experimental.envoy.filters.network.mysql_proxy[db.table]', values: ['[update]']}]}]}"
    )
    policy = config["rules"]["policies"]["ns[foo]-policy[p]-rule[0]"]
    principal = policy["principals"][0]["andIds"]["ids"][0]["orIds"]["ids"][0]
    assert principal["authenticated"]["principalName"] == {"prefix": "spiffe://td1/"}
    permission = policy["permissions"][0]["andRules"]["rules"][0]["orRules"]["rules"][0]
    matcher = permission["sourcedMetadata"]["metadataMatcher"]
    assert matcher["filter"] == "envoy.filters.network.mysql_proxy"
    assert matcher["path"] == [{"key": "db.table"}]
    assert matcher["value"] == {"listMatch": {"oneOf": {"stringMatch": {"exact": "update"}}}}


def test_a_bare_service_account_is_in_the_policys_namespace() -> None:
    config = rbac("{rules: [{from: [{source: {serviceAccounts: [sa1]}}]}]}")
    ids = config["rules"]["policies"]["ns[foo]-policy[p]-rule[0]"]["principals"][0]["andIds"]["ids"]
    regex = ids[0]["orIds"]["ids"][0]["authenticated"]["principalName"]["safeRegex"]["regex"]
    assert regex == r"spiffe://.+/ns/foo/(.+/|)sa/sa1(/.+)?"


def test_dry_run_t_is_shadow_only() -> None:
    config = rbac("{rules: [{to: [{operation: {methods: [GET]}}]}]}", "{istio.io/dry-run: 'T'}")
    assert "rules" not in config and "shadowRules" in config
    config = rbac("{rules: [{to: [{operation: {methods: [GET]}}]}]}", "{istio.io/dry-run: 'f'}")
    assert "rules" in config and "shadowRules" not in config


def jwt(rules: str) -> dict[str, Any]:
    snap = snapshot(RA.format(rules=rules))
    config = jwt_authentication(snap, snap.request_authentications)
    assert config is not None
    return json_format.MessageToDict(config)


def test_presence_required_drops_allow_missing() -> None:
    config = jwt("[{issuer: a, jwksUri: 'https://a.example/k', presence: REQUIRED}]")
    assert config["rules"][0]["requires"] == {"providerName": "origins-0"}
    mixed = jwt(
        "[{issuer: a, jwksUri: 'https://a.example/k', presence: REQUIRED}, "
        "{issuer: b, jwksUri: 'https://b.example/k'}]"
    )
    assert mixed["rules"][0]["requires"] == {
        "requiresAll": {
            "requirements": [
                {"providerName": "origins-0"},
                {
                    "requiresAny": {
                        "requirements": [{"providerName": "origins-1"}, {"allowMissing": {}}]
                    }
                },
            ]
        }
    }


def test_space_delimited_claims_add_to_istios_defaults() -> None:
    config = jwt("[{issuer: a, jwksUri: 'https://a.example/k', spaceDelimitedClaims: [roles]}]")
    normalize = config["providers"]["origins-0"]["normalizePayloadInMetadata"]
    assert normalize["spaceDelimitedClaims"] == ["permission", "roles", "scope"]


def test_issuer_only_fails_tokens_closed_and_empty_issuer_checks_none() -> None:
    config = jwt(
        "[{issuer: 'https://accounts.example'}, {issuer: '', jwksUri: 'https://k.example/k'}]"
    )
    providers = config["providers"]
    assert providers["origins-1"]["localJwks"]["inlineString"] == PUBLIC_ONLY_JWKS
    assert "issuer" not in providers["origins-0"]  # sorted: '' first; no issuer check


def test_issuer_only_uses_the_discovered_jwks_uri_and_its_cluster() -> None:
    snap = dataclasses.replace(
        snapshot(RA.format(rules="[{issuer: 'http://127.0.0.1:9000/idp'}]")),
        discovered_jwks_uris={"http://127.0.0.1:9000/idp": "http://127.0.0.1:9001/keys"},
    )
    config = json_format.MessageToDict(
        jwt_authentication(snap, snap.request_authentications) or JwtAuthentication()
    )
    remote = config["providers"]["origins-0"]["remoteJwks"]
    cluster = "outbound|9001||127.0.0.1"
    assert remote["httpUri"] == {
        "uri": "http://127.0.0.1:9001/keys",
        "cluster": cluster,
        "timeout": "5s",
    }
    assert [c.name for c in jwks_clusters(snap, snap.request_authentications)] == [cluster]
    # another issuer's discovery does not apply
    other = dataclasses.replace(snap, discovered_jwks_uris={"http://elsewhere": "http://x/k"})
    config = json_format.MessageToDict(
        jwt_authentication(other, other.request_authentications) or JwtAuthentication()
    )
    assert config["providers"]["origins-0"]["localJwks"]["inlineString"] == PUBLIC_ONLY_JWKS
    assert jwks_clusters(other, other.request_authentications) == []


def test_envoy_accepts_the_new_fields(tmp_path: Path) -> None:
    text = POLICY.format(
        annotations="{}",
        spec="{rules: [{from: [{source: {trustDomains: [td1], serviceAccounts: [sa1]}}], "
        "to: [{operation: {paths: ['/a/{*}/b', '/c/{**}']}}], "
        "when: [{key: source.trustDomain, values: ['*.td']}, "
        "{key: 'experimental.envoy.filters.http.jwt_authn[x]', values: [y]}]}]}",
    ) + RA.format(
        rules="[{issuer: 'https://accounts.example'}, {issuer: '', jwksUri: "
        "'https://k.example/k', presence: REQUIRED, spaceDelimitedClaims: [roles]}]"
    )
    snap = snapshot(text)
    jwt_f = jwt_filter(snap, snap.request_authentications)
    assert jwt_f is not None
    filters = [jwt_f, *rbac_filters(policies(text), RbacContext())]
    bootstrap = hcm_bootstrap({"main": filters}, jwks_clusters(snap, snap.request_authentications))
    result = envoy_validate(write_bootstrap(tmp_path / "b.json", bootstrap))
    assert result.returncode == 0, result.stdout + result.stderr


DYNAMIC = """---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild}
spec:
  hosts: ['*.example.com']
  resolution: DYNAMIC_DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
"""


def test_dynamic_dns_is_a_dynamic_forward_proxy_cluster() -> None:
    config = Translator(snapshot(DYNAMIC)).config_for(sidecar("frontend-0"))
    cluster = clusters(config)["outbound|80||*.example.com"]
    assert cluster.cluster_type.name == DFP_CLUSTER_TYPE
