"""VirtualService routing through real Envoys: weighted splits, every kind of match,
source-labelled callers, redirects, direct responses, rewrites, header operations,
mirroring, CORS, delegation and per-match gateways."""

from __future__ import annotations

from collections import Counter

from labkit import Lab, eventually, statuses, within
from routekit import send_from, share, subset_of

ECHO = "http://echo:8080"

# A second caller (app: other) next to the lab's `client`, for sourceLabels.
LAB_FILES = {
    "other.yaml": """apiVersion: v1
kind: Service
metadata: {name: other}
spec:
  selector: {app: other}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: other}
spec:
  replicas: 1
  selector: {matchLabels: {app: other}}
  template:
    metadata: {labels: {app: other}}
    spec:
      containers:
        - {name: other, image: plait/lab, command: [python, echo.py], ports: [{containerPort: 8080}]}
"""
}


def vs(http: str, *, name: str = "echo", hosts: str = "[echo]", extra: str = "") -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
  hosts: {hosts}
{extra}  http:
{http}"""


def split(v1: int, v2: int) -> str:
    return vs(
        f"""  - route:
    - {{destination: {{host: echo, subset: v1}}, weight: {v1}}}
    - {{destination: {{host: echo, subset: v2}}, weight: {v2}}}
"""
    )


async def test_an_80_20_split_within_5_percent(lab: Lab) -> None:
    with lab.config("split", split(80, 20)):
        replies = await lab.send(f"{ECHO}/split", 2000, concurrency=16)
    assert statuses(replies) == {200: 2000}
    assert within(share(replies, lambda r: subset_of(r) == "v2"), 0.20, 0.05)
    assert share(replies, lambda r: subset_of(r) in ("v1", "v2")) == 1


async def test_a_99_1_split_shows_the_one_percent(lab: Lab) -> None:
    with lab.config("split", split(99, 1)):
        replies = await lab.send(f"{ECHO}/canary", 2000, concurrency=16)
    assert statuses(replies) == {200: 2000}
    v2 = share(replies, lambda r: subset_of(r) == "v2")
    assert 0 < v2 <= 0.03, v2


MATCHES = vs(
    """  - match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: echo, subset: v2}}]
    headers: {response: {set: {x-rule: header}}}
  - match: [{uri: {prefix: /v2/}}, {uri: {regex: "/items/[0-9]+"}}]
    route: [{destination: {host: echo, subset: v2}}]
    headers: {response: {set: {x-rule: uri}}}
  - match: [{method: {exact: POST}}]
    route: [{destination: {host: echo, subset: v2}}]
    headers: {response: {set: {x-rule: method}}}
  - match: [{queryParams: {version: {exact: "2"}}}]
    route: [{destination: {host: echo, subset: v2}}]
    headers: {response: {set: {x-rule: query}}}
  - match: [{uri: {exact: /CaseLess}, ignoreUriCase: true}]
    route: [{destination: {host: echo, subset: v2}}]
    headers: {response: {set: {x-rule: case}}}
  - route: [{destination: {host: echo, subset: v1}}]
    headers: {response: {set: {x-rule: default}}}
"""
)


async def test_header_uri_method_and_query_matches_pick_the_subset(lab: Lab) -> None:
    cases = [
        ("GET", "/a", {"x-canary": "yes"}, "header"),
        ("GET", "/a", {"x-canary": "no"}, "default"),
        ("GET", "/v2/thing", {}, "uri"),
        ("GET", "/items/42", {}, "uri"),
        ("GET", "/items/x", {}, "default"),
        ("POST", "/a", {}, "method"),
        ("GET", "/a?version=2", {}, "query"),
        ("GET", "/a?version=1", {}, "default"),
        ("GET", "/caseless", {}, "case"),
    ]
    with lab.config("matches", MATCHES):
        for method, path, headers, rule in cases:
            replies = await lab.send(f"{ECHO}{path}", 10, method=method, headers=headers)
            expected = "v1" if rule == "default" else "v2"
            assert {(r.status, subset_of(r), r.headers.get("x-rule")) for r in replies} == {
                (200, expected, rule)
            }, (method, path, headers)


async def test_source_labels_route_only_the_labelled_caller(lab: Lab) -> None:
    text = vs(
        """  - match: [{sourceLabels: {app: client}}]
    route: [{destination: {host: echo, subset: v2}}]
  - route: [{destination: {host: echo, subset: v1}}]
"""
    )
    with lab.config("by-caller", text):
        from_client = await send_from(lab, "client", f"{ECHO}/who", 30)
        from_other = await send_from(lab, "other", f"{ECHO}/who", 30)
    assert Counter(subset_of(r) for r in from_client) == {"v2": 30}
    assert Counter(subset_of(r) for r in from_other) == {"v1": 30}


async def test_redirects(lab: Lab) -> None:
    text = vs(
        """  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, redirectCode: 302}
  - match: [{uri: {prefix: /away}}]
    redirect: {authority: shop.example, scheme: https, port: 8443}
  - route: [{destination: {host: echo}}]
"""
    )
    with lab.config("redirect", text):
        (found,) = await send_from(lab, "client", f"{ECHO}/old/page")
        (moved,) = await send_from(lab, "client", f"{ECHO}/away/x")
    assert (found.status, found.headers["Location"]) == (302, "http://echo:8080/new")
    assert (moved.status, moved.headers["Location"]) == (301, "https://shop.example:8443/away/x")


async def test_direct_response(lab: Lab) -> None:
    text = vs(
        """  - match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - route: [{destination: {host: echo}}]
"""
    )
    with lab.config("direct", text):
        replies = await lab.send(f"{ECHO}/teapot", 5)
    assert {(r.status, r.body) for r in replies} == {(418, "short and stout")}


async def test_the_upstream_sees_the_rewritten_path_and_authority(lab: Lab) -> None:
    text = vs(
        """  - match: [{uri: {prefix: /old/}}]
    rewrite: {uri: /new/, authority: rewritten.example}
    route: [{destination: {host: echo}}]
  - match: [{uri: {prefix: /re/}}]
    rewrite: {uriRegexRewrite: {match: "^/re/([a-z]+)/(.*)$", rewrite: '/\\2/\\1'}}
    route: [{destination: {host: echo}}]
"""
    )
    with lab.config("rewrite", text):
        (prefix,) = await lab.send(f"{ECHO}/old/page?q=1")
        (regex,) = await lab.send(f"{ECHO}/re/abc/def")
    assert (prefix.status, prefix.body["path"], prefix.body["query"]) == (200, "/new/page", "q=1")
    assert prefix.body["host"] == "rewritten.example"
    assert (regex.status, regex.body["path"]) == (200, "/def/abc")


async def test_request_and_response_header_operations(lab: Lab) -> None:
    text = vs(
        """  - headers:
      request: {set: {x-route: r}, add: {x-added: a}, remove: [x-drop]}
      response: {set: {x-resp: route}}
    route:
    - destination: {host: echo, subset: v1}
      weight: 50
      headers: {response: {set: {x-dest: v1}}, request: {set: {x-to: v1}}}
    - destination: {host: echo, subset: v2}
      weight: 50
      headers: {response: {set: {x-dest: v2}}, request: {set: {x-to: v2}}}
"""
    )
    with lab.config("headers", text):
        replies = await lab.send(f"{ECHO}/h", 40, headers={"x-drop": "1", "x-route": "mine"})
    assert statuses(replies) == {200: 40}
    for r in replies:
        seen = {k.lower(): v for k, v in r.body["headers"].items()}
        assert seen["x-route"] == "r" and "x-drop" not in seen  # set overwrites; removed
        assert seen["x-added"] == "a"
        assert seen["x-to"] == subset_of(r)  # per destination
        assert r.headers["x-resp"] == "route"
        assert r.headers["x-dest"] == subset_of(r)
    assert {subset_of(r) for r in replies} == {"v1", "v2"}


async def test_a_mirror_gets_copies_and_callers_only_the_primary(lab: Lab) -> None:
    text = vs(
        """  - route: [{destination: {host: echo, subset: v1}}]
    mirror: {host: mirror}
    mirrorPercentage: {value: 50}
"""
    )
    lab.reset_counts("mirror")
    n = 400
    with lab.config("mirror", text):
        replies = await lab.send(f"{ECHO}/mirrored", n, concurrency=16)

        def mirrored() -> int:
            return sum(c.get("/mirrored", 0) for c in lab.upstream_counts("mirror").values())

        await eventually(lambda: mirrored() >= 150, 10, "the mirror receives copies")
    assert statuses(replies) == {200: n}
    assert {r.body["workload"] for r in replies} == {"echo-v1"}  # only the primary answers
    assert within(mirrored() / n, 0.5, 0.12), mirrored()


CORS = vs(
    """  - corsPolicy:
      allowOrigins: [{exact: "https://shop.example"}, {regex: "https://.*[.]test"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-user]
      maxAge: 1h
    route: [{destination: {host: echo}}]
"""
)


async def test_cors_preflight_for_allowed_and_disallowed_origins(lab: Lab) -> None:
    def preflight(origin: str) -> dict[str, str]:
        return {"Origin": origin, "Access-Control-Request-Method": "POST"}

    with lab.config("cors", CORS):
        (allowed,) = await lab.send(
            f"{ECHO}/c", method="OPTIONS", headers=preflight("https://shop.example")
        )
        (regex,) = await lab.send(
            f"{ECHO}/c", method="OPTIONS", headers=preflight("https://a.test")
        )
        (denied,) = await lab.send(
            f"{ECHO}/c", method="OPTIONS", headers=preflight("https://evil.example")
        )
    for reply, origin in ((allowed, "https://shop.example"), (regex, "https://a.test")):
        got = {k.lower(): v for k, v in reply.headers.items()}
        assert reply.status == 200
        assert got["access-control-allow-origin"] == origin
        assert got["access-control-allow-methods"] == "GET,POST"
        assert got["access-control-allow-headers"] == "x-user"
        assert got["access-control-max-age"] == "3600"
        assert reply.body == ""  # answered by the sidecar, not the app
    # not allowed: forwarded to the app (Istio's default), which knows nothing of CORS
    assert denied.status == 200 and denied.body["method"] == "OPTIONS"
    assert not [k for k in denied.headers if k.lower().startswith("access-control-")]


async def test_delegated_routes(lab: Lab) -> None:
    root = vs(
        """  - match: [{uri: {prefix: /team}}]
    delegate: {name: echo-team}
    headers: {response: {set: {x-via: root}}}
  - route: [{destination: {host: echo, subset: v2}}]
"""
    )
    child = vs(
        """  - match: [{uri: {prefix: /team/v2}}]
    route: [{destination: {host: echo, subset: v2}}]
    headers: {response: {set: {x-via: child}}}
  - route: [{destination: {host: echo, subset: v1}}]
""",
        name="echo-team",
        hosts="[]",
    )
    with lab.config("team", child), lab.config("root", root):
        (v2,) = await lab.send(f"{ECHO}/team/v2/x")
        team = await lab.send(f"{ECHO}/team/other", 10)
        (outside,) = await lab.send(f"{ECHO}/outside")
    assert (v2.status, subset_of(v2), v2.headers.get("x-via")) == (200, "v2", "child")
    assert {(r.status, subset_of(r), r.headers.get("x-via")) for r in team} == {(200, "v1", "root")}
    assert (outside.status, subset_of(outside), outside.headers.get("x-via")) == (200, "v2", None)
    assert not [e for e in lab.errors() if e.get("severity", "error") == "error"]


async def test_per_match_gateways_split_gateway_and_mesh_traffic(lab: Lab) -> None:
    text = vs(
        """  - match: [{gateways: [lab-gateway], uri: {prefix: /}}]
    route: [{destination: {host: echo, subset: v2}}]
  - route: [{destination: {host: echo, subset: v1}}]
""",
        hosts="[echo.default.svc.cluster.local]",
        extra="  gateways: [lab-gateway, mesh]\n",
    )
    host = {"Host": "echo.default.svc.cluster.local"}
    with lab.config("gateways", text):
        mesh = await lab.send(f"{ECHO}/g", 10)
        edge = await send_from(lab, None, "/g", 10, headers=host)
    assert {(r.status, subset_of(r)) for r in mesh} == {(200, "v1")}
    assert {(r.status, subset_of(r)) for r in edge} == {(200, "v2")}
