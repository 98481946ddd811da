"""AuthorizationPolicy rules that can never match, and CUSTOM policies plait cannot apply.

A rule matches when any `from`, any `to` and every `when` match (Istio); inside a `from`
or `to` entry every field set must match. So a rule can never match when a `when`
condition never holds, or every `from` (or every `to`) entry never matches. An entry or
condition never matches when:

- a field and its not-form list the same values (`methods: [GET]`, `notMethods: [GET]`);
  a value in both that leaves others is reported too (it is dead);
- it needs the caller's peer identity (`principals`, `namespaces`, `serviceAccounts`,
  `source.principal`/`.namespace`/`.serviceAccount` values) while every selected
  workload is under PeerAuthentication DISABLE: no mTLS, no peer certificate. Not-forms
  still match (Envoy: a missing identity is "not" any value);
- it needs a request principal (`requestPrincipals`, `request.auth.*` values) while no
  RequestAuthentication applies to the selected workloads, or names an issuer none of
  those RequestAuthentications accepts (exact values only);
- `ports` (or `destination.port` values) are none of the selected workloads' ports
  (container ports and Service target ports). Skipped for the gateway, whose ports are
  the host ports `plait up` picks.

Rules of every action are checked (a DENY rule that never matches denies nothing), and
a DENY or AUDIT policy without rules is reported (it matches nothing; Istio). An
ALLOW policy none of whose rules can match allows nothing, so the workloads it selects
deny every request (unless another ALLOW policy applies): that is said once more on
`spec.rules`. CUSTOM needs an external authorizer (MeshConfig `extensionProviders`),
which plait does not have: one warning on `spec.action`, and its rules are not checked.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from plait.analysis.report import finding
from plait.analysis.selection import enforced
from plait.analysis.workloads import Workload, names
from plait.api import Loaded
from plait.api.security import (
    Action,
    Condition,
    MtlsMode,
    Operation,
    Rule,
    Source,
)
from plait.errors import ConfigMessage
from plait.model.authz import authorization_policies_for, request_authentications_for
from plait.model.peerauth import PeerAuthentications
from plait.model.snapshot import MeshSnapshot

Loc = list[str | int]
_PEER_FIELDS = (
    ("principals", "principals"),
    ("namespaces", "namespaces"),
    ("service_accounts", "serviceAccounts"),
)
_PEER_KEYS = ("source.principal", "source.namespace", "source.serviceAccount")
_NOT_PAIRS_SOURCE = (
    ("principals", "not_principals", "principals", "notPrincipals"),
    ("request_principals", "not_request_principals", "requestPrincipals", "notRequestPrincipals"),
    ("namespaces", "not_namespaces", "namespaces", "notNamespaces"),
    ("service_accounts", "not_service_accounts", "serviceAccounts", "notServiceAccounts"),
    ("ip_blocks", "not_ip_blocks", "ipBlocks", "notIpBlocks"),
    ("remote_ip_blocks", "not_remote_ip_blocks", "remoteIpBlocks", "notRemoteIpBlocks"),
)
_NOT_PAIRS_OPERATION = (
    ("hosts", "not_hosts", "hosts", "notHosts"),
    ("ports", "not_ports", "ports", "notPorts"),
    ("methods", "not_methods", "methods", "notMethods"),
    ("paths", "not_paths", "paths", "notPaths"),
)
CUSTOM_TEXT = (
    "not applied: plait has no external authorizer (extensionProviders), so this CUSTOM "
    "policy has no effect (requests are neither sent to the provider nor denied by it); "
    "use ALLOW or DENY policies instead"
)


@dataclass(frozen=True)
class _Problem:
    loc: Loc
    what: str  # what is wrong, and what follows
    fix: str  # what to do
    kills: bool  # the entry (or condition) it is in can never match

    def text(self, effect: str) -> str:
        return f"{self.what}{effect if self.kills else ''}. {self.fix}"


@dataclass(frozen=True)
class _Context:
    """What the workloads a policy selects offer its rules."""

    targets: tuple[Workload, ...]
    no_peer_identity: bool  # every target is under PeerAuthentication DISABLE
    no_jwt: bool  # no RequestAuthentication applies to any target
    issuers: frozenset[str]  # of the RequestAuthentications that do
    ports: frozenset[int] | None  # None: not known for some target


def never_matching_rules(
    snapshot: MeshSnapshot, workloads: Sequence[Workload]
) -> list[ConfigMessage]:
    """Warnings for rules that can never match, and for CUSTOM policies."""
    out: list[ConfigMessage] = []
    peer_auth = PeerAuthentications(snapshot)
    for item in snapshot.authorization_policies:
        policy = item.resource
        if policy.spec.action is Action.CUSTOM:
            if not _already_said(snapshot, item, "spec.action"):
                out.append(finding(item, ["spec", "action"], CUSTOM_TEXT))
            continue
        if not policy.spec.rules and policy.spec.action is not Action.ALLOW:
            out.append(_no_rules(item, policy.spec.action))
            continue
        ctx = _context(snapshot, peer_auth, enforced(snapshot, item, workloads))
        dead = 0
        for i, rule in enumerate(policy.spec.rules):
            problems, kills_rule = _rule(ctx, rule, ["spec", "rules", i])
            dead += kills_rule
            effect = f"; rule spec.rules[{i}] {_nothing(policy.spec.action)}" if kills_rule else ""
            out += [finding(item, p.loc, p.text(effect)) for p in problems]
        if (
            policy.spec.action is Action.ALLOW
            and ctx.targets  # a policy that selects nothing is reported as such
            and policy.spec.rules
            and dead == len(policy.spec.rules)
        ):
            out.append(_denies_all(snapshot, item, ctx.targets))
    return out


def _no_rules(item: Loaded, action: Action) -> ConfigMessage:
    return finding(
        item,
        ["spec", "action"],
        f"a {action.value} policy without rules matches no request, so it "
        f"{_VERB[action]} nothing. Add rules ('rules: [{{}}]' matches every request)",
    )


def _already_said(snapshot: MeshSnapshot, item: Loaded, path: str) -> bool:
    return any(
        m.file == item.source.file and m.document == item.source.document and m.path == path
        for m in snapshot.messages
    )


_VERB = {Action.ALLOW: "allows", Action.DENY: "denies", Action.AUDIT: "audits"}


def _nothing(action: Action) -> str:
    return f"never matches, so it {_VERB[action]} nothing"


def _context(
    snapshot: MeshSnapshot, peer_auth: PeerAuthentications, targets: list[Workload]
) -> _Context:
    sidecars = [w for w in targets if not w.is_gateway]
    disabled = (
        bool(sidecars)
        and len(sidecars) == len(targets)
        and all(
            m.mode is MtlsMode.DISABLE
            for w in sidecars
            for m in peer_auth.workload(w.namespace, w.proxy.labels).every_mode()
        )
    )
    authns = {i.source: i for w in targets for i in request_authentications_for(snapshot, w.proxy)}
    issuers = frozenset(r.issuer for i in authns.values() for r in i.resource.spec.jwt_rules)
    known = bool(targets) and all(w.ports and not w.is_gateway for w in targets)
    return _Context(
        targets=tuple(targets),
        no_peer_identity=disabled,
        no_jwt=bool(targets) and not authns,
        issuers=issuers,
        ports=frozenset(p for w in targets for p in w.ports) if known else None,
    )


def _rule(ctx: _Context, rule: Rule, loc: Loc) -> tuple[list[_Problem], bool]:
    """Every problem of a rule, and whether it can never match."""
    sources = [
        list(_source(ctx, e.source, [*loc, "from", j, "source"])) for j, e in enumerate(rule.from_)
    ]
    operations = [
        list(_operation(ctx, e.operation, [*loc, "to", j, "operation"]))
        for j, e in enumerate(rule.to)
    ]
    conditions = [list(_condition(ctx, c, [*loc, "when", j])) for j, c in enumerate(rule.when)]
    dead = _all_dead(sources) or _all_dead(operations) or any(_kills(c) for c in conditions)
    return [p for found in (*sources, *operations, *conditions) for p in found], dead


def _kills(problems: list[_Problem]) -> bool:
    return any(p.kills for p in problems)


def _all_dead(entries: list[list[_Problem]]) -> bool:
    """A `from` or `to` list none of whose entries can match (an empty one matches all)."""
    return bool(entries) and all(_kills(e) for e in entries)


def _overlaps(
    model: Source | Operation,
    pairs: tuple[tuple[str, str, str, str], ...],
    loc: Loc,
    what: str,
) -> Iterator[_Problem]:
    for attr, not_attr, name, not_name in pairs:
        values = getattr(model, attr)
        excluded = set(getattr(model, not_attr))
        both = [v for v in values if v in excluded]
        if not both:
            continue
        all_of_them = len(both) == len(values)
        consequence = f"so this {what} never matches" if all_of_them else "so they are dead"
        yield _Problem(
            [*loc, not_name],
            f"'{name}' and '{not_name}' both list {', '.join(both)}; a request cannot match "
            f"and not match a value, {consequence}",
            "Remove them from one of the two",
            all_of_them,
        )


def _source(ctx: _Context, source: Source, loc: Loc) -> Iterator[_Problem]:
    yield from _overlaps(source, _NOT_PAIRS_SOURCE, loc, "source")
    if ctx.no_peer_identity:
        for attr, name in _PEER_FIELDS:
            if getattr(source, attr):
                yield _Problem([*loc, name], *_no_peer(ctx, f"'{name}'"), True)
    if source.request_principals:
        yield from _request_principals(ctx, source.request_principals, [*loc, "requestPrincipals"])


def _no_peer(ctx: _Context, what: str) -> tuple[str, str]:
    return (
        f"{what} needs the caller's certificate, but PeerAuthentication DISABLE is in force "
        f"on {names(ctx.targets)} (no mTLS, so no peer identity), so this never matches",
        "Use PERMISSIVE or STRICT there, or match callers by something else",
    )


def _no_jwt(ctx: _Context, what: str) -> tuple[str, str]:
    return (
        f"{what} needs a validated JWT, but no RequestAuthentication applies to "
        f"{names(ctx.targets)}, so there is never a request principal and this never matches",
        "Add a RequestAuthentication for the token's issuer that selects them",
    )


def _request_principals(ctx: _Context, values: tuple[str, ...], loc: Loc) -> Iterator[_Problem]:
    if ctx.no_jwt:
        yield _Problem(loc, *_no_jwt(ctx, "'requestPrincipals'"), True)
        return
    if not ctx.targets:
        return
    unknown = [
        (k, v)
        for k, v in enumerate(values)
        if "*" not in v and v.rpartition("/")[0] not in ctx.issuers
    ]
    for k, value in unknown:
        issuers = ", ".join(sorted(ctx.issuers)) or "none"
        yield _Problem(
            [*loc, k],
            f"'{value}' is ISSUER/SUBJECT (split at the last '/'), but no "
            "RequestAuthentication of "
            f"{names(ctx.targets)} accepts its issuer (issuers: {issuers}), so it never matches",
            "Fix the issuer, or add a jwtRule for it",
            len(unknown) == len(values),
        )


def _operation(ctx: _Context, operation: Operation, loc: Loc) -> Iterator[_Problem]:
    yield from _overlaps(operation, _NOT_PAIRS_OPERATION, loc, "operation")
    if _misses(ctx, operation.ports):
        yield _Problem([*loc, "ports"], *_no_port(ctx, operation.ports), True)


def _misses(ctx: _Context, ports: Sequence[str]) -> bool:
    """`ports` are given, and none is a port of the (known) target ports."""
    return bool(ports) and ctx.ports is not None and not {int(p) for p in ports} & ctx.ports


def _no_port(ctx: _Context, ports: Sequence[str]) -> tuple[str, str]:
    known = ", ".join(str(p) for p in sorted(ctx.ports or ()))
    return (
        f"{', '.join(ports)} is no port of {names(ctx.targets)} (their ports: {known}), so "
        "this never matches",
        "Name the workload's port (its container or Service target port, not the Service port)",
    )


def _condition(ctx: _Context, condition: Condition, loc: Loc) -> Iterator[_Problem]:
    values = condition.values
    if values and set(values) <= set(condition.not_values):
        yield _Problem(
            [*loc, "notValues"],
            f"'values' and 'notValues' both list {', '.join(values)}, so this condition "
            "never holds",
            "Remove them from one of the two",
            True,
        )
    if not values:
        return
    key = condition.key
    if ctx.no_peer_identity and key in _PEER_KEYS:
        yield _Problem([*loc, "values"], *_no_peer(ctx, f"'{key}'"), True)
    if key.startswith("request.auth."):
        if ctx.no_jwt:
            yield _Problem([*loc, "values"], *_no_jwt(ctx, f"'{key}'"), True)
        elif key == "request.auth.principal":
            yield from _request_principals(ctx, values, [*loc, "values"])
    if key == "destination.port" and _misses(ctx, values):
        yield _Problem([*loc, "values"], *_no_port(ctx, values), True)


def _denies_all(snapshot: MeshSnapshot, item: Loaded, targets: Sequence[Workload]) -> ConfigMessage:
    alone = [
        w
        for w in targets
        if not any(
            other.source != item.source
            for other in authorization_policies_for(snapshot, w.proxy).allow
        )
    ]
    if alone:
        effect = (
            f"every request to {names(alone)} is denied (403; an ALLOW policy that applies "
            "denies what it does not allow)"
        )
    else:
        effect = "it adds nothing to the other ALLOW policies of its workloads"
    return finding(
        item,
        ["spec", "rules"],
        f"no rule of this ALLOW policy can ever match (see the warnings on its rules), so "
        f"it allows nothing: {effect}. Fix the rules, or write 'spec: {{}}' if denying "
        "everything is meant",
    )


__all__ = ["CUSTOM_TEXT", "never_matching_rules"]
