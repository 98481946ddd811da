"""HTTPMatchRequest → Envoy RouteMatch, and whether a match applies where it is translated.

Follows Istio's TranslateRouteMatch: header and query matches sorted by name, then
`:method`, `:authority` and `:scheme` as pseudo-header matches; `withoutHeaders` are
inverted header matches that also hold when the header is missing; a regex `*` (and an
empty prefix, which Envoy's StringMatcher rejects) means "present". `ignoreUriCase` turns
off case sensitivity of the path (not of a regex, as in Istio).

Which matches apply is Istio's sourceMatchHTTP: a match that names `gateways` applies
only to those gateways (and its `sourceLabels` are then not checked); otherwise its
`sourceLabels` must be a subset of the calling proxy's labels and `sourceNamespace` its
namespace. A `port` match applies only to that port's virtual host.
"""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import wrappers_pb2

from plait.api.common import StringMatch
from plait.api.virtualservice import HTTPMatchRequest
from plait.model.labels import Labels


def _is_present(m: StringMatch) -> bool:
    return m.regex == "*" or m.prefix == ""


def string_matcher(m: StringMatch) -> string_pb2.StringMatcher:
    if m.exact is not None:
        return string_pb2.StringMatcher(exact=m.exact)
    if m.prefix is not None:
        return string_pb2.StringMatcher(prefix=m.prefix)
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=m.regex or ""))


def header_matcher(name: str, m: StringMatch, *, invert: bool = False) -> rc.HeaderMatcher:
    out = rc.HeaderMatcher(name=name.lower(), invert_match=invert)
    if _is_present(m):
        out.present_match = True
    else:
        out.string_match.CopyFrom(string_matcher(m))
        # `withoutHeaders: {x: {exact: a}}` also holds when x is missing (Istio)
        out.treat_missing_header_as_empty = invert
    return out


def _query_matcher(name: str, m: StringMatch) -> rc.QueryParameterMatcher:
    out = rc.QueryParameterMatcher(name=name)
    if _is_present(m):
        out.present_match = True
    else:
        out.string_match.CopyFrom(string_matcher(m))
    return out


def route_match(match: HTTPMatchRequest | None) -> rc.RouteMatch:
    out = rc.RouteMatch(prefix="/")
    if match is None:
        return out
    uri = match.uri
    if uri is not None:
        if uri.exact is not None:
            out.path = uri.exact
        elif uri.prefix is not None:
            out.prefix = uri.prefix or "/"
        else:
            out.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=uri.regex or ""))
    if match.ignore_uri_case:
        out.case_sensitive.CopyFrom(wrappers_pb2.BoolValue(value=False))
    headers = [header_matcher(n, m) for n, m in match.headers.items()]
    headers += [header_matcher(n, m, invert=True) for n, m in match.without_headers.items()]
    out.headers.extend(sorted(headers, key=lambda h: h.name))
    pseudo = ((":method", match.method), (":authority", match.authority), (":scheme", match.scheme))
    out.headers.extend(header_matcher(name, m) for name, m in pseudo if m is not None)
    out.query_parameters.extend(_query_matcher(n, m) for n, m in sorted(match.query_params.items()))
    return out


def is_catch_all(match: rc.RouteMatch) -> bool:
    """Every request matches (Istio's IsCatchAllRoute): later routes are unreachable."""
    path = match.WhichOneof("path_specifier")
    catch_all = (path == "prefix" and match.prefix == "/") or (
        path == "safe_regex" and match.safe_regex.regex == ".*"
    )
    return catch_all and not match.headers and not match.query_parameters


def applies(
    match: HTTPMatchRequest | None,
    *,
    gateway: str,
    port: int | None,
    source: tuple[Labels, str] | None,
) -> bool:
    """Whether a match can apply to this table (gateway, virtual host port, calling proxy).

    `match.gateways` must already be full keys (`gateway_key`). `source` is the calling
    proxy's (labels, namespace); None when unknown (gateway tables), in which case a match
    on source labels or namespace never applies.
    """
    if match is None:
        return True
    if match.port is not None and port is not None and match.port != port:
        return False
    if match.gateways:
        return gateway in match.gateways
    if not match.source_labels and match.source_namespace is None:
        return True
    if source is None:
        return False
    labels, namespace = source
    return labels.matches(match.source_labels) and match.source_namespace in (None, namespace)
