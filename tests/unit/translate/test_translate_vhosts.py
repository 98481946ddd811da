"""Sidecar virtual hosts: per-namespace domains, mesh binding, tables per caller signature."""

from __future__ import annotations

from dataclasses import replace

import pytest
from envoy.config.route.v3 import route_pb2
from translate_kit import REVIEWS, REVIEWS_SERVICE, sidecar, snapshot, unpack, virtual_service

from plait.model.labels import Labels
from plait.model.proxy import Proxy
from plait.model.snapshot import MeshSnapshot
from plait.translate import typeurls
from plait.translate.proxy import Translator
from plait.translate.resource import Resource
from plait.translate.vhosts import (
    RouteMemo,
    mesh_virtual_services,
    service_domains,
    sidecar_routes,
    source_selectors,
    table_key,
)

SERVICES = (
    REVIEWS_SERVICE
    + """apiVersion: v1
kind: Service
metadata: {name: web, namespace: team}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80}
  - {name: tcp-db, port: 5432}
  - {name: grpc, port: 9000}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external}
spec:
  hosts: [api.example.com]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: internal}
spec:
  hosts: [db.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
"""
)


def vhosts(config: route_pb2.RouteConfiguration) -> dict[str, list[str]]:
    return {v.name: list(v.domains) for v in config.virtual_hosts}


def test_domains_in_the_service_namespace_include_the_short_name() -> None:
    snap = snapshot(SERVICES)
    reviews = snap.service(REVIEWS)
    assert reviews is not None
    assert service_domains(reviews, 8080, "default") == [
        f"{REVIEWS}:8080",
        "reviews.default:8080",
        "reviews.default.svc:8080",
        "reviews:8080",
    ]
    # Kubernetes DNS search paths: `reviews` only resolves inside the service's namespace
    assert "reviews:8080" not in service_domains(reviews, 8080, "team")


def test_the_bare_host_only_for_port_80() -> None:
    web = snapshot(SERVICES).service("web.team.svc.cluster.local")
    assert web is not None
    assert service_domains(web, 80, "team") == [
        "web.team.svc.cluster.local:80",
        "web.team:80",
        "web.team.svc:80",
        "web:80",
        "web.team.svc.cluster.local",
        "web.team",
        "web.team.svc",
        "web",
    ]
    assert all(":" in d for d in service_domains(web, 9000, "team"))


@pytest.mark.parametrize("host", ["api.example.com", "db.internal"])
def test_service_entry_hosts_are_used_as_written(host: str) -> None:
    """Short forms exist only for Kubernetes Services (a MESH_INTERNAL entry once got
    `db.internal:80` twice, and Envoy rejected the whole route table)."""
    service = snapshot(SERVICES).service(host)
    assert service is not None
    assert service_domains(service, 80, "default") == [f"{host}:80", host]


def test_sidecar_table_has_one_vhost_per_http_port() -> None:
    config = sidecar_routes(snapshot(SERVICES), "default")
    assert config.name == "outbound"
    assert config.validate_clusters.value is False
    assert list(vhosts(config)) == [
        "api.example.com:80",
        "db.internal:80",
        f"{REVIEWS}:8080",
        "web.team.svc.cluster.local:80",
        "web.team.svc.cluster.local:9000",
        "allow_any",
    ]  # sorted by host; TCP (5432) and HTTPS (443) ports get none; egress catch-all last
    domains = [d for v in config.virtual_hosts for d in v.domains]
    assert len(domains) == len(set(domains))


def test_sidecar_tables_differ_by_namespace() -> None:
    snap = snapshot(SERVICES)
    in_default = vhosts(sidecar_routes(snap, "default"))
    in_team = vhosts(sidecar_routes(snap, "team"))
    assert "reviews:8080" in in_default[f"{REVIEWS}:8080"]
    assert "reviews:8080" not in in_team[f"{REVIEWS}:8080"]
    assert "web" in in_team["web.team.svc.cluster.local:80"]
    assert "web" not in in_default["web.team.svc.cluster.local:80"]


def test_service_without_virtual_service_gets_the_default_route() -> None:
    config = sidecar_routes(snapshot(SERVICES), "default")
    vhost = next(v for v in config.virtual_hosts if v.name == f"{REVIEWS}:8080")
    (route,) = vhost.routes
    assert route.name == "default"
    assert route.route.cluster == f"outbound|8080||{REVIEWS}"


def reviews_cluster(snap: MeshSnapshot) -> str:
    config = sidecar_routes(snap, "default")
    vhost = next(v for v in config.virtual_hosts if v.name == f"{REVIEWS}:8080")
    (route,) = vhost.routes
    return str(route.route.cluster)


def test_virtual_service_without_gateways_applies_to_sidecars() -> None:
    snap = snapshot(SERVICES + virtual_service("v1", "[]"))
    assert reviews_cluster(snap) == f"outbound|8080|v1|{REVIEWS}"


def test_virtual_service_bound_only_to_a_gateway_does_not_apply_to_sidecars() -> None:
    snap = snapshot(SERVICES + virtual_service("v1", "[shop-gateway]"))
    assert mesh_virtual_services(snap) == {}
    assert reviews_cluster(snap) == f"outbound|8080||{REVIEWS}"


def test_virtual_service_bound_to_a_gateway_and_mesh_applies_to_sidecars() -> None:
    snap = snapshot(SERVICES + virtual_service("v2", "[shop-gateway, mesh]"))
    assert reviews_cluster(snap) == f"outbound|8080|v2|{REVIEWS}"


def test_first_virtual_service_for_a_host_wins() -> None:
    snap = snapshot(
        SERVICES
        + virtual_service("v2", "[mesh]", hosts=f"[{REVIEWS}]")
        + virtual_service("v1", "[mesh]", hosts="[reviews]")
    )
    assert list(mesh_virtual_services(snap)) == [REVIEWS]
    assert reviews_cluster(snap) == f"outbound|8080|v1|{REVIEWS}"  # default/v1 < default/v2


def test_virtual_service_host_resolves_in_its_own_namespace() -> None:
    snap = snapshot(SERVICES + virtual_service("v3", "[]", hosts="[web]", ns="team"))
    assert list(mesh_virtual_services(snap)) == ["web.team.svc.cluster.local"]


def test_a_host_named_like_a_short_alias_keeps_its_name_and_domains_stay_unique() -> None:
    entry = """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shadow}
spec:
  hosts: [reviews]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http}]
  endpoints: [{address: 10.0.0.2}]
"""
    table = vhosts(sidecar_routes(snapshot(SERVICES + entry), "default"))
    all_domains = [d for domains in table.values() for d in domains]
    assert len(all_domains) == len(set(all_domains))
    assert "reviews:8080" in table["reviews:8080"]
    assert "reviews:8080" not in table[f"{REVIEWS}:8080"]
    assert "reviews.default:8080" in table[f"{REVIEWS}:8080"]


SOURCE_VS = """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: by-caller}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {app: client}, uri: {prefix: /a}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{sourceLabels: {app: client, version: v1}}, {sourceLabels: {app: client}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"""


def caller(name: str, namespace: str = "default", **labels: str) -> Proxy:
    base = sidecar(name, namespace=namespace)
    return replace(base, labels=Labels.of(labels))


def test_source_selectors_are_the_distinct_source_label_maps() -> None:
    snap = snapshot(SERVICES + SOURCE_VS)
    assert source_selectors(snap) == (
        Labels.of({"app": "client"}),
        Labels.of({"app": "client", "version": "v1"}),
    )
    assert source_selectors(snapshot(SERVICES)) == ()


def test_table_key_is_namespace_and_which_selectors_match() -> None:
    selectors = source_selectors(snapshot(SERVICES + SOURCE_VS))
    assert table_key(caller("a-0", app="client", team="x"), selectors) == ("default", (True, False))
    assert table_key(caller("b-0", app="client", version="v1"), selectors) == (
        "default",
        (True, True),
    )
    assert table_key(caller("c-0", namespace="team"), selectors) == ("team", (False, False))


def reviews_routes(config: route_pb2.RouteConfiguration) -> list[str]:
    vhost = next(v for v in config.virtual_hosts if v.name == f"{REVIEWS}:8080")
    return [r.route.cluster.split("|")[2] for r in vhost.routes]


def test_the_sidecar_table_follows_the_callers_labels() -> None:
    snap = snapshot(SERVICES + SOURCE_VS)
    client = caller("client-0", app="client")
    # for a client, the second rule is a catch-all: nothing after it
    assert reviews_routes(sidecar_routes(snap, "default", client)) == ["v2", "v3"]
    assert reviews_routes(sidecar_routes(snap, "default", caller("x-0", app="x"))) == ["v1"]
    assert reviews_routes(sidecar_routes(snap, "default")) == ["v1"]  # no caller known


def test_translator_shares_one_table_per_key() -> None:
    translator = Translator(snapshot(SERVICES + SOURCE_VS))

    def table(proxy: Proxy) -> Resource:
        return translator.config_for(proxy).resources(typeurls.ROUTE)["outbound"]

    client_a, client_b = caller("client-0", app="client"), caller("client-1", app="client", x="y")
    other = caller("other-0", app="other")
    assert table(client_a) is table(client_b)  # same key: the same serialized Resource
    assert table(client_a) is not table(other)
    assert table(other) is table(caller("plain-0"))
    assert reviews_routes(unpack(table(client_a), route_pb2.RouteConfiguration)) == ["v2", "v3"]
    assert reviews_routes(unpack(table(other), route_pb2.RouteConfiguration)) == ["v1"]


def test_direct_responses_may_carry_istios_body_size() -> None:
    config = sidecar_routes(snapshot(SERVICES), "default")
    assert config.max_direct_response_body_size_bytes.value == 1024 * 1024


SOURCE_ROUTED = (
    REVIEWS_SERVICE
    + """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {app: web}}]
    route: [{destination: {host: reviews}}]
    timeout: 3s
  - route: [{destination: {host: reviews}}]
"""
)


def test_a_route_memo_keeps_only_routes_that_do_not_depend_on_the_caller() -> None:
    snap = snapshot(SOURCE_ROUTED)
    memo: RouteMemo = {}
    web, other = sidecar("web-0"), sidecar("other-0")
    with_memo = [sidecar_routes(snap, "default", p, memo=memo) for p in (web, other)]
    assert with_memo == [sidecar_routes(snap, "default", p) for p in (web, other)]
    assert with_memo[0] != with_memo[1]  # the web proxy has one route more
    assert memo == {}
    plain = snapshot(REVIEWS_SERVICE + virtual_service("v1", "[mesh]"))
    tables = [sidecar_routes(plain, "default", p, memo=memo) for p in (web, other)]
    assert len(memo) == 1 and tables[0] == tables[1]
