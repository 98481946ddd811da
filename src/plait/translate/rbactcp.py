"""AuthorizationPolicy → Envoy network RBAC filters (`envoy.filters.network.rbac`) for
the TCP filter chains of a captured sidecar's inbound listener.

Same policies, names and matchers as the HTTP filters (`rbac`), with Istio's rule for
fields a TCP connection does not have (hosts, methods, paths, request principals and
`request.*` conditions; pilot/pkg/security/authz/builder, "buildTCP"):

- in an ALLOW (or AUDIT) policy, a rule that needs one of them never matches TCP;
  an ALLOW policy whose rules all need them then allows no TCP at all;
- in a DENY policy, those fields are dropped, so the rule denies at least what it would
  have denied (it fails closed).

Principals (`principals`, `namespaces`, `source.principal`) match the peer certificate,
so they hold only over mesh mTLS; `ports` match the connection's original destination
port; `ipBlocks` its source address. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2

from plait.api import Loaded
from plait.api.security import Action, AuthorizationPolicy, Operation, Rule, Source
from plait.model.authz import PoliciesByAction
from plait.translate.rbac import FILTER_ORDER, RbacContext, rbac_config

NETWORK_RBAC_FILTER = "envoy.filters.network.rbac"
STAT_PREFIX = "tcp."
_HTTP_OPERATION = ("hosts", "not_hosts", "methods", "not_methods", "paths", "not_paths")
_HTTP_SOURCE = ("request_principals", "not_request_principals")


def _http_condition(key: str) -> bool:
    return key.startswith("request.")


def needs_http(rule: Rule) -> bool:
    """Whether the rule names a field only an HTTP request has."""
    return (
        any(getattr(t.operation, f) for t in rule.to for f in _HTTP_OPERATION)
        or any(getattr(f.source, n) for f in rule.from_ for n in _HTTP_SOURCE)
        or any(_http_condition(c.key) for c in rule.when)
    )


def _without_http(rule: Rule) -> Rule:
    """The rule with its HTTP-only fields removed (DENY policies, as Istio)."""
    no_op: dict[str, tuple[str, ...]] = {f: () for f in _HTTP_OPERATION}
    no_src: dict[str, tuple[str, ...]] = {f: () for f in _HTTP_SOURCE}
    return rule.model_copy(
        update={
            "to": tuple(
                t.model_copy(update={"operation": Operation.model_copy(t.operation, update=no_op)})
                for t in rule.to
            ),
            "from_": tuple(
                f.model_copy(update={"source": Source.model_copy(f.source, update=no_src)})
                for f in rule.from_
            ),
            "when": tuple(c for c in rule.when if not _http_condition(c.key)),
        }
    )


def _tcp_view(item: Loaded, action: Action) -> Loaded:
    policy = item.resource
    if not isinstance(policy, AuthorizationPolicy) or not policy.spec.rules:
        return item
    if action is Action.DENY:
        rules = tuple(_without_http(r) for r in policy.spec.rules)
    else:
        rules = tuple(r for r in policy.spec.rules if not needs_http(r))
        if not rules:  # every rule needs HTTP: the policy matches no connection
            return Loaded(_never(policy), item.source)
    spec = policy.spec.model_copy(update={"rules": rules})
    return Loaded(policy.model_copy(update={"spec": spec}), item.source)


def _never(policy: AuthorizationPolicy) -> AuthorizationPolicy:
    """A policy whose one rule matches nothing (`rbac.MATCH_NEVER` comes from no rules,
    which would read as "allow nothing" only for ALLOW: the same here)."""
    return policy.model_copy(update={"spec": policy.spec.model_copy(update={"rules": ()})})


def tcp_rbac_filters(policies: PoliciesByAction, ctx: RbacContext) -> list[lc.Filter]:
    """AUDIT, DENY, ALLOW network filters for the policies applying to one proxy."""
    out: list[lc.Filter] = []
    for action in FILTER_ORDER:
        items: Sequence[Loaded] = [_tcp_view(i, action) for i in policies.of(action)]
        config = rbac_config(items, action, ctx)
        if config is None:
            continue
        network = network_rbac_pb2.RBAC(stat_prefix=STAT_PREFIX)
        if config.HasField("rules"):
            network.rules.CopyFrom(config.rules)
        if config.HasField("shadow_rules"):
            network.shadow_rules.CopyFrom(config.shadow_rules)
            network.shadow_rules_stat_prefix = config.shadow_rules_stat_prefix
        f = lc.Filter(name=NETWORK_RBAC_FILTER)
        f.typed_config.Pack(network)
        out.append(f)
    return out
