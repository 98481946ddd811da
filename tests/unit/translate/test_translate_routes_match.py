"""HTTP matches: every HTTPMatchRequest field, and which matches apply to which table."""

from __future__ import annotations

import pytest
from envoy.config.route.v3 import route_components_pb2 as rc
from routes_kit import caller, one, routes

TO_REVIEWS = "route: [{destination: {host: reviews}}]"


def subset(route: rc.Route) -> str:
    return str(route.route.cluster.split("|")[2])


def headers(route: rc.Route) -> dict[str, rc.HeaderMatcher]:
    return {h.name: h for h in route.match.headers}


def test_uri_exact_prefix_regex_and_ignore_uri_case() -> None:
    out = routes(
        f"""
  - match:
    - uri: {{exact: /a}}
    - uri: {{prefix: /b/}}
      ignoreUriCase: true
    - uri: {{regex: "/c/[0-9]+"}}
    {TO_REVIEWS}
"""
    )
    assert [r.match.WhichOneof("path_specifier") for r in out] == ["path", "prefix", "safe_regex"]
    assert (out[0].match.path, out[1].match.prefix, out[2].match.safe_regex.regex) == (
        "/a",
        "/b/",
        "/c/[0-9]+",
    )
    assert not out[0].match.HasField("case_sensitive")  # Envoy's default: case sensitive
    assert out[1].match.case_sensitive.value is False


def test_header_exact_prefix_regex_and_present() -> None:
    route = one(
        f"""
  - match:
    - headers:
        X-Exact: {{exact: a}}
        x-prefix: {{prefix: b}}
        x-regex: {{regex: "c+"}}
        x-any: {{regex: "*"}}
        x-empty-prefix: {{prefix: ""}}
    {TO_REVIEWS}
"""
    )
    got = headers(route)
    assert list(got) == ["x-any", "x-empty-prefix", "x-exact", "x-prefix", "x-regex"]
    assert got["x-exact"].string_match.exact == "a"
    assert got["x-prefix"].string_match.prefix == "b"
    assert got["x-regex"].string_match.safe_regex.regex == "c+"
    assert got["x-any"].present_match and got["x-empty-prefix"].present_match
    assert not any(h.invert_match for h in got.values())


def test_without_headers_invert_and_hold_when_the_header_is_missing() -> None:
    route = one(
        f"""
  - match:
    - withoutHeaders:
        x-beta: {{exact: "on"}}
        x-debug: {{regex: "*"}}
    {TO_REVIEWS}
"""
    )
    got = headers(route)
    assert got["x-beta"].invert_match and got["x-beta"].treat_missing_header_as_empty
    assert got["x-beta"].string_match.exact == "on"
    # "not present": an inverted present match, which must not treat missing as empty
    assert got["x-debug"].invert_match and got["x-debug"].present_match
    assert not got["x-debug"].treat_missing_header_as_empty


def test_method_authority_and_scheme_are_pseudo_header_matches_after_the_others() -> None:
    route = one(
        f"""
  - match:
    - method: {{exact: POST}}
      authority: {{prefix: "reviews"}}
      scheme: {{exact: https}}
      headers: {{z-last: {{exact: "1"}}}}
    {TO_REVIEWS}
"""
    )
    assert [h.name for h in route.match.headers] == ["z-last", ":method", ":authority", ":scheme"]
    got = headers(route)
    assert got[":method"].string_match.exact == "POST"
    assert got[":authority"].string_match.prefix == "reviews"
    assert got[":scheme"].string_match.exact == "https"


def test_query_params() -> None:
    route = one(
        f"""
  - match:
    - queryParams:
        user: {{exact: jason}}
        v: {{regex: "[12]"}}
        beta: {{prefix: "t"}}
        debug: {{regex: "*"}}
    {TO_REVIEWS}
"""
    )
    got = {q.name: q for q in route.match.query_parameters}
    assert list(got) == ["beta", "debug", "user", "v"]
    assert got["user"].string_match.exact == "jason"
    assert got["v"].string_match.safe_regex.regex == "[12]"
    assert got["beta"].string_match.prefix == "t"
    assert got["debug"].present_match


def test_stat_prefix() -> None:
    route = one(f"  - match: [{{uri: {{prefix: /}}, statPrefix: api}}]\n    {TO_REVIEWS}\n")
    assert route.stat_prefix == "api"


PORTS = f"""
  - match: [{{port: 8080, uri: {{prefix: /p}}}}]
    {TO_REVIEWS}
  - match: [{{port: 9999, uri: {{prefix: /q}}}}]
    {TO_REVIEWS}
"""


def test_a_port_match_applies_only_to_that_ports_virtual_host() -> None:
    assert [r.match.prefix for r in routes(PORTS, port=8080)] == ["/p"]
    assert [r.match.prefix for r in routes(PORTS, port=9999)] == ["/q"]


SOURCES = """
  - match: [{sourceLabels: {app: client}, uri: {prefix: /s}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{sourceNamespace: team, uri: {prefix: /n}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - match: [{sourceLabels: {app: client, version: v1}, sourceNamespace: default}]
    route: [{destination: {host: reviews, subset: v4}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"""


@pytest.mark.parametrize(
    ("labels", "namespace", "expected"),
    [
        ({"app": "client"}, "default", ["v2", "v1"]),
        ({"app": "client", "version": "v1"}, "default", ["v2", "v4"]),  # v4 is a catch-all
        ({"app": "client", "version": "v1"}, "team", ["v2", "v3", "v1"]),
        ({"app": "other"}, "default", ["v1"]),
        ({}, "team", ["v3", "v1"]),
    ],
)
def test_source_labels_and_namespace_select_by_the_calling_proxy(
    labels: dict[str, str], namespace: str, expected: list[str]
) -> None:
    out = routes(SOURCES, source=caller(labels, namespace))
    assert [subset(r) for r in out] == expected


def test_without_a_known_caller_source_matches_never_apply() -> None:
    out = routes(SOURCES, gateway="default/gw", source=None)
    assert [subset(r) for r in out] == ["v1"]


GATEWAYS = """
  - match: [{gateways: [mesh], uri: {prefix: /mesh}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{gateways: [edge], uri: {prefix: /edge}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{gateways: [other/edge], uri: {prefix: /other}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - match: [{gateways: [mesh], sourceLabels: {app: nobody}, uri: {prefix: /g}}]
    route: [{destination: {host: reviews, subset: v4}}]
"""


@pytest.mark.parametrize(
    ("gateway", "expected"),
    [
        ("mesh", ["/mesh", "/g"]),  # with gateways set, sourceLabels are not checked (Istio)
        ("default/edge", ["/edge"]),  # a short name is in the VirtualService's namespace
        ("other/edge", ["/other"]),
        ("default/elsewhere", []),
    ],
)
def test_per_match_gateways(gateway: str, expected: list[str]) -> None:
    out = routes(GATEWAYS, gateway=gateway, source=caller())
    assert [r.match.prefix for r in out] == expected


def test_a_rule_whose_matches_cannot_apply_is_dropped_and_the_others_are_or() -> None:
    out = routes(
        """
  - match:
    - {sourceLabels: {app: nobody}}
    - {uri: {prefix: /either}}
    - {uri: {prefix: /or}}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{sourceLabels: {app: nobody}}]
    route: [{destination: {host: reviews, subset: v2}}]
""",
        source=caller(),
    )
    assert [(r.name, r.match.prefix) for r in out] == [
        ("default/rules/http[0]/match[1]", "/either"),
        ("default/rules/http[0]/match[2]", "/or"),
    ]


def test_nothing_after_a_catch_all_route() -> None:
    out = routes(
        """
  - match: [{uri: {prefix: /a}}, {uri: {prefix: /}}, {uri: {prefix: /b}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v2}}]
"""
    )
    assert [r.match.prefix for r in out] == ["/a", "/"]
