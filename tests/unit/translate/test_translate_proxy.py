"""Translator: one proxy's full config, shared resources, and what an endpoint change touches."""

from __future__ import annotations

from translate_kit import (
    REVIEWS,
    REVIEWS_SERVICE,
    clusters,
    gateway,
    hcms,
    instance,
    listeners,
    load_assignments,
    routes,
    sidecar,
    snapshot,
)

from plait.translate import typeurls
from plait.translate.proxy import Translator

MESH = (
    REVIEWS_SERVICE
    + """apiVersion: v1
kind: Service
metadata: {name: web, namespace: team}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external}
spec:
  hosts: [api.example.com]
  resolution: DNS
  ports: [{number: 443, name: https, protocol: HTTPS}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway}
spec:
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 8000, name: http-alt, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front}
spec:
  hosts: ["*"]
  gateways: [shop-gateway]
  http: [{route: [{destination: {host: reviews, subset: v2}}]}]
"""
)

V1 = instance("reviews-v1-0", 20001, app="reviews", version="v1")
V2 = instance("reviews-v2-0", 20002, app="reviews", version="v2")


def test_sidecar_config() -> None:
    config = Translator(snapshot(MESH, [V1, V2])).config_for(sidecar("frontend-0"))
    assert sorted(clusters(config)) == [
        "PassthroughCluster",  # egress: ALLOW_ANY
        "inbound|21002||",
        "outbound|443||api.example.com",
        f"outbound|8080|v1|{REVIEWS}",
        f"outbound|8080|v2|{REVIEWS}",
        f"outbound|8080||{REVIEWS}",
        "outbound|80||web.team.svc.cluster.local",
    ]
    eds = load_assignments(config)
    assert sorted(eds) == [  # the DNS cluster carries its own endpoints
        f"outbound|8080|v1|{REVIEWS}",
        f"outbound|8080|v2|{REVIEWS}",
        f"outbound|8080||{REVIEWS}",
        "outbound|80||web.team.svc.cluster.local",
    ]
    ports = {
        name: [
            lb.endpoint.address.socket_address.port_value for lb in cla.endpoints[0].lb_endpoints
        ]
        for name, cla in eds.items()
        if cla.endpoints
    }
    assert ports == {
        f"outbound|8080||{REVIEWS}": [20001, 20002],
        f"outbound|8080|v1|{REVIEWS}": [20001],
        f"outbound|8080|v2|{REVIEWS}": [20002],
    }
    lds = listeners(config)
    assert sorted(lds) == ["virtualInbound", "virtualOutbound"]
    assert lds["virtualOutbound"].address.socket_address.port_value == 21003
    assert lds["virtualInbound"].address.socket_address.port_value == 21001
    assert [h.rds.route_config_name for h in hcms(lds["virtualInbound"])] == [
        "inbound|21002||",  # mTLS chain (PERMISSIVE, the default)
        "inbound|21002||",  # plain-text chain
    ]
    inbound_table = routes(config)["inbound|21002||"]
    assert inbound_table.virtual_hosts[0].routes[0].route.cluster == "inbound|21002||"
    assert sorted(routes(config)) == ["inbound|21002||", "outbound"]


def test_sidecar_without_ports_gets_only_the_shared_resources() -> None:
    proxy = sidecar(inbound_port=None, app_port=None, outbound_port=None)
    config = Translator(snapshot(MESH, [V1])).config_for(proxy)
    assert config.resources(typeurls.LISTENER) == {}
    assert config.resources(typeurls.ROUTE) == {}
    assert "inbound|21002||" not in config.resources(typeurls.CLUSTER)


def test_shared_resources_are_the_same_objects_for_every_proxy() -> None:
    translator = Translator(snapshot(MESH, [V1, V2]))
    a = translator.config_for(sidecar("frontend-0", app_port=1000))
    b = translator.config_for(sidecar("orders-0", app_port=2000))
    for type_url in (typeurls.CLUSTER, typeurls.ENDPOINT):
        for name, resource in a.resources(type_url).items():
            if not name.startswith("inbound|"):
                assert b.resources(type_url)[name] is resource
    assert b.resources(typeurls.ROUTE)["outbound"] is a.resources(typeurls.ROUTE)["outbound"]
    # per-proxy: listeners differ (here the inbound listener's app cluster)
    assert (
        a.resources(typeurls.LISTENER)["virtualInbound"]
        is not (b.resources(typeurls.LISTENER)["virtualInbound"])
    )
    team = translator.config_for(sidecar("web-0", namespace="team"))
    assert team.resources(typeurls.ROUTE)["outbound"] is not a.resources(typeurls.ROUTE)["outbound"]
    assert (
        team.resources(typeurls.ROUTE)["outbound"].body
        != a.resources(typeurls.ROUTE)["outbound"].body
    )
    assert (
        translator.config_for(sidecar("web-1", namespace="team")).resources(typeurls.ROUTE)[
            "outbound"
        ]
        is team.resources(typeurls.ROUTE)["outbound"]
    )


def test_gateway_gets_listeners_and_tables_only_for_mapped_ports() -> None:
    translator = Translator(snapshot(MESH, [V1, V2]))
    config = translator.config_for(gateway((80, 8080)))
    lds = listeners(config)
    assert list(lds) == ["0.0.0.0_80"]
    assert lds["0.0.0.0_80"].address.socket_address.port_value == 8080
    rds = routes(config)
    assert list(rds) == ["http.80"]
    (vhost,) = rds["http.80"].virtual_hosts
    assert list(vhost.domains) == ["*"]
    assert vhost.routes[0].route.cluster == f"outbound|8080|v2|{REVIEWS}"
    assert not any(n.startswith("inbound|") for n in clusters(config))
    both = translator.config_for(gateway((80, 8080), (8000, 8001)))
    assert sorted(listeners(both)) == ["0.0.0.0_80", "0.0.0.0_8000"]
    assert sorted(routes(both)) == ["http.80", "http.8000"]
    assert both.resources(typeurls.ROUTE)["http.80"] is config.resources(typeurls.ROUTE)["http.80"]


def test_an_endpoint_only_change_changes_only_the_eds_version() -> None:
    proxy = sidecar("frontend-0")
    before = Translator(snapshot(MESH, [V1], version=1)).config_for(proxy)
    after = Translator(snapshot(MESH, [V1, V2], version=2)).config_for(proxy)
    changed = {t for t in typeurls.PUSH_ORDER if before.version(t) != after.version(t)}
    assert changed == {typeurls.ENDPOINT}
    gw_before = Translator(snapshot(MESH, [V1])).config_for(gateway((80, 8080)))
    gw_after = Translator(snapshot(MESH, [V1, V2])).config_for(gateway((80, 8080)))
    assert {t for t in typeurls.PUSH_ORDER if gw_before.version(t) != gw_after.version(t)} == {
        typeurls.ENDPOINT
    }


def test_same_snapshot_content_gives_the_same_versions() -> None:
    a = Translator(snapshot(MESH, [V1, V2], version=1)).config_for(sidecar())
    b = Translator(snapshot(MESH, [V2, V1], version=9)).config_for(sidecar())
    assert a.versions == b.versions


def test_a_route_change_changes_only_the_rds_version() -> None:
    vs = """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
"""
    before = Translator(snapshot(MESH, [V1])).config_for(sidecar())
    after = Translator(snapshot(MESH + vs, [V1])).config_for(sidecar())
    changed = {t for t in typeurls.PUSH_ORDER if before.version(t) != after.version(t)}
    assert changed == {typeurls.ROUTE}
