"""Which route of a sidecar's outbound table a request takes, evaluated on the Envoy protos.

The table is the one the translator sends the calling sidecar (`translate.vhosts.
sidecar_routes` for the caller's namespace and labels), so `sourceLabels`, delegates,
port matches and catch-all pruning are exactly what Envoy gets. Matching follows Envoy's
RouteMatch (envoy/config/route/v3/route_components.proto):

- `prefix` compares with the whole `:path`; `path` and `safe_regex` with the path once
  the query string is removed; `case_sensitive: false` folds case of prefix/path;
- a HeaderMatcher on a header that is missing fails, inverted or not, unless
  `treat_missing_header_as_empty` (then it is matched against "") or it is a
  `present_match` (absent + inverted = true); otherwise the result is XORed with
  `invert_match`; pseudo-headers `:method`, `:authority`, `:scheme`, `:path` are headers;
- query parameter matchers need the parameter present.

Regexes run on Python's `re` (RE2 syntax is a subset for the patterns Istio allows). Pure.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.type.matcher.v3 import string_pb2


@dataclass(frozen=True)
class Request:
    """What the caller sends: path (with query), method, headers (lower-case names)."""

    path: str = "/"
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    authority: str = ""
    scheme: str = "http"

    def header(self, name: str) -> str | None:
        pseudo = {":path": self.path, ":method": self.method, ":scheme": self.scheme}
        pseudo[":authority"] = self.authority
        if name in pseudo:
            return pseudo[name]
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Decision:
    """The route taken (None: no route matched, Envoy answers 404) and where it sends."""

    vhost: str
    route: str | None
    clusters: tuple[tuple[str, int], ...] = ()  # (cluster, weight)
    redirect: str | None = None
    direct_status: int | None = None
    evaluated: int = 0  # how many routes were looked at

    def to_json(self) -> dict[str, object]:
        return {
            "virtualHost": self.vhost,
            "route": self.route,
            "clusters": [{"cluster": c, "weight": w} for c, w in self.clusters],
            "redirect": self.redirect,
            "directResponse": self.direct_status,
        }


def string_matches(m: string_pb2.StringMatcher, value: str) -> bool:
    kind = m.WhichOneof("match_pattern")
    if m.ignore_case and kind != "safe_regex":
        value = value.lower()
    pattern: str = getattr(m, kind) if kind != "safe_regex" else m.safe_regex.regex
    if m.ignore_case and kind != "safe_regex":
        pattern = pattern.lower()
    if kind == "exact":
        return value == pattern
    if kind == "prefix":
        return value.startswith(pattern)
    if kind == "suffix":
        return value.endswith(pattern)
    if kind == "contains":
        return pattern in value
    return re.fullmatch(pattern, value) is not None


def header_matches(h: rc.HeaderMatcher, request: Request) -> bool:
    value = request.header(h.name)
    kind = h.WhichOneof("header_match_specifier")
    if value is None and not h.treat_missing_header_as_empty:
        return kind == "present_match" and bool(h.present_match) == bool(h.invert_match)
    value = value or ""
    if kind == "present_match":
        result = bool(h.present_match)
    elif kind == "string_match":
        result = string_matches(h.string_match, value)
    elif kind == "exact_match":
        result = value == h.exact_match
    elif kind == "prefix_match":
        result = value.startswith(h.prefix_match)
    else:
        result = True
    return result != bool(h.invert_match)


def _query(request: Request) -> dict[str, str]:
    query = urllib.parse.urlsplit(request.path).query
    return dict(urllib.parse.parse_qsl(query, keep_blank_values=True))


def _path_matches(m: rc.RouteMatch, request: Request) -> bool:
    kind = m.WhichOneof("path_specifier")
    full = request.path
    bare = full.split("?", 1)[0]
    folded = m.HasField("case_sensitive") and not m.case_sensitive.value
    if kind == "prefix":
        prefix = str(m.prefix)
        return full.lower().startswith(prefix.lower()) if folded else full.startswith(prefix)
    if kind == "path":
        return bool(bare.lower() == m.path.lower() if folded else bare == m.path)
    if kind == "safe_regex":
        return re.fullmatch(m.safe_regex.regex, bare) is not None
    return False  # path_separated_prefix, connect_matcher...: not made by plait


def route_matches(m: rc.RouteMatch, request: Request) -> bool:
    if not _path_matches(m, request):
        return False
    if not all(header_matches(h, request) for h in m.headers):
        return False
    query = _query(request)
    for q in m.query_parameters:
        value = query.get(q.name)
        if value is None:
            return False
        if q.HasField("string_match") and not string_matches(q.string_match, value):
            return False
    return True


def find_vhost(table: route_pb2.RouteConfiguration, name: str) -> rc.VirtualHost | None:
    return next((v for v in table.virtual_hosts if v.name == name), None)


def evaluate(vhost: rc.VirtualHost, request: Request) -> Decision:
    """The first route of `vhost` that matches `request` (Envoy's order), and its targets."""
    for i, route in enumerate(vhost.routes):
        if not route_matches(route.match, request):
            continue
        base = Decision(vhost.name, route.name, evaluated=i + 1)
        kind = route.WhichOneof("action")
        if kind == "route":
            action = route.route
            if action.HasField("weighted_clusters"):
                pairs = tuple((c.name, c.weight.value) for c in action.weighted_clusters.clusters)
            else:
                pairs = ((action.cluster, 100),)
            return Decision(vhost.name, route.name, pairs, evaluated=i + 1)
        if kind == "redirect":
            r = route.redirect
            target = (r.host_redirect or "(same host)") + (r.path_redirect or r.prefix_rewrite)
            return Decision(vhost.name, route.name, redirect=target, evaluated=i + 1)
        if kind == "direct_response":
            status = route.direct_response.status
            return Decision(vhost.name, route.name, direct_status=status, evaluated=i + 1)
        return base
    return Decision(vhost.name, None, evaluated=len(vhost.routes))
