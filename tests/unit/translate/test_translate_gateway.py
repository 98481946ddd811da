"""Gateway route tables and ports."""

from __future__ import annotations

import pytest
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from translate_kit import REVIEWS, REVIEWS_SERVICE, snapshot, virtual_service

from plait.api import VirtualService, load_text
from plait.model.snapshot import MeshSnapshot, build_snapshot
from plait.translate import gateway as gateway_module
from plait.translate.gateway import (
    _more_specific,
    gateway_port_plans,
    gateway_ports,
    gateway_routes,
    host_matches,
    route_tables,
    tls_chains,
)
from plait.translate.routes import RouteContext

SERVICES = REVIEWS_SERVICE


def vhosts(config: route_pb2.RouteConfiguration) -> dict[str, list[str]]:
    return {v.name: list(v.domains) for v in config.virtual_hosts}


GATEWAYS = """---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.example.com"]
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: cert}
  - port: {number: 9000, name: grpc, protocol: GRPC}
    hosts: ["edge/api.example.com"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 81, name: tcp, protocol: TCP}
    hosts: ["*"]
"""


def test_gateway_ports_are_http_server_ports_in_first_seen_order() -> None:
    # default/… before edge/…; 8443 has no certificate files (credentialName is not applied)
    assert gateway_ports(snapshot(SERVICES + GATEWAYS)) == [80, 9000]


def test_gateway_vhosts_for_virtual_services_bound_by_name_and_by_namespace_name() -> None:
    snap = snapshot(
        SERVICES
        + GATEWAYS
        + virtual_service("v1", "[shop-gateway]", hosts='["*"]')
        + virtual_service("v2", "[edge/public]", hosts="[api.example.com, other.org]")
        + virtual_service("v3", "[public]", hosts="[www.example.com]", ns="edge")
        + virtual_service("v4", "[mesh]", hosts="[reviews]")
    )
    config = gateway_routes(snap, 80)
    assert config.name == "http.80"
    assert config.validate_clusters.value is False
    got = {v.name: (list(v.domains), [r.name for r in v.routes]) for v in config.virtual_hosts}
    assert got == {
        # other.org is not served by edge/public (*.example.com); `*` comes last
        "api.example.com:80": (["api.example.com"], ["default/v2/http[0]/match[0]"]),
        "www.example.com:80": (["www.example.com"], ["edge/v3/http[0]/match[0]"]),
        "*:80": (["*"], ["default/v1/http[0]/match[0]"]),
    }
    assert list(got)[-1] == "*:80"
    route = config.virtual_hosts[-1].routes[0]
    assert route.route.cluster == f"outbound|8080|v1|{REVIEWS}"


def test_a_namespace_prefixed_server_host_binds_only_virtual_services_of_that_namespace() -> None:
    snap = snapshot(
        SERVICES
        + GATEWAYS
        + virtual_service("v2", "[edge/public]", hosts="[api.example.com]")
        + virtual_service("v3", "[public]", hosts="[api.example.com]", ns="edge")
    )
    # server host `edge/api.example.com`: default/v2 may not bind, edge/v3 may
    (vhost,) = gateway_routes(snap, 9000).virtual_hosts
    assert list(vhost.domains) == ["api.example.com"]
    assert [r.name for r in vhost.routes] == ["edge/v3/http[0]/match[0]"]


def test_gateway_port_without_bound_virtual_services_is_empty() -> None:
    assert len(gateway_routes(snapshot(SERVICES + GATEWAYS), 80).virtual_hosts) == 0


def test_two_virtual_services_for_one_gateway_host_share_a_vhost_in_order() -> None:
    snap = snapshot(
        SERVICES
        + GATEWAYS
        + virtual_service("v1", "[shop-gateway]", hosts="[shop.local]")
        + virtual_service("v2", "[shop-gateway]", hosts="[shop.local]")
    )
    (vhost,) = gateway_routes(snap, 80).virtual_hosts
    assert [r.name for r in vhost.routes] == [
        "default/v1/http[0]/match[0]",
        "default/v2/http[0]/match[0]",
    ]


@pytest.mark.parametrize(
    ("a", "b", "matches", "domain"),
    [
        ("*", "shop.example.com", True, "shop.example.com"),
        ("*.example.com", "*", True, "*.example.com"),
        ("*.example.com", "a.example.com", True, "a.example.com"),
        ("*.example.com", "*.a.example.com", True, "*.a.example.com"),
        ("*.example.com", "example.com", False, None),
        ("*.example.com", "a.example.org", False, None),
        ("a.example.com", "a.example.com", True, "a.example.com"),
        ("a.example.com", "b.example.com", False, None),
    ],
)
def test_hosts_intersect_with_wildcards_and_keep_the_more_specific_name(
    a: str, b: str, matches: bool, domain: str | None
) -> None:
    assert host_matches(a, b) is matches
    assert host_matches(b, a) is matches
    if domain is not None:
        assert _more_specific(a, b) == domain == _more_specific(b, a)


def gateway_yaml(name: str, servers: str, ns: str = "default") -> str:
    return f"""---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
{servers}"""


def test_a_wildcard_virtual_service_serves_only_the_server_hosts() -> None:
    snap = snapshot(
        SERVICES
        + gateway_yaml(
            "gw", '  - {port: {number: 80, name: http, protocol: HTTP}, hosts: ["*.example.com"]}\n'
        )
        + virtual_service("v1", "[gw]", hosts='["*"]')
    )
    assert vhosts(gateway_routes(snap, 80)) == {"*.example.com:80": ["*.example.com"]}


def test_dot_slash_means_the_gateway_namespace_and_star_slash_any_namespace() -> None:
    servers = (
        '  - {port: {number: 80, name: http, protocol: HTTP}, hosts: ["./own.example.com", '
        '"*/any.example.com"]}\n'
    )
    snap = snapshot(
        SERVICES
        + gateway_yaml("gw", servers, ns="edge")
        + virtual_service("v1", "[edge/gw]", hosts="[own.example.com, any.example.com]")
        + virtual_service("v2", "[gw]", hosts="[own.example.com]", ns="edge")
    )
    got = {v.name: [r.name for r in v.routes] for v in gateway_routes(snap, 80).virtual_hosts}
    assert got == {
        "any.example.com:80": ["default/v1/http[0]/match[0]"],
        "own.example.com:80": ["edge/v2/http[0]/match[0]"],
    }


def test_a_virtual_service_bound_to_mesh_only_is_not_on_the_gateway() -> None:
    snap = snapshot(SERVICES + GATEWAYS + virtual_service("v1", "[mesh]", hosts="[reviews]"))
    assert len(gateway_routes(snap, 80).virtual_hosts) == 0


def test_each_table_is_translated_for_its_own_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-match `gateways` need to know which Gateway a table is for (RouteContext.gateway)."""
    seen: list[tuple[str, str]] = []

    def spy(ctx: RouteContext, vs: VirtualService) -> list[rc.Route]:
        seen.append((vs.metadata.name, ctx.gateway))
        return []

    monkeypatch.setattr(gateway_module, "vs_routes", spy)
    servers = '  - {port: {number: 80, name: http, protocol: HTTP}, hosts: ["*/*"]}\n'
    snap = snapshot(
        SERVICES
        + gateway_yaml("a", servers)
        + gateway_yaml("b", servers, ns="edge")
        + virtual_service("v1", "[a, edge/b, mesh]", hosts="[reviews]")
    )
    gateway_routes(snap, 80)
    assert sorted(seen) == [("v1", "default/a"), ("v1", "edge/b")]


REDIRECT = gateway_yaml(
    "gw",
    """  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [secure.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 80, name: http-plain, protocol: HTTP}
    hosts: [plain.example.com]
""",
)


def test_https_redirect_requires_tls_on_the_server_hosts_only() -> None:
    snap = snapshot(
        SERVICES
        + REDIRECT
        + virtual_service("v1", "[gw]", hosts="[secure.example.com, plain.example.com]")
    )
    got = {v.name: v.require_tls for v in gateway_routes(snap, 80).virtual_hosts}
    assert got == {
        "plain.example.com:80": rc.VirtualHost.NONE,
        "secure.example.com:80": rc.VirtualHost.ALL,
    }


def test_https_redirect_answers_even_without_a_virtual_service() -> None:
    (vhost,) = gateway_routes(snapshot(SERVICES + REDIRECT), 80).virtual_hosts
    assert (list(vhost.domains), vhost.require_tls, len(vhost.routes)) == (
        ["secure.example.com"],
        rc.VirtualHost.ALL,
        0,
    )


HTTPS = gateway_yaml(
    "web",
    """  - port: {number: 443, name: https-a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, serverCertificate: certs/a.crt, privateKey: certs/a.key}
  - port: {number: 443, name: https-b, protocol: HTTPS}
    hosts: ["*.example.org", "b.example.com"]
    tls: {mode: SIMPLE, serverCertificate: /etc/b.crt, privateKey: /etc/b.key}
  - port: {number: 443, name: https-any, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, serverCertificate: any.crt, privateKey: any.key}
  - port: {number: 443, name: https-dup, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, serverCertificate: dup.crt, privateKey: dup.key}
  - port: {number: 8443, name: passthrough, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: PASSTHROUGH}
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
""",
)


def https_snapshot(text: str, file: str = "/meshes/shop/gateway.yaml") -> MeshSnapshot:
    result = load_text(text, file)
    assert not result.errors, [str(m) for m in result.errors]
    return build_snapshot(result.resources, (), 1)


def test_https_ports_come_after_http_ports_and_passthrough_is_not_served() -> None:
    plans = gateway_port_plans(https_snapshot(SERVICES + HTTPS))
    assert [(p.number, p.tls) for p in plans] == [(8080, False), (443, True)]


def test_each_https_server_has_its_own_table_and_sni_names() -> None:
    snap = https_snapshot(
        SERVICES
        + HTTPS
        + virtual_service("v1", "[web]", hosts="[a.example.com, b.example.com, c.example.com]")
    )
    (plan,) = [p for p in gateway_port_plans(snap) if p.tls]
    chains = [(s.server.port.name, sni) for s, sni in tls_chains(plan)]
    # https-dup claims only a.example.com, which https-a has: it gets no chain
    assert chains == [
        ("https-a", ["a.example.com"]),
        ("https-b", ["*.example.org", "b.example.com"]),
        ("https-any", []),
    ]
    tables = {t.name: vhosts(t) for t in route_tables(snap, plan)}
    assert tables == {
        "https.443.https-a.web.default": {"a.example.com:443": ["a.example.com"]},
        "https.443.https-b.web.default": {"b.example.com:443": ["b.example.com"]},
        "https.443.https-any.web.default": {
            "a.example.com:443": ["a.example.com"],
            "b.example.com:443": ["b.example.com"],
            "c.example.com:443": ["c.example.com"],
        },
    }


def test_relative_certificate_paths_start_at_the_gateway_file_directory() -> None:
    (plan,) = [p for p in gateway_port_plans(https_snapshot(SERVICES + HTTPS)) if p.tls]
    a, b = plan.servers[0], plan.servers[1]
    assert a.file("certs/a.crt") == "/meshes/shop/certs/a.crt"
    assert a.file("../x/a.crt") == "/meshes/x/a.crt"
    assert b.file("/etc/b.crt") == "/etc/b.crt"
    # a source without a directory (e.g. text loaded in memory): paths are left as written
    (plan,) = [p for p in gateway_port_plans(https_snapshot(SERVICES + HTTPS, "gw.yaml")) if p.tls]
    assert plan.servers[0].file("certs/a.crt") == "certs/a.crt"


def test_an_https_server_with_only_a_credential_name_is_not_served() -> None:
    text = gateway_yaml(
        "gw",
        """  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: shop-cert}
""",
    )
    assert gateway_ports(snapshot(SERVICES + text)) == []


def test_applied_gateway_tls_fields_load_without_warnings_and_credential_name_warns() -> None:
    result = load_text(SERVICES + HTTPS + REDIRECT, "/meshes/shop/gateway.yaml")
    assert (result.errors, result.warnings) == ((), ())
    result = load_text(GATEWAYS, "gateway.yaml")
    assert [m.path for m in result.warnings] == ["spec.servers[1].tls.credentialName"]
