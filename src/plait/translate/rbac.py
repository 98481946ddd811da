"""AuthorizationPolicy → Envoy RBAC HTTP filters (`envoy.filters.http.rbac`).

Istio's mapping (pilot/pkg/security/authz/builder/builder.go, model/*.go; the matchers
are in translate/rbacmatch.py), kept shape for shape so that Istio's debugging guides
read the same on plait:

- one filter per action, in Istio's order AUDIT (RBAC action LOG: never denies, so denied
  requests are audited too), DENY, ALLOW; no policy of an action, no filter. No ALLOW
  filter means allowed; an ALLOW filter denies what none of its policies match.
- each rule becomes an RBAC policy `ns[NS]-policy[NAME]-rule[I]`; a policy without rules
  becomes one policy that never matches (an ALLOW `spec: {}` then denies everything; a
  DENY without rules denies nothing).
- a rule's `from` entries are OR'd principals, its `to` entries OR'd permissions (a part
  left out is `any`); inside one entry every field is AND'd, the values of one field OR'd,
  a not-field is NOT(OR(values)); each `when` condition is AND'd onto every principal
  (source, header and JWT keys) or every permission (destination keys).
- peer identities (`principals`, `namespaces`, `serviceAccounts`, `source.*`) match the
  client certificate's URI SAN (`authenticated.principal_name`), so a plain-text caller
  has none; `cluster.local/...` principals name the mesh's own trust domain (Istio).
- `requestPrincipals` / `request.auth.*` match the JWT payload that `jwt_authn` left in
  dynamic metadata (translate/jwt.py): `ISS/SUB` is split at the last `/` into an `iss`
  and a `sub` match, as Istio does; `*` is any verified token. Claims may be strings or
  lists: a claim matches when it equals a value or is a list holding one.
- a denied request gets Envoy's 403 with body `RBAC: access denied`.
- annotation `istio.io/dry-run` (true as Go's ParseBool reads it: `true`, `t`, `1`, ...)
  puts the policy into shadow rules (stats only).
- path templates (`/a/{*}/b`, `/a/{**}`) use Envoy's `uri_template` matcher; trust
  domains match the peer's SPIFFE ID `spiffe://TD/...`; `experimental.envoy.filters.F[K]`
  matches filter F's dynamic metadata at K (all as Istio does).

Ports (`ports`, `destination.port`) are workload ports, as in Istio. Envoy compares them
with the port the request arrived at, which in local mode is a host port chosen by plait:
`RbacContext.ports` maps workload (or Gateway server) ports to that listener port. A local
sidecar serves all its workload ports on one listener, so there a port condition holds for
any of them (requests for different workload ports reach the same app anyway).

Paths are matched as Envoy sees them after the HCM's normalisation (Istio's default
`BASE`: RFC 3986 dot segments), without the query string. Hosts match `:authority`
case-insensitively and as written: `reviews` does not match `reviews:9080` (Istio
neither); write `reviews:9080` or `reviews*`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.rbac.v3.rbac_pb2 import Permission, Principal
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as rbac_filter_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.matcher.v3 import path_pb2

from plait.api import Loaded
from plait.api.security import (
    FILTER_KEY,
    Action,
    AuthorizationPolicy,
    Condition,
    Rule,
    RuleTo,
    Source,
    is_dry_run,
    is_path_template,
)
from plait.model.authz import PoliciesByAction
from plait.model.meshsettings import DEFAULT_TRUST_DOMAIN
from plait.translate.rbacmatch import (
    authenticated,
    cidr,
    claim,
    filter_metadata,
    header_match,
    p_and,
    p_not,
    p_or,
    path_template,
    perm_and,
    perm_not,
    perm_or,
    quote_meta,
    regex,
    request_principal,
    string_match,
    trust_domain,
)

RBAC_FILTER = "envoy.filters.http.rbac"
DRY_RUN_STAT_PREFIX = {Action.ALLOW: "istio_dry_run_allow_", Action.DENY: "istio_dry_run_deny_"}
SPIFFE_PREFIX = "spiffe://"
ACCESS_DENIED_BODY = "RBAC: access denied"
"""Envoy's local reply for a request the RBAC filter denies (status 403)."""

_ENVOY_ACTION = {
    Action.ALLOW: rbac_pb2.RBAC.ALLOW,
    Action.DENY: rbac_pb2.RBAC.DENY,
    Action.AUDIT: rbac_pb2.RBAC.LOG,
}
FILTER_ORDER = (Action.AUDIT, Action.DENY, Action.ALLOW)


@dataclass(frozen=True)
class RbacContext:
    """What translation needs to know about the proxy besides the policies."""

    trust_domain: str = DEFAULT_TRUST_DOMAIN
    ports: Mapping[int, int] = field(default_factory=dict)
    """Workload (or Gateway server) port → the listener port its requests arrive at."""


MATCH_NEVER = rbac_pb2.Policy(
    permissions=[perm_not(Permission(any=True))], principals=[p_not(Principal(any=True))]
)
"""Istio's policy for a policy without rules."""


# --- principals (who) -------------------------------------------------------------------

PrincipalsOf = Callable[[Sequence[str]], Principal]
PermissionsOf = Callable[[Sequence[str]], Permission]


def _each_p(one: Callable[[str], Principal]) -> PrincipalsOf:
    return lambda values: p_or([one(v) for v in values])


def _each_perm(one: Callable[[str], Permission]) -> PermissionsOf:
    return lambda values: perm_or([one(v) for v in values])


def _peer_principal(ctx: RbacContext) -> PrincipalsOf:
    def one(value: str) -> Principal:
        domain, sep, rest = value.partition("/")
        if sep and domain == DEFAULT_TRUST_DOMAIN and ctx.trust_domain != DEFAULT_TRUST_DOMAIN:
            value = f"{ctx.trust_domain}/{rest}"  # `cluster.local` names the local domain
        return authenticated(string_match(value, SPIFFE_PREFIX))

    return _each_p(one)


def _namespace(value: str) -> Principal:
    pattern = ".*".join(quote_meta(part) for part in value.split("*"))
    return authenticated(regex(f".*/ns/{pattern}/.*"))


def _service_account(policy_namespace: str) -> PrincipalsOf:
    def one(value: str) -> Principal:
        ns, sep, sa = value.partition("/")
        if not sep:
            ns, sa = policy_namespace, value
        return authenticated(
            regex(f"spiffe://.+/ns/{quote_meta(ns)}/(.+/|)sa/{quote_meta(sa)}(/.+)?")
        )

    return _each_p(one)


def _request_principals(values: Sequence[str]) -> Principal:
    ors = [request_principal(v) for v in values]
    return ors[0] if len(ors) == 1 else p_or(ors)


def _principal_terms(
    values: Sequence[str], not_values: Sequence[str], of: PrincipalsOf
) -> list[Principal]:
    """`of(values)` AND NOT `of(not_values)`, leaving out what is not set."""
    return ([of(values)] if values else []) + ([p_not(of(not_values))] if not_values else [])


def _permission_terms(
    values: Sequence[str], not_values: Sequence[str], of: PermissionsOf
) -> list[Permission]:
    return ([of(values)] if values else []) + ([perm_not(of(not_values))] if not_values else [])


def _source_terms(source: Source, namespace: str, ctx: RbacContext) -> list[Principal]:
    """Istio's order: trust domains, principals, requestPrincipals, serviceAccounts,
    namespaces, remote IPs, IPs."""
    s = source
    return [
        *_principal_terms(s.trust_domains, s.not_trust_domains, _each_p(trust_domain)),
        *_principal_terms(s.principals, s.not_principals, _peer_principal(ctx)),
        *_principal_terms(s.request_principals, s.not_request_principals, _request_principals),
        *_principal_terms(s.service_accounts, s.not_service_accounts, _service_account(namespace)),
        *_principal_terms(s.namespaces, s.not_namespaces, _each_p(_namespace)),
        *_principal_terms(
            s.remote_ip_blocks,
            s.not_remote_ip_blocks,
            _each_p(lambda v: Principal(remote_ip=cidr(v))),
        ),
        *_principal_terms(
            s.ip_blocks, s.not_ip_blocks, _each_p(lambda v: Principal(direct_remote_ip=cidr(v)))
        ),
    ]


# --- permissions (what) -----------------------------------------------------------------


def _port(ctx: RbacContext) -> PermissionsOf:
    return _each_perm(lambda v: Permission(destination_port=ctx.ports.get(int(v), int(v))))


def _host(value: str) -> Permission:
    return Permission(header=header_match(":authority", value, ignore_case=True))


def _method(value: str) -> Permission:
    return Permission(header=header_match(":method", value))


def _path(value: str) -> Permission:
    if is_path_template(value):
        return path_template(value)
    return Permission(url_path=path_pb2.PathMatcher(path=string_match(value)))


_CLAIM_PATH = re.compile(r"\[([^\[\]]+)\]")


def _condition_terms(
    cond: Condition, namespace: str, ctx: RbacContext
) -> tuple[list[Principal], list[Permission]]:
    """One `when` condition: (principal terms, permission terms), one of them empty."""
    key, vals, nots = cond.key, cond.values, cond.not_values
    permissions: dict[str, PermissionsOf] = {
        "destination.ip": _each_perm(lambda v: Permission(destination_ip=cidr(v))),
        "destination.port": _port(ctx),
        "connection.sni": _each_perm(lambda v: Permission(requested_server_name=string_match(v))),
    }
    if key in permissions:
        return [], _permission_terms(vals, nots, permissions[key])
    found = FILTER_KEY.match(key)
    if found:
        filter_name, meta_key = found.groups()
        of_meta = _each_perm(lambda v: filter_metadata(filter_name, meta_key, v))
        return [], _permission_terms(vals, nots, of_meta)
    principals: dict[str, PrincipalsOf] = {
        "source.ip": _each_p(lambda v: Principal(direct_remote_ip=cidr(v))),
        "remote.ip": _each_p(lambda v: Principal(remote_ip=cidr(v))),
        "source.namespace": _each_p(_namespace),
        "source.principal": _peer_principal(ctx),
        "source.serviceAccount": _service_account(namespace),
        "source.trustDomain": _each_p(trust_domain),
        "request.auth.principal": _request_principals,
        "request.auth.audiences": lambda vs: claim(["aud"], vs),
        "request.auth.presenter": lambda vs: claim(["azp"], vs),
    }
    if key in principals:
        of = principals[key]
    elif key.startswith("request.headers["):
        name = key[len("request.headers[") : -1]
        of = _each_p(lambda v: Principal(header=header_match(name, v)))
    elif key.startswith("request.auth.claims["):
        path = _CLAIM_PATH.findall(key[len("request.auth.claims") :])
        of = lambda vs: claim(path, vs)  # noqa: E731
    else:  # api.security refuses any other key
        raise ValueError(f"unknown condition key {key!r}")
    return _principal_terms(vals, nots, of), []


# --- rules, policies, filters -----------------------------------------------------------


def policy_name(namespace: str, name: str, index: int) -> str:
    return f"ns[{namespace}]-policy[{name}]-rule[{index}]"


def rule_policy(rule: Rule, namespace: str, ctx: RbacContext) -> rbac_pb2.Policy:
    """One rule: OR over `from` × `when` principals, OR over `to` × `when` permissions."""
    base_principals: list[Principal] = []
    base_permissions: list[Permission] = []
    for cond in rule.when:
        principals, permissions = _condition_terms(cond, namespace, ctx)
        base_principals += principals
        base_permissions += permissions
    principal_sets = [
        _source_terms(f.source, namespace, ctx) + base_principals for f in rule.from_
    ] or [base_principals]
    permission_sets = [_operation_terms(t, ctx) + base_permissions for t in rule.to] or [
        base_permissions
    ]
    return rbac_pb2.Policy(
        principals=[p_and(ids or [Principal(any=True)]) for ids in principal_sets],
        permissions=[perm_and(rules or [Permission(any=True)]) for rules in permission_sets],
    )


def _operation_terms(to: RuleTo, ctx: RbacContext) -> list[Permission]:
    """Istio's order: hosts, methods, paths, ports."""
    o = to.operation
    return [
        *_permission_terms(o.hosts, o.not_hosts, _each_perm(_host)),
        *_permission_terms(o.methods, o.not_methods, _each_perm(_method)),
        *_permission_terms(o.paths, o.not_paths, _each_perm(_path)),
        *_permission_terms(o.ports, o.not_ports, _port(ctx)),
    ]


def rbac_config(
    items: Sequence[Loaded], action: Action, ctx: RbacContext
) -> rbac_filter_pb2.RBAC | None:
    """The RBAC filter config for the policies `items` of one action; None without any."""
    if not items or action not in _ENVOY_ACTION:
        return None
    enforced = rbac_pb2.RBAC(action=_ENVOY_ACTION[action])
    shadow = rbac_pb2.RBAC(action=_ENVOY_ACTION[action])
    has_enforced = has_shadow = False
    for item in items:
        policy = item.resource
        if not isinstance(policy, AuthorizationPolicy):
            raise TypeError(f"{policy.kind} is not an AuthorizationPolicy")
        ns, name = policy.metadata.namespace, policy.metadata.name
        target = shadow if is_dry_run(policy) else enforced
        has_shadow |= target is shadow
        has_enforced |= target is enforced
        for i, rule in enumerate(policy.spec.rules):
            target.policies[policy_name(ns, name, i)].CopyFrom(rule_policy(rule, ns, ctx))
        if not policy.spec.rules:
            target.policies[policy_name(ns, name, 0)].CopyFrom(MATCH_NEVER)
    config = rbac_filter_pb2.RBAC()
    if has_enforced:
        config.rules.CopyFrom(enforced)
    if has_shadow:
        config.shadow_rules.CopyFrom(shadow)
        config.shadow_rules_stat_prefix = DRY_RUN_STAT_PREFIX.get(action, "")
    return config


def rbac_filters(policies: PoliciesByAction, ctx: RbacContext) -> list[hcm_pb2.HttpFilter]:
    """AUDIT, DENY, ALLOW filters for the policies applying to one proxy (CUSTOM is not
    applied: it needs an external authorizer plait does not have)."""
    out: list[hcm_pb2.HttpFilter] = []
    for action in FILTER_ORDER:
        config = rbac_config(policies.of(action), action, ctx)
        if config is not None:
            f = hcm_pb2.HttpFilter(name=RBAC_FILTER)
            f.typed_config.Pack(config)
            out.append(f)
    return out


__all__ = [
    "ACCESS_DENIED_BODY",
    "FILTER_ORDER",
    "MATCH_NEVER",
    "RBAC_FILTER",
    "RbacContext",
    "header_match",
    "policy_name",
    "rbac_config",
    "rbac_filters",
    "rule_policy",
    "string_match",
]
