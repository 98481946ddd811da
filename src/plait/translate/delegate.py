"""Delegate VirtualServices: a rule with `delegate: {name, namespace}` is replaced by the
delegate's `http` rules, merged with the parent rule as Istio does (mergeHTTPRoutes).

- The delegate is a VirtualService without `hosts`, found by name in `namespace` (default:
  the parent's). A missing delegate, or one with hosts, drops only the delegating rule.
- One level only, as in Istio: a rule of a delegate that delegates again is dropped (so
  delegation can never loop).
- Each child match must fall inside some parent match (same or narrower uri, method,
  authority, scheme, headers, query parameters, port; no regex on both sides); it is then
  merged with every parent match it fits, the child's fields winning. A child rule with a
  match that fits no parent match is dropped; a child without matches takes the parent's.
- Child rule fields left unset (rewrite, timeout, retries, fault, mirror, cors, headers)
  come from the parent rule.
- Short host names in a child rule resolve in the delegate's namespace.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from plait.api import VirtualService
from plait.api.common import StringMatch
from plait.api.virtualservice import HTTPMatchRequest, HTTPRoute
from plait.model.indexes import gateway_key
from plait.model.snapshot import MeshSnapshot

_INHERITED = (
    "rewrite",
    "timeout",
    "retries",
    "fault",
    "mirror",
    "mirrors",
    "mirror_percent",
    "mirror_percentage",
    "cors_policy",
    "headers",
)


@dataclass(frozen=True)
class ScopedRule:
    """An `http` rule ready to translate: where its short names resolve, and its name."""

    rule: HTTPRoute
    namespace: str
    name: str


def _full_gateways(rule: HTTPRoute, namespace: str) -> HTTPRoute:
    """Match gateways as full keys (`ns/name`), before a rule moves between namespaces."""
    if not any(m.gateways for m in rule.match):
        return rule
    matches = tuple(
        m.model_copy(update={"gateways": tuple(gateway_key(g, namespace) for g in m.gateways)})
        for m in rule.match
    )
    return rule.model_copy(update={"match": matches})


def http_rules(snapshot: MeshSnapshot, vs: VirtualService) -> Iterator[ScopedRule]:
    """The VirtualService's rules in order, each delegating rule replaced by its children."""
    ns = vs.metadata.namespace
    for i, rule in enumerate(vs.spec.http):
        name = f"{ns}/{vs.metadata.name}/http[{i}]"
        if rule.delegate is None:
            yield ScopedRule(_full_gateways(rule, ns), ns, name)
            continue
        child_vs = _find(snapshot, rule.delegate.name, rule.delegate.namespace or ns)
        if child_vs is None:
            continue
        child_ns = child_vs.metadata.namespace
        parent = _full_gateways(rule, ns)
        for j, child in enumerate(child_vs.spec.http):
            if child.delegate is not None:
                continue
            merged = merge_rule(parent, _full_gateways(child, child_ns))
            if merged is not None:
                yield ScopedRule(
                    merged, child_ns, f"{name}/{child_ns}/{child_vs.metadata.name}/http[{j}]"
                )


def _find(snapshot: MeshSnapshot, name: str, namespace: str) -> VirtualService | None:
    item = snapshot.routing.by_name.get((namespace, name))
    if item is None or item.resource.spec.hosts:
        return None
    return item.resource


def merge_rule(parent: HTTPRoute, child: HTTPRoute) -> HTTPRoute | None:
    """The child rule under its parent, or None when their matches conflict."""
    matches = merge_matches(parent.match, child.match)
    if matches is None:
        return None
    update: dict[str, object] = {"match": matches}
    update |= {
        f: getattr(parent, f)
        for f in _INHERITED
        if getattr(parent, f) not in (None, ()) and getattr(child, f) in (None, ())
    }
    if parent.name and child.name:
        update["name"] = f"{parent.name}-{child.name}"
    elif parent.name:
        update["name"] = parent.name
    return child.model_copy(update=update)


def merge_matches(
    parent: tuple[HTTPMatchRequest, ...], child: tuple[HTTPMatchRequest, ...]
) -> tuple[HTTPMatchRequest, ...] | None:
    if not parent:
        return child
    if not child:
        return parent
    out: list[HTTPMatchRequest] = []
    for sub in child:
        fits = [p for p in parent if not _conflict(p, sub)]
        if not fits:
            return None
        out += [_merge_match(p, sub) for p in fits]
    return tuple(out)


def _merge_match(parent: HTTPMatchRequest, child: HTTPMatchRequest) -> HTTPMatchRequest:
    update: dict[str, object] = {
        f: getattr(parent, f)
        for f in ("uri", "scheme", "method", "authority", "port", "source_namespace", "stat_prefix")
        if getattr(child, f) is None
    }
    for f in ("headers", "without_headers", "query_params", "source_labels"):
        update[f] = {**getattr(parent, f), **getattr(child, f)}
    if not child.gateways:
        update["gateways"] = parent.gateways
    if parent.name and child.name:
        update["name"] = f"{parent.name}-{child.name}"
    elif parent.name:
        update["name"] = parent.name
    return child.model_copy(update=update)


def _conflict(parent: HTTPMatchRequest, child: HTTPMatchRequest) -> bool:
    pairs = [
        (parent.uri, child.uri),
        (parent.scheme, child.scheme),
        (parent.method, child.method),
        (parent.authority, child.authority),
        *((parent.headers.get(k), v) for k, v in child.headers.items()),
        *((parent.without_headers.get(k), v) for k, v in child.without_headers.items()),
        *((parent.query_params.get(k), v) for k, v in child.query_params.items()),
    ]
    if any(_string_conflict(p, c) for p, c in pairs):
        return True
    if parent.ignore_uri_case != child.ignore_uri_case:
        return True
    if parent.port is not None and child.port is not None and parent.port != child.port:
        return True
    if parent.source_namespace is not None and child.source_namespace not in (
        None,
        parent.source_namespace,
    ):
        return True
    if any(parent.source_labels.get(k, v) != v for k, v in child.source_labels.items()):
        return True
    return bool(
        parent.gateways and child.gateways and not set(child.gateways) <= set(parent.gateways)
    )


def _string_conflict(parent: StringMatch | None, child: StringMatch | None) -> bool:
    """Whether `child` can match something `parent` does not (Istio's stringMatchConflict)."""
    if parent is None or child is None:
        return False
    if parent.regex is not None or child.regex is not None:
        return True
    if parent.exact is not None:
        return child.exact != parent.exact
    prefix = parent.prefix or ""
    return not (child.exact if child.exact is not None else child.prefix or "").startswith(prefix)
