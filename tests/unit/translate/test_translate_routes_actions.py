"""Route actions: redirect, direct response, rewrite, header operations, mirrors."""

from __future__ import annotations

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.v3 import percent_pb2
from routes_kit import one, routes
from translate_kit import REVIEWS

HVO = base_pb2.HeaderValueOption
MIRROR = "mirror.default.svc.cluster.local"


def test_redirect_defaults_to_301_keeping_host_and_path() -> None:
    route = one("  - redirect: {}\n")
    assert route.WhichOneof("action") == "redirect"
    assert route.redirect.response_code == rc.RedirectAction.MOVED_PERMANENTLY
    assert (route.redirect.host_redirect, route.redirect.path_redirect) == ("", "")
    assert not route.redirect.port_redirect and not route.redirect.scheme_redirect


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (301, rc.RedirectAction.MOVED_PERMANENTLY),
        (302, rc.RedirectAction.FOUND),
        (303, rc.RedirectAction.SEE_OTHER),
        (307, rc.RedirectAction.TEMPORARY_REDIRECT),
        (308, rc.RedirectAction.PERMANENT_REDIRECT),
    ],
)
def test_redirect_codes(code: int, expected: int) -> None:
    assert (
        one(f"  - redirect: {{uri: /x, redirectCode: {code}}}\n").redirect.response_code == expected
    )


def test_a_redirect_code_envoy_cannot_send_drops_the_rule() -> None:
    assert routes("  - redirect: {uri: /x, redirectCode: 304}\n") == []


def test_redirect_uri_authority_scheme_and_port() -> None:
    r = one(
        "  - redirect: {uri: /new, authority: shop.example, scheme: https, port: 8443}\n"
    ).redirect
    assert (r.path_redirect, r.host_redirect, r.scheme_redirect, r.port_redirect) == (
        "/new",
        "shop.example",
        "https",
        8443,
    )


@pytest.mark.parametrize(
    ("redirect", "port", "expected"),
    [
        ("{derivePort: FROM_REQUEST_PORT}", 8080, 8080),
        ("{derivePort: FROM_REQUEST_PORT}", None, 0),  # gateway tables: no known port
        ("{derivePort: FROM_PROTOCOL_DEFAULT}", 8080, 0),  # Envoy's default behaviour
        ("{port: 80}", 8080, 0),  # no explicit :80 for http (Istio)
        ("{port: 443, scheme: https}", 8080, 0),
        ("{port: 443}", 8080, 443),
    ],
)
def test_redirect_port_choice(redirect: str, port: int | None, expected: int) -> None:
    assert one(f"  - redirect: {redirect}\n", port=port).redirect.port_redirect == expected


def test_direct_response_with_string_and_bytes_bodies() -> None:
    out = routes(
        """
  - match: [{uri: {prefix: /s}}]
    directResponse: {status: 418, body: {string: "I'm a teapot"}}
  - match: [{uri: {prefix: /b}}]
    directResponse: {status: 200, body: {bytes: aGVsbG8=}}
  - directResponse: {status: 204}
"""
    )
    assert [r.direct_response.status for r in out] == [418, 200, 204]
    assert out[0].direct_response.body.inline_string == "I'm a teapot"
    assert out[1].direct_response.body.inline_bytes == b"hello"
    assert not out[2].direct_response.HasField("body")


def test_rewrite_uri_replaces_the_matched_prefix_and_authority_the_host() -> None:
    route = one(
        """
  - match: [{uri: {prefix: /old/}}]
    rewrite: {uri: /new/, authority: internal.example}
    route: [{destination: {host: reviews}}]
"""
    )
    assert route.route.prefix_rewrite == "/new/"
    assert route.route.host_rewrite_literal == "internal.example"
    assert not route.route.HasField("regex_rewrite")


def test_uri_regex_rewrite() -> None:
    route = one(
        """
  - rewrite: {uriRegexRewrite: {match: "^/v1/(.*)$", rewrite: '/v2/\\1'}}
    route: [{destination: {host: reviews}}]
"""
    )
    assert route.route.regex_rewrite.pattern.regex == "^/v1/(.*)$"
    assert route.route.regex_rewrite.substitution == "/v2/\\1"
    assert not route.route.prefix_rewrite


def options(items: list[HVO]) -> list[tuple[str, str, int]]:
    return [(o.header.key, o.header.value, o.append_action) for o in items]


def test_rule_header_operations_on_the_route() -> None:
    route = one(
        """
  - headers:
      request:
        set: {x-b: "2", x-a: "1", ":path": /no}
        add: {x-c: "3"}
        remove: [x-drop, host]
      response:
        set: {x-r: r}
        add: {x-s: s}
        remove: [server]
    route: [{destination: {host: reviews}}]
"""
    )
    assert options(list(route.request_headers_to_add)) == [
        ("x-a", "1", HVO.OVERWRITE_IF_EXISTS_OR_ADD),  # set: sorted, overwrite
        ("x-b", "2", HVO.OVERWRITE_IF_EXISTS_OR_ADD),
        ("x-c", "3", HVO.APPEND_IF_EXISTS_OR_ADD),  # add: append
    ]
    assert list(route.request_headers_to_remove) == ["x-drop"]  # host cannot be removed
    assert options(list(route.response_headers_to_add)) == [
        ("x-r", "r", HVO.OVERWRITE_IF_EXISTS_OR_ADD),
        ("x-s", "s", HVO.APPEND_IF_EXISTS_OR_ADD),
    ]
    assert list(route.response_headers_to_remove) == ["server"]
    assert not route.route.host_rewrite_literal


@pytest.mark.parametrize("name", ["host", ":authority", "Host"])
def test_setting_the_host_header_rewrites_the_authority(name: str) -> None:
    route = one(
        f"""
  - headers: {{request: {{set: {{"{name}": new.example}}}}}}
    route: [{{destination: {{host: reviews}}}}]
"""
    )
    assert route.route.host_rewrite_literal == "new.example"
    assert not route.request_headers_to_add


def test_rewrite_authority_wins_over_a_host_header() -> None:
    route = one(
        """
  - headers: {request: {set: {host: from-header}}}
    rewrite: {authority: from-rewrite}
    route: [{destination: {host: reviews}}]
"""
    )
    assert route.route.host_rewrite_literal == "from-rewrite"


def test_a_lone_destinations_header_operations_go_on_the_route() -> None:
    route = one(
        """
  - headers: {request: {set: {x-rule: r}}}
    route:
    - destination: {host: reviews, subset: v1}
      headers:
        request: {set: {x-dest: d, host: dest.example}}
        response: {add: {x-served-by: v1}, remove: [x-secret]}
"""
    )
    assert [o.header.key for o in route.request_headers_to_add] == ["x-rule", "x-dest"]
    assert [o.header.key for o in route.response_headers_to_add] == ["x-served-by"]
    assert list(route.response_headers_to_remove) == ["x-secret"]
    assert route.route.host_rewrite_literal == "dest.example"


def test_weighted_destinations_carry_their_own_header_operations() -> None:
    route = one(
        """
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
      headers: {response: {set: {x-version: v1}}, request: {set: {host: v1.example}}}
    - destination: {host: reviews, subset: v2}
      weight: 20
      headers: {request: {add: {x-canary: "yes"}, remove: [x-old]}}
"""
    )
    v1, v2 = route.route.weighted_clusters.clusters
    assert (v1.name, v1.weight.value, v2.name, v2.weight.value) == (
        f"outbound|8080|v1|{REVIEWS}",
        80,
        f"outbound|8080|v2|{REVIEWS}",
        20,
    )
    assert options(list(v1.response_headers_to_add)) == [
        ("x-version", "v1", HVO.OVERWRITE_IF_EXISTS_OR_ADD)
    ]
    assert v1.host_rewrite_literal == "v1.example"
    assert options(list(v2.request_headers_to_add)) == [
        ("x-canary", "yes", HVO.APPEND_IF_EXISTS_OR_ADD)
    ]
    assert list(v2.request_headers_to_remove) == ["x-old"]
    assert not route.request_headers_to_add and not route.response_headers_to_add


def mirrors(route: rc.Route) -> list[tuple[str, int, int]]:
    return [
        (
            m.cluster,
            m.runtime_fraction.default_value.numerator,
            m.runtime_fraction.default_value.denominator,
        )
        for m in route.route.request_mirror_policies
    ]


HUNDRED = percent_pb2.FractionalPercent.HUNDRED
MILLION = percent_pb2.FractionalPercent.MILLION


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("", [(f"outbound|8080||{MIRROR}", 100, HUNDRED)]),
        ("mirrorPercentage: {value: 12.5}", [(f"outbound|8080||{MIRROR}", 125_000, MILLION)]),
        ("mirrorPercentage: {value: 0.0}", []),
        ("mirrorPercent: 30", [(f"outbound|8080||{MIRROR}", 30, HUNDRED)]),
        ("mirrorPercent: 0", []),
    ],
)
def test_mirror_and_its_percentage(fields: str, expected: list[tuple[str, int, int]]) -> None:
    route = one(
        f"""
  - route: [{{destination: {{host: reviews}}}}]
    mirror: {{host: mirror}}
    {fields}
"""
    )
    assert mirrors(route) == expected
    assert all(m.trace_sampled.value is False for m in route.route.request_mirror_policies)


def test_several_mirrors_resolve_like_destinations() -> None:
    route = one(
        """
  - route: [{destination: {host: reviews}}]
    mirrors:
    - destination: {host: mirror}
      percentage: {value: 50}
    - destination: {host: reviews, subset: v2}
    - destination: {host: multi.team, port: {number: 9000}}
      percentage: {value: 0.0}
"""
    )
    assert mirrors(route) == [
        (f"outbound|8080||{MIRROR}", 500_000, MILLION),
        (f"outbound|8080|v2|{REVIEWS}", 100, HUNDRED),
    ]
