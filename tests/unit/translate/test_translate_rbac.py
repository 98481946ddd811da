"""translate.rbac: AuthorizationPolicy → Envoy RBAC filters, shape for shape as Istio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as rbac_filter_pb2
from google.protobuf import json_format
from translate_kit import snapshot

from authzkit import envoy_validate, hcm_bootstrap, write_bootstrap
from plait.api.security import Action
from plait.model.authz import PoliciesByAction
from plait.translate.rbac import (
    MATCH_NEVER,
    RBAC_FILTER,
    RbacContext,
    rbac_config,
    rbac_filters,
    string_match,
)
from policykit import by_action

CTX = RbacContext()


def _policies(text: str) -> PoliciesByAction:
    return by_action(snapshot(text).authorization_policies)


def _policy(spec: str, name: str = "p", ns: str = "foo", annotations: str = "{}") -> str:
    return f"""---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: {ns}, annotations: {annotations}}}
spec: {spec}
"""


def _config(spec: str, ctx: RbacContext = CTX) -> dict[str, Any]:
    policies = _policies(_policy(spec))
    action = next(a for a in Action if policies.of(a))
    config = rbac_config(policies.of(action), action, ctx)
    assert config is not None
    return json_format.MessageToDict(config)


def _rule(spec: str, ctx: RbacContext = CTX) -> dict[str, Any]:
    """The one RBAC policy the first rule of `spec` becomes."""
    return _config(spec, ctx)["rules"]["policies"]["ns[foo]-policy[p]-rule[0]"]


def _principal_ids(spec: str, ctx: RbacContext = CTX) -> list[dict[str, Any]]:
    rule = _rule(spec, ctx)
    assert len(rule["principals"]) == 1
    ids: list[dict[str, Any]] = rule["principals"][0]["andIds"]["ids"]
    return ids


def _permission_rules(spec: str, ctx: RbacContext = CTX) -> list[dict[str, Any]]:
    rule = _rule(spec, ctx)
    assert len(rule["permissions"]) == 1
    rules: list[dict[str, Any]] = rule["permissions"][0]["andRules"]["rules"]
    return rules


def _authn(m: dict[str, Any]) -> dict[str, Any]:
    return {"authenticated": {"principalName": m}}


def _or_ids(*ids: dict[str, Any]) -> dict[str, Any]:
    return {"orIds": {"ids": list(ids)}}


def _or_rules(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"orRules": {"rules": list(rules)}}


def _claim(path: list[str], value: dict[str, Any]) -> dict[str, Any]:
    return {
        "sourcedMetadata": {
            "metadataMatcher": {
                "filter": "envoy.filters.http.jwt_authn",
                "path": [{"key": k} for k in ["payload", *path]],
                "value": value,
            }
        }
    }


# --- string forms --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "prefix", "expected"),
    [
        ("a", "", {"exact": "a"}),
        ("a*", "", {"prefix": "a"}),
        ("*a", "", {"suffix": "a"}),
        ("*", "", {"safeRegex": {"regex": ".+"}}),
        ("td/ns/a", "spiffe://", {"exact": "spiffe://td/ns/a"}),
        ("td/ns/*", "spiffe://", {"prefix": "spiffe://td/ns/"}),
        ("*/sa/x.y", "spiffe://", {"safeRegex": {"regex": r"spiffe://.*/sa/x\.y"}}),
        ("*", "spiffe://", {"safeRegex": {"regex": ".+"}}),
    ],
)
def test_string_forms(value: str, prefix: str, expected: dict[str, Any]) -> None:
    assert json_format.MessageToDict(string_match(value, prefix)) == expected


# --- from ------------------------------------------------------------------------------------


def test_principals_match_the_peer_certificate_with_spiffe_prefix() -> None:
    ids = _principal_ids(
        '{rules: [{from: [{source: {principals: ["cluster.local/ns/a/sa/b", "*"]}}]}]}'
    )
    assert ids == [
        _or_ids(
            _authn({"exact": "spiffe://cluster.local/ns/a/sa/b"}),
            _authn({"safeRegex": {"regex": ".+"}}),
        )
    ]


def test_cluster_local_principals_name_the_mesh_trust_domain() -> None:
    ctx = RbacContext(trust_domain="example.org")
    ids = _principal_ids(
        '{rules: [{from: [{source: {principals: ["cluster.local/ns/a/sa/b", "other/ns/a/sa/b"]}}]}]}',
        ctx,
    )
    assert ids == [
        _or_ids(
            _authn({"exact": "spiffe://example.org/ns/a/sa/b"}),
            _authn({"exact": "spiffe://other/ns/a/sa/b"}),
        )
    ]


def test_not_principals_are_negated() -> None:
    ids = _principal_ids('{rules: [{from: [{source: {notPrincipals: ["x/ns/y/sa/*"]}}]}]}')
    assert ids == [{"notId": _or_ids(_authn({"prefix": "spiffe://x/ns/y/sa/"}))}]


def test_namespaces_and_service_accounts_are_istio_regexes() -> None:
    ids = _principal_ids(
        "{rules: [{from: [{source: {namespaces: [prod, 'team-*'], "
        'notServiceAccounts: ["prod/web.v1"]}}]}]}'
    )
    assert ids == [
        {
            "notId": _or_ids(
                _authn({"safeRegex": {"regex": r"spiffe://.+/ns/prod/(.+/|)sa/web\.v1(/.+)?"}})
            )
        },
        _or_ids(
            _authn({"safeRegex": {"regex": ".*/ns/prod/.*"}}),
            _authn({"safeRegex": {"regex": ".*/ns/team-.*/.*"}}),
        ),
    ]


def test_ip_blocks() -> None:
    ids = _principal_ids(
        '{rules: [{from: [{source: {ipBlocks: ["10.1.2.3", "10.0.0.0/8"], '
        'notRemoteIpBlocks: ["192.168.1.7/24"]}}]}]}'
    )
    assert ids == [
        {"notId": _or_ids({"remoteIp": {"addressPrefix": "192.168.1.0", "prefixLen": 24}})},
        _or_ids(
            {"directRemoteIp": {"addressPrefix": "10.1.2.3", "prefixLen": 32}},
            {"directRemoteIp": {"addressPrefix": "10.0.0.0", "prefixLen": 8}},
        ),
    ]


def test_request_principals_split_issuer_and_subject_at_the_last_slash() -> None:
    ids = _principal_ids(
        '{rules: [{from: [{source: {requestPrincipals: ["https://iss.io/a/alice"]}}]}]}'
    )
    assert ids == [
        {
            "andIds": {
                "ids": [
                    _claim(["iss"], {"stringMatch": {"exact": "https://iss.io/a"}}),
                    _claim(["sub"], {"stringMatch": {"exact": "alice"}}),
                ]
            }
        }
    ]


@pytest.mark.parametrize(
    ("value", "iss", "sub"),
    [
        ("*", {"safeRegex": {"regex": ".+"}}, {"safeRegex": {"regex": ".+"}}),
        ("iss/*", {"exact": "iss"}, {"safeRegex": {"regex": ".+"}}),
        ("iss/al*", {"exact": "iss"}, {"prefix": "al"}),
        ("*/alice", {"safeRegex": {"regex": ".+"}}, {"exact": "alice"}),
        ("*.io/alice", {"suffix": ".io"}, {"exact": "alice"}),
        ("iss*", {"prefix": "iss"}, {"safeRegex": {"regex": ".+"}}),
        ("*ice", {"safeRegex": {"regex": ".+"}}, {"suffix": "ice"}),
    ],
)
def test_request_principal_forms(value: str, iss: dict[str, Any], sub: dict[str, Any]) -> None:
    ids = _principal_ids(
        f'{{rules: [{{from: [{{source: {{notRequestPrincipals: ["{value}"]}}}}]}}]}}'
    )
    assert ids == [
        {
            "notId": {
                "andIds": {
                    "ids": [
                        _claim(["iss"], {"stringMatch": iss}),
                        _claim(["sub"], {"stringMatch": sub}),
                    ]
                }
            }
        }
    ]


def test_several_sources_are_ored_as_principals() -> None:
    rule = _rule("{rules: [{from: [{source: {namespaces: [a]}}, {source: {namespaces: [b]}}]}]}")
    assert len(rule["principals"]) == 2
    assert rule["permissions"] == [{"andRules": {"rules": [{"any": True}]}}]


# --- to --------------------------------------------------------------------------------------


def test_operation_fields_in_istio_order() -> None:
    rules = _permission_rules(
        "{rules: [{to: [{operation: {hosts: ['Shop.example', '*.example'], methods: [GET], "
        "notPaths: ['/admin*', '*.php'], paths: ['/api', '*'], ports: ['9080']}}]}]}",
        RbacContext(ports={9080: 15006}),
    )
    assert rules == [
        _or_rules(
            {
                "header": {
                    "name": ":authority",
                    "stringMatch": {"exact": "Shop.example", "ignoreCase": True},
                }
            },
            {
                "header": {
                    "name": ":authority",
                    "stringMatch": {"suffix": ".example", "ignoreCase": True},
                }
            },
        ),
        _or_rules({"header": {"name": ":method", "stringMatch": {"exact": "GET"}}}),
        _or_rules(
            {"urlPath": {"path": {"exact": "/api"}}},
            {"urlPath": {"path": {"safeRegex": {"regex": ".+"}}}},
        ),
        {
            "notRule": _or_rules(
                {"urlPath": {"path": {"prefix": "/admin"}}},
                {"urlPath": {"path": {"suffix": ".php"}}},
            )
        },
        _or_rules({"destinationPort": 15006}),  # workload port 9080 arrives at 15006
    ]


def test_unmapped_ports_stay_as_written_and_not_hosts_negate() -> None:
    rules = _permission_rules("{rules: [{to: [{operation: {notPorts: ['81'], notHosts: ['*']}}]}]}")
    assert rules == [
        {"notRule": _or_rules({"header": {"name": ":authority", "presentMatch": True}})},
        {"notRule": _or_rules({"destinationPort": 81})},
    ]


# --- when ------------------------------------------------------------------------------------


def test_when_conditions_join_principals_and_permissions() -> None:
    spec = """
      rules:
      - from: [{source: {namespaces: [a]}}]
        to: [{operation: {methods: [GET]}}]
        when:
        - {key: "request.headers[X-Token]", values: ["abc*"], notValues: ["*"]}
        - {key: source.ip, values: ["10.0.0.1"]}
        - {key: remote.ip, notValues: ["10.0.0.0/8"]}
        - {key: source.namespace, values: [b]}
        - {key: source.principal, values: ["cluster.local/ns/b/sa/c"]}
        - {key: source.serviceAccount, values: ["b/c", "d"]}
        - {key: destination.ip, values: ["127.0.0.1"]}
        - {key: destination.port, notValues: ["9080"]}
        - {key: connection.sni, values: ["*.shop"]}
    """
    rule = _rule(_yaml_spec(spec))
    principals = rule["principals"][0]["andIds"]["ids"]
    assert principals[0] == _or_ids(_authn({"safeRegex": {"regex": ".*/ns/a/.*"}}))
    assert principals[1:] == [
        _or_ids({"header": {"name": "X-Token", "stringMatch": {"prefix": "abc"}}}),
        {"notId": _or_ids({"header": {"name": "X-Token", "presentMatch": True}})},
        _or_ids({"directRemoteIp": {"addressPrefix": "10.0.0.1", "prefixLen": 32}}),
        {"notId": _or_ids({"remoteIp": {"addressPrefix": "10.0.0.0", "prefixLen": 8}})},
        _or_ids(_authn({"safeRegex": {"regex": ".*/ns/b/.*"}})),
        _or_ids(_authn({"exact": "spiffe://cluster.local/ns/b/sa/c"})),
        _or_ids(
            _authn({"safeRegex": {"regex": r"spiffe://.+/ns/b/(.+/|)sa/c(/.+)?"}}),
            _authn({"safeRegex": {"regex": r"spiffe://.+/ns/foo/(.+/|)sa/d(/.+)?"}}),
        ),
    ]
    permissions = rule["permissions"][0]["andRules"]["rules"]
    assert permissions == [
        _or_rules({"header": {"name": ":method", "stringMatch": {"exact": "GET"}}}),
        _or_rules({"destinationIp": {"addressPrefix": "127.0.0.1", "prefixLen": 32}}),
        {"notRule": _or_rules({"destinationPort": 9080})},
        _or_rules({"requestedServerName": {"suffix": ".shop"}}),
    ]


def _yaml_spec(block: str) -> str:
    """A block-style spec as a flow mapping the policy template accepts."""
    return yaml.safe_dump(yaml.safe_load(block), default_flow_style=True, width=10_000).strip()


def test_claims_match_strings_or_lists_and_nest() -> None:
    spec = _yaml_spec(
        """
        rules:
        - when:
          - {key: "request.auth.claims[groups]", values: [admin, "ops*"]}
          - {key: "request.auth.claims[realm][role]", notValues: [guest]}
          - {key: request.auth.audiences, values: [shop]}
          - {key: request.auth.presenter, values: [web]}
          - {key: request.auth.principal, values: ["iss/alice"]}
        """
    )
    ids = _principal_ids(spec)
    admin_or_ops = {
        "orMatch": {
            "valueMatchers": [
                {"stringMatch": {"exact": "admin"}},
                {"stringMatch": {"prefix": "ops"}},
            ]
        }
    }

    def string_or_list(value: dict[str, Any]) -> dict[str, Any]:
        return {"orMatch": {"valueMatchers": [{"listMatch": {"oneOf": value}}, value]}}

    guest = {"stringMatch": {"exact": "guest"}}
    assert ids == [
        _claim(["groups"], string_or_list(admin_or_ops)),
        {"notId": _claim(["realm", "role"], string_or_list(guest))},
        _claim(["aud"], string_or_list({"stringMatch": {"exact": "shop"}})),
        _claim(["azp"], string_or_list({"stringMatch": {"exact": "web"}})),
        {
            "andIds": {
                "ids": [
                    _claim(["iss"], {"stringMatch": {"exact": "iss"}}),
                    _claim(["sub"], {"stringMatch": {"exact": "alice"}}),
                ]
            }
        },
    ]


# --- policies and filters ----------------------------------------------------------------------


def test_rules_become_named_policies_and_empty_rule_matches_all() -> None:
    config = _config("{rules: [{}, {to: [{operation: {methods: [GET]}}]}]}")
    assert "action" not in config["rules"]  # ALLOW is the proto default
    assert sorted(config["rules"]["policies"]) == [
        "ns[foo]-policy[p]-rule[0]",
        "ns[foo]-policy[p]-rule[1]",
    ]
    assert config["rules"]["policies"]["ns[foo]-policy[p]-rule[0]"] == {
        "permissions": [{"andRules": {"rules": [{"any": True}]}}],
        "principals": [{"andIds": {"ids": [{"any": True}]}}],
    }


def test_empty_allow_policy_never_matches_so_everything_is_denied() -> None:
    config = _config("{}")
    assert "action" not in config["rules"]  # ALLOW
    assert config["rules"]["policies"] == {
        "ns[foo]-policy[p]-rule[0]": json_format.MessageToDict(MATCH_NEVER)
    }


def test_filters_in_istio_order_audit_deny_allow_and_custom_skipped() -> None:
    text = (
        _policy("{rules: [{}]}", "allow")
        + _policy("{action: DENY, rules: [{}]}", "deny")
        + _policy("{action: AUDIT, rules: [{}]}", "audit")
        + _policy("{action: CUSTOM, provider: {name: ext}, rules: [{}]}", "custom")
    )
    filters = rbac_filters(_policies(text), CTX)
    actions = []
    for f in filters:
        assert f.name == RBAC_FILTER
        config = rbac_filter_pb2.RBAC()
        assert f.typed_config.Unpack(config)
        actions.append(config.rules.action)
        (name,) = config.rules.policies
        assert name.startswith("ns[foo]-policy[")
    assert actions == [rbac_pb2.RBAC.LOG, rbac_pb2.RBAC.DENY, rbac_pb2.RBAC.ALLOW]


def test_no_allow_policy_no_allow_filter() -> None:
    filters = rbac_filters(_policies(_policy("{action: DENY, rules: [{}]}")), CTX)
    assert len(filters) == 1
    assert rbac_filters(PoliciesByAction(), CTX) == []


def test_dry_run_policies_go_to_shadow_rules() -> None:
    text = _policy("{rules: [{}]}", "dry", annotations='{"istio.io/dry-run": "true"}')
    policies = _policies(text)
    config = rbac_config(policies.allow, Action.ALLOW, CTX)
    assert config is not None
    assert not config.HasField("rules")  # nothing enforced: the filter allows everything
    assert list(config.shadow_rules.policies) == ["ns[foo]-policy[dry]-rule[0]"]
    assert config.shadow_rules_stat_prefix == "istio_dry_run_allow_"


def test_envoy_accepts_every_form(tmp_path: Path) -> None:
    spec = _yaml_spec(
        """
        rules:
        - from:
          - source:
              principals: ["cluster.local/ns/a/sa/b", "*", "*-x", "p*"]
              notRequestPrincipals: ["*"]
              namespaces: ["a", "b-*", "*"]
              ipBlocks: ["10.0.0.0/8", "::1"]
              remoteIpBlocks: ["1.2.3.4"]
          to:
          - operation:
              hosts: ["a.com", "*.b.com", "c.*", "*"]
              methods: [GET, "P*"]
              paths: ["/x", "/y/*", "*.php", "*"]
              ports: ["80"]
              notPorts: ["81"]
          when:
          - {key: "request.headers[x]", values: ["*"], notValues: ["a*"]}
          - {key: "request.auth.claims[a][b]", values: ["c", "*"]}
          - {key: request.auth.audiences, notValues: ["x"]}
          - {key: destination.port, values: ["80"]}
          - {key: source.serviceAccount, notValues: ["a/b"]}
          - {key: connection.sni, values: ["*"]}
        """
    )
    text = _policy(spec) + _policy("{action: DENY, rules: [{}]}", "d") + _policy("{}", "e")
    filters = rbac_filters(_policies(text), CTX)
    result = envoy_validate(write_bootstrap(tmp_path / "b.json", hcm_bootstrap({"l": filters})))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Deprecated" not in result.stdout + result.stderr
