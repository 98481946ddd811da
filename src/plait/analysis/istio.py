"""Istio's webhook checks that span several fields of one resource, as `vet` errors.

The models (api/) hold the schema and what Envoy would refuse; these are the rules of
Istio's validating webhook (istio/istio pkg/config/validation) on top, so that config
`plait analyze` passes is config `kubectl apply` would take. They live here rather than
in the models because plait's own translation handles each case (a pseudo-header is
dropped, `rewrite.authority` wins over a Host header, ...), and the translator's tests
exercise exactly that. Where plait deliberately accepts what Istio refuses,
docs/compatibility.md says so.
"""

from __future__ import annotations

from collections.abc import Iterator

from plait.analysis.report import finding
from plait.api import DestinationRule, Loaded, ServiceEntry, VirtualService
from plait.api.common import StringMatch
from plait.api.destinationrule import LoadBalancerSettings, TrafficPolicy
from plait.api.security import (
    DRY_RUN_ANNOTATION,
    Action,
    AuthorizationPolicy,
    PeerAuthentication,
)
from plait.api.syntax import is_dns_label
from plait.api.virtualservice import HeaderOperations, Headers, HTTPMatchRequest, HTTPRoute
from plait.errors import ConfigMessage, Severity

Loc = list[str | int]
Problem = tuple[Loc, str]


def istio_problems(item: Loaded) -> list[ConfigMessage]:
    """Errors for what Istio's webhook refuses in `item` that its model lets through."""
    resource = item.resource
    found: list[Problem] = []
    if isinstance(resource, VirtualService):
        found += _virtual_service(resource)
    elif isinstance(resource, DestinationRule):
        found += _destination_rule(resource)
    elif isinstance(resource, AuthorizationPolicy):
        found += _authorization_policy(resource)
    elif isinstance(resource, PeerAuthentication):
        spec = resource.spec
        if "port_level_mtls" in spec.model_fields_set and not spec.port_level_mtls:
            found.append(
                (["spec", "portLevelMtls"], "an empty 'portLevelMtls' is refused by Istio")
            )
    if isinstance(resource, VirtualService | DestinationRule | ServiceEntry):
        found += _export_to(resource)
    dry_run = resource.metadata.annotations.get(DRY_RUN_ANNOTATION)
    if dry_run is not None and resource.kind in _ISTIO_KINDS:
        found.append(
            (
                ["metadata", "annotations", DRY_RUN_ANNOTATION],
                f"Istio supports {DRY_RUN_ANNOTATION} on AuthorizationPolicy only; remove it",
            )
        )
    return [finding(item, loc, text, Severity.ERROR) for loc, text in found]


# --- VirtualService ---------------------------------------------------------------------


def _virtual_service(vs: VirtualService) -> Iterator[Problem]:
    to_gateway = bool(vs.spec.gateways) and "mesh" not in vs.spec.gateways
    for i, rule in enumerate(vs.spec.http):
        loc: Loc = ["spec", "http", i]
        yield from _rule(rule, loc)
        for j, match in enumerate(rule.match):
            yield from _match(match, [*loc, "match", j], to_gateway)
        for j, dest in enumerate(rule.route):
            if dest.headers is not None:
                yield from _headers(dest.headers, [*loc, "route", j, "headers"])


def _rule(rule: HTTPRoute, loc: Loc) -> Iterator[Problem]:
    if rule.headers is not None:
        yield from _headers(rule.headers, [*loc, "headers"])
    authority = [rule.rewrite.authority] if rule.rewrite and rule.rewrite.authority else []
    if rule.headers is not None and rule.headers.request is not None:
        authority += rule.headers.request.authority()
    if len(authority) > 1:
        yield (
            loc,
            (
                "the authority is set twice ('rewrite.authority' and an ':authority'/'host' "
                "header); Istio refuses this: keep one"
            ),
        )
    redirect = rule.redirect
    if redirect is not None and not (
        redirect.uri
        or redirect.prefix_rewrite
        or redirect.authority
        or redirect.scheme
        or redirect.port is not None
        or redirect.derive_port is not None
    ):
        yield [*loc, "redirect"], "a redirect needs 'uri', 'authority', 'scheme' or a port"
    fault = rule.fault
    if fault is not None and fault.delay is not None and fault.delay.exponential_delay:
        yield [*loc, "fault", "delay"], "Istio refuses 'exponentialDelay'; use 'fixedDelay'"
    if fault is not None and fault.abort is not None and fault.abort.http2_error:
        yield [*loc, "fault", "abort"], "Istio refuses 'http2Error' aborts; use 'httpStatus'"
    retries = rule.retries
    if retries is not None and not retries.attempts:
        others = (retries.per_try_timeout, retries.retry_on, retries.retry_remote_localities)
        if any(v is not None for v in others):
            yield (
                [*loc, "retries"],
                (
                    "'attempts' is 0 or unset (retries off) but other retry fields are set; "
                    "Istio refuses this: set 'attempts'"
                ),
            )


def _headers(headers: Headers, loc: Loc) -> Iterator[Problem]:
    for side, ops in (("request", headers.request), ("response", headers.response)):
        if ops is not None:
            yield from _header_ops(ops, [*loc, side], side == "request")


def _header_ops(ops: HeaderOperations, loc: Loc, request: bool) -> Iterator[Problem]:
    for field, names in (("set", list(ops.set)), ("add", list(ops.add))):
        for name in names:
            authority = name.lower() in (":authority", "host")
            if (request and authority) or not (name.startswith(":") or name.lower() == "host"):
                continue
            yield [*loc, field, name], f"Istio refuses changing header '{name}' here"
    for j, name in enumerate(ops.remove):
        if name.startswith(":") or name.lower() == "host":
            yield [*loc, "remove", j], f"Istio refuses removing header '{name}'"


def _match(match: HTTPMatchRequest, loc: Loc, to_gateway: bool) -> Iterator[Problem]:
    named: list[tuple[Loc, StringMatch | None]] = [
        ([*loc, key], getattr(match, key)) for key in ("scheme", "method", "authority")
    ]
    named += [([*loc, "headers", k], v) for k, v in match.headers.items()]
    named += [([*loc, "queryParams", k], v) for k, v in match.query_params.items()]
    for where, value in named:
        if value is not None and value.prefix == "":
            yield where, "Istio refuses an empty 'prefix' here; leave the match out"
    claims = [k for k in (*match.headers, *match.without_headers) if k.startswith("@request.auth")]
    if claims and not to_gateway:
        yield (
            [*loc, "headers"],
            (
                f"routing on a JWT claim ('{claims[0]}') works on gateways only; bind this "
                "VirtualService to a Gateway"
            ),
        )


# --- DestinationRule --------------------------------------------------------------------


def _destination_rule(dr: DestinationRule) -> Iterator[Problem]:
    policies: list[tuple[Loc, TrafficPolicy | None]] = [
        (["spec", "trafficPolicy"], dr.spec.traffic_policy)
    ]
    policies += [
        (["spec", "subsets", i, "trafficPolicy"], s.traffic_policy)
        for i, s in enumerate(dr.spec.subsets)
    ]
    for loc, policy in policies:
        if policy is not None:
            yield from _traffic_policy(policy, loc)


def _traffic_policy(policy: TrafficPolicy, loc: Loc) -> Iterator[Problem]:
    if policy.tunnel is not None and policy.proxy_protocol is not None:
        yield loc, "Istio refuses 'tunnel' together with 'proxyProtocol'; keep one"
    parts: list[tuple[Loc, object]] = [(loc, policy)]
    parts += [([*loc, "portLevelSettings", i], p) for i, p in enumerate(policy.port_level_settings)]
    for where, part in parts:
        outlier = getattr(part, "outlier_detection", None)
        if (
            outlier is not None
            and outlier.consecutive_local_origin_failures
            and not outlier.split_external_local_origin_errors
        ):
            yield (
                [*where, "outlierDetection"],
                (
                    "'consecutiveLocalOriginFailures' needs "
                    "'splitExternalLocalOriginErrors: true' (Istio refuses it otherwise)"
                ),
            )
        pool = getattr(part, "connection_pool", None)
        http = pool.http if pool is not None else None
        if http is not None and http.h2_upgrade_policy == "UPGRADE" and http.use_client_protocol:
            yield (
                [*where, "connectionPool", "http"],
                ("Istio refuses 'useClientProtocol: true' with h2UpgradePolicy UPGRADE"),
            )
        lb = getattr(part, "load_balancer", None)
        if isinstance(lb, LoadBalancerSettings) and lb.consistent_hash is not None:
            maglev = lb.consistent_hash.maglev
            if maglev is not None and maglev.table_size is None:
                yield (
                    [*where, "loadBalancer", "consistentHash", "maglev"],
                    ("maglev needs a 'tableSize' (a prime below 5000011, e.g. 65537)"),
                )


# --- AuthorizationPolicy ----------------------------------------------------------------


def _authorization_policy(policy: AuthorizationPolicy) -> Iterator[Problem]:
    spec = policy.spec  # DENY without rules: a warning of analysis/authzrules.py
    for i, rule in enumerate(spec.rules):
        for key, attr in (("from", "from_"), ("to", "to")):
            if attr in rule.model_fields_set and not getattr(rule, attr):
                yield ["spec", "rules", i, key], f"an empty '{key}' list is refused by Istio"
        for j, entry in enumerate(rule.from_):
            src = entry.source
            if (src.service_accounts or src.not_service_accounts) and (
                src.namespaces or src.not_namespaces
            ):
                yield (
                    ["spec", "rules", i, "from", j, "source"],
                    (
                        "'serviceAccounts' cannot be combined with 'namespaces' (Istio refuses "
                        "it): a service account already names its namespace"
                    ),
                )
            if spec.action is Action.CUSTOM:
                used = [k for k in _CUSTOM_UNSUPPORTED if getattr(src, k)]
                if used:
                    yield (
                        ["spec", "rules", i, "from", j, "source"],
                        (f"'{used[0]}' is not supported with action CUSTOM (Istio)"),
                    )
        if spec.action is Action.CUSTOM:
            for j, cond in enumerate(rule.when):
                if cond.key.startswith(("source.", "request.auth.")) and cond.key not in (
                    "source.ip",
                ):
                    yield (
                        ["spec", "rules", i, "when", j, "key"],
                        (f"condition key '{cond.key}' is not supported with action CUSTOM (Istio)"),
                    )


_CUSTOM_UNSUPPORTED = (
    "namespaces",
    "not_namespaces",
    "service_accounts",
    "not_service_accounts",
    "trust_domains",
    "not_trust_domains",
    "principals",
    "not_principals",
    "request_principals",
    "not_request_principals",
)


# --- exportTo ---------------------------------------------------------------------------


def _export_to(resource: VirtualService | DestinationRule | ServiceEntry) -> Iterator[Problem]:
    values = resource.spec.export_to
    service_entry = isinstance(resource, ServiceEntry)
    namespace = resource.metadata.namespace
    loc: Loc = ["spec", "exportTo"]
    seen: set[str] = set()
    for i, value in enumerate(values):
        own = namespace if value == "." else value
        if own in seen:
            yield [*loc, i], f"'{value}' is listed twice ('.' is namespace {namespace})"
        seen.add(own)
        if value == "~" and not service_entry:
            yield [*loc, i], "'~' (export to no one) is for ServiceEntries only"
        elif value not in (".", "*", "~") and not _is_namespace(value):
            yield [*loc, i], f"'{value}' is not '.', '*' or a namespace name"
    if len(values) > 1 and ("*" in values or "~" in values):
        yield loc, "'*' and '~' must stand alone in 'exportTo'"
    selected = isinstance(resource, DestinationRule) and resource.spec.workload_selector
    if selected and values and seen != {namespace}:
        yield (
            loc,
            (
                "a DestinationRule with a 'workloadSelector' applies in its own namespace only: "
                "'exportTo' may only be '.'"
            ),
        )


_ISTIO_KINDS = frozenset(
    (
        "VirtualService",
        "DestinationRule",
        "Gateway",
        "ServiceEntry",
        "PeerAuthentication",
        "RequestAuthentication",
    )
)


def _is_namespace(value: str) -> bool:
    return is_dns_label(value) and value == value.lower()
