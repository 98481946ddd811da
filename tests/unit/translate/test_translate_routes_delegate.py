"""Delegate VirtualServices: children merged under their parent rule, as Istio does."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from routes_kit import caller, routes, vs_text
from translate_kit import REVIEWS

CHILD = vs_text(
    """
  - match: [{uri: {prefix: /api/v2}, headers: {x-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {exact: /api/health}}]
    directResponse: {status: 200}
  - match: [{uri: {prefix: /other}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - route: [{destination: {host: reviews, subset: v1}}]
    timeout: 2s
""",
    name="api-routes",
    namespace="team",
    hosts="[]",
)


def summary(out: list[rc.Route]) -> list[tuple[str, str, str]]:
    return [
        (
            r.name,
            r.match.path or r.match.prefix,
            r.route.cluster.split("|")[2] if r.HasField("route") else r.WhichOneof("action"),
        )
        for r in out
    ]


def test_children_are_merged_under_the_parent_match_in_place() -> None:
    out = routes(
        """
  - match: [{uri: {exact: /login}}]
    route: [{destination: {host: reviews, subset: v9}}]
  - match: [{uri: {prefix: /api}, method: {exact: GET}}]
    delegate: {name: api-routes, namespace: team}
    timeout: 5s
  - route: [{destination: {host: reviews, subset: v0}}]
""",
        extra=CHILD,
    )
    base = "default/rules/http[1]/team/api-routes"
    assert summary(out) == [
        ("default/rules/http[0]/match[0]", "/login", "v9"),
        (f"{base}/http[0]/match[0]", "/api/v2", "v2"),
        (f"{base}/http[1]/match[0]", "/api/health", "direct_response"),
        # /other does not fall under /api: dropped
        (f"{base}/http[3]/match[0]", "/api", "v1"),  # no child match: the parent's
        ("default/rules/http[2]/match[0]", "/", "v0"),
    ]
    v2 = out[1]
    assert {h.name: h.string_match.exact for h in v2.match.headers} == {
        "x-user": "jason",
        ":method": "GET",  # the parent's method is merged in
    }
    # the parent's timeout fills what a child leaves unset; a child's own wins
    assert out[1].route.timeout.seconds == 5
    assert out[3].route.timeout.seconds == 2


def test_child_short_hosts_resolve_in_the_delegates_namespace() -> None:
    child = vs_text(
        "  - route: [{destination: {host: multi, port: {number: 80}}}]\n",
        name="c",
        namespace="team",
        hosts="[]",
    )
    out = routes("  - delegate: {name: c, namespace: team}\n", extra=child)
    assert out[0].route.cluster == "outbound|80||multi.team.svc.cluster.local"


def test_delegate_namespace_defaults_to_the_parents() -> None:
    child = vs_text(
        "  - route: [{destination: {host: reviews, subset: v5}}]\n", name="c", hosts="[]"
    )
    out = routes("  - delegate: {name: c}\n", extra=child)
    assert out[0].route.cluster == f"outbound|8080|v5|{REVIEWS}"


def test_missing_delegates_and_delegates_with_hosts_drop_only_that_rule() -> None:
    with_hosts = vs_text(
        "  - route: [{destination: {host: reviews, subset: v5}}]\n", name="c", hosts="[x]"
    )
    out = routes(
        """
  - match: [{uri: {prefix: /a}}]
    delegate: {name: nowhere}
  - match: [{uri: {prefix: /b}}]
    delegate: {name: c}
  - route: [{destination: {host: reviews, subset: v1}}]
""",
        extra=with_hosts,
    )
    assert summary(out) == [("default/rules/http[2]/match[0]", "/", "v1")]


def test_delegation_is_one_level_so_it_cannot_loop() -> None:
    loop = vs_text(
        """
  - match: [{uri: {prefix: /x}}]
    delegate: {name: loop}
  - route: [{destination: {host: reviews, subset: v7}}]
""",
        name="loop",
        hosts="[]",
    )
    out = routes("  - delegate: {name: loop}\n", extra=loop)
    assert summary(out) == [("default/rules/http[0]/default/loop/http[1]/match[0]", "/", "v7")]


def test_conflicting_child_matches_are_dropped() -> None:
    child = vs_text(
        """
  - match: [{uri: {regex: "/a/.*"}}]
    route: [{destination: {host: reviews, subset: r}}]
  - match: [{uri: {prefix: /a/x}, headers: {x: {exact: "2"}}}]
    route: [{destination: {host: reviews, subset: h}}]
  - match: [{uri: {exact: /a/y}, port: 9999}]
    route: [{destination: {host: reviews, subset: p}}]
  - match: [{uri: {exact: /a/z}, ignoreUriCase: true}]
    route: [{destination: {host: reviews, subset: c}}]
  - match: [{uri: {prefix: /a/ok}}]
    route: [{destination: {host: reviews, subset: ok}}]
""",
        name="c",
        hosts="[]",
    )
    out = routes(
        """
  - match: [{uri: {prefix: /a}, headers: {x: {exact: "1"}}, port: 8080}]
    delegate: {name: c}
""",
        extra=child,
    )
    assert [r.route.cluster.split("|")[2] for r in out] == ["ok"]


def test_each_child_match_merges_with_every_parent_match_it_fits() -> None:
    child = vs_text(
        """
  - match: [{uri: {prefix: /shop/cart}}]
    route: [{destination: {host: reviews, subset: v2}}]
""",
        name="c",
        hosts="[]",
    )
    out = routes(
        """
  - match:
    - {uri: {prefix: /shop}, headers: {x-a: {exact: "1"}}}
    - {uri: {prefix: /shop}, headers: {x-b: {exact: "1"}}}
    - {uri: {prefix: /admin}}
    delegate: {name: c}
""",
        extra=child,
    )
    assert [(r.match.prefix, [h.name for h in r.match.headers]) for r in out] == [
        ("/shop/cart", ["x-a"]),
        ("/shop/cart", ["x-b"]),
    ]


def test_parent_source_labels_and_gateways_still_select() -> None:
    child = vs_text(
        "  - route: [{destination: {host: reviews, subset: v2}}]\n", name="c", hosts="[]"
    )
    http = """
  - match: [{sourceLabels: {app: client}}]
    delegate: {name: c}
"""
    assert routes(http, extra=child, source=caller({"app": "client"}))
    assert not routes(http, extra=child, source=caller({"app": "other"}))
