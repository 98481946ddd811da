"""Envoy RouteMatch semantics as `describe.evaluate` applies them."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import string_pb2

from plait.describe.evaluate import Request, header_matches, route_matches


def _header(**kw: object) -> rc.HeaderMatcher:
    return rc.HeaderMatcher(name="x-user", **kw)  # type: ignore[arg-type]


def test_missing_header_fails_even_inverted_unless_treated_as_empty() -> None:
    exact = string_pb2.StringMatcher(exact="bob")
    none = Request()
    assert not header_matches(_header(string_match=exact), none)
    assert not header_matches(_header(string_match=exact, invert_match=True), none)
    empty = _header(string_match=exact, invert_match=True, treat_missing_header_as_empty=True)
    assert header_matches(empty, none)  # Istio withoutHeaders: holds when the header is missing
    assert not header_matches(empty, Request(headers={"x-user": "bob"}))
    assert header_matches(_header(present_match=True, invert_match=True), none)


def test_prefix_sees_the_query_but_exact_and_regex_do_not() -> None:
    req = Request(path="/api/v1?x=1")
    assert route_matches(rc.RouteMatch(prefix="/api"), req)
    assert route_matches(rc.RouteMatch(path="/api/v1"), req)
    regex = rc.RouteMatch()
    regex.safe_regex.regex = "/api/v[0-9]"
    assert route_matches(regex, req)
    assert not route_matches(rc.RouteMatch(path="/API/v1"), req)


def test_method_pseudo_header_and_query_parameter() -> None:
    m = rc.RouteMatch(prefix="/")
    m.headers.add(name=":method", string_match=string_pb2.StringMatcher(exact="POST"))
    m.query_parameters.add(name="q", string_match=string_pb2.StringMatcher(prefix="a"))
    assert route_matches(m, Request(path="/?q=abc", method="POST"))
    assert not route_matches(m, Request(path="/?q=abc", method="GET"))
    assert not route_matches(m, Request(path="/", method="POST"))
