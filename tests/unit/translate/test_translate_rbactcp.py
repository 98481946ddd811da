"""AuthorizationPolicy on TCP chains: Istio's rule for HTTP-only fields (an ALLOW rule
that needs them never matches, a DENY rule drops them) and the network RBAC filter."""

from __future__ import annotations

from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2

from plait.api import load_text
from plait.api.result import of_kind
from plait.api.security import Action, AuthorizationPolicy
from plait.model.authz import PoliciesByAction
from plait.translate.rbac import RbacContext
from plait.translate.rbactcp import NETWORK_RBAC_FILTER, needs_http, tcp_rbac_filters

POLICIES = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-mixed}
spec:
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/client]}}]
    to: [{operation: {ports: ["9000"]}}]
  - to: [{operation: {methods: [GET]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-get}
spec:
  action: DENY
  rules:
  - from: [{source: {namespaces: [other]}}]
    to: [{operation: {methods: [GET], ports: ["9000"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-http-only}
spec:
  rules:
  - to: [{operation: {paths: [/x]}}]
"""


def _policies(*names: str) -> PoliciesByAction:
    loaded = [
        r
        for r in of_kind(load_text(POLICIES, "p.yaml").resources, AuthorizationPolicy)
        if r.resource.metadata.name in names
    ]
    return PoliciesByAction(
        deny=tuple(i for i in loaded if i.resource.spec.action is Action.DENY),
        allow=tuple(i for i in loaded if i.resource.spec.action is Action.ALLOW),
    )


def _configs(*names: str) -> list[network_rbac_pb2.RBAC]:
    out = []
    for f in tcp_rbac_filters(_policies(*names), RbacContext()):
        assert f.name == NETWORK_RBAC_FILTER
        config = network_rbac_pb2.RBAC()
        assert f.typed_config.Unpack(config)
        out.append(config)
    return out


def test_an_allow_rule_needing_http_never_matches_tcp() -> None:
    (config,) = _configs("allow-mixed")
    assert config.stat_prefix == "tcp."
    assert config.rules.action == config.rules.ALLOW
    assert list(config.rules.policies) == ["ns[default]-policy[allow-mixed]-rule[0]"]
    rule = config.rules.policies["ns[default]-policy[allow-mixed]-rule[0]"]
    assert "client" in str(rule.principals) and "9000" in str(rule.permissions)


def test_an_allow_policy_of_http_rules_only_allows_no_tcp() -> None:
    (config,) = _configs("allow-http-only")
    (policy,) = config.rules.policies.values()
    assert policy.permissions[0].not_rule.any and policy.principals[0].not_id.any


def test_a_deny_rule_drops_its_http_fields_and_keeps_the_rest() -> None:
    (config,) = _configs("deny-get")
    assert config.rules.action == config.rules.DENY
    (policy,) = config.rules.policies.values()
    text = str(policy)
    assert "other" in text and "9000" in text and "GET" not in text


def test_needs_http() -> None:
    items = of_kind(load_text(POLICIES, "p.yaml").resources, AuthorizationPolicy)
    rules = {r.resource.metadata.name: r.resource.spec.rules for r in items}
    assert [needs_http(r) for r in rules["allow-mixed"]] == [False, True]
    assert needs_http(rules["deny-get"][0])
