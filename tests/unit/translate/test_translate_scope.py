"""Scoped sidecars (Sidecar, exportTo): a proxy gets the clusters, endpoint sets and
virtual hosts of what it reaches, its Sidecar's outbound traffic policy, and nothing new
when something outside its scope changes."""

from __future__ import annotations

from dataclasses import replace

from envoy.config.route.v3 import route_pb2
from translate_kit import clusters, instance, listeners, routes, sidecar, snapshot

from plait.api import load_text
from plait.model.labels import Labels
from plait.model.proxy import Proxy, Traffic
from plait.model.snapshot import build_snapshot, with_instances
from plait.translate import egress, typeurls
from plait.translate.proxy import Translator


def service(name: str, ns: str = "default") -> str:
    return f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 8080}}]
"""


def routing(host: str, weight: int) -> str:
    return f"""---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {host}}}
spec:
  host: {host}
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {host}}}
spec:
  hosts: [{host}]
  http:
    - route:
        - {{destination: {{host: {host}, subset: v1}}, weight: {weight}}}
        - {{destination: {{host: {host}, subset: v2}}, weight: {100 - weight}}}
"""


SCOPED = """---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: default}
spec:
  workloadSelector: {labels: {app: web}}
  egress:
  - hosts: ["./reviews.default.svc.cluster.local", "./ratings.default.svc.cluster.local"]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""
SERVICES = "".join(service(n) for n in ("reviews", "ratings", "details", "web"))
BASE = SERVICES + routing("reviews", 90) + routing("details", 90) + SCOPED
INSTANCES = (
    instance("reviews-v1-0", 20001, app="reviews", version="v1"),
    instance("details-v1-0", 20011, app="details", version="v1"),
)
WEB = sidecar("web-0")
OTHER = sidecar("productpage-0")


def host_of(cluster: str) -> str:
    return cluster.split("|")[-1]


def vhosts(table: route_pb2.RouteConfiguration) -> set[str]:
    return {v.name for v in table.virtual_hosts}


def test_a_scoped_proxy_holds_only_what_it_reaches() -> None:
    translator = Translator(snapshot(BASE, INSTANCES))
    config = translator.config_for(WEB)
    outbound = {n for n in clusters(config) if n.startswith("outbound|")}
    assert {host_of(n) for n in outbound} == {
        "reviews.default.svc.cluster.local",
        "ratings.default.svc.cluster.local",
    }
    assert "outbound|8080|v1|reviews.default.svc.cluster.local" in outbound
    assert egress.PASSTHROUGH_CLUSTER in clusters(config)
    assert set(config.resources(typeurls.ENDPOINT)) <= outbound
    table = routes(config)["outbound"]
    assert vhosts(table) == {
        "reviews.default.svc.cluster.local:8080",
        "ratings.default.svc.cluster.local:8080",
        egress.BLOCK_ALL_ROUTE,  # the Sidecar's REGISTRY_ONLY
    }
    # a proxy without a Sidecar still sees the whole mesh and the mesh's ALLOW_ANY
    other = translator.config_for(OTHER)
    assert {host_of(n) for n in clusters(other) if n.startswith("outbound|")} >= {
        "details.default.svc.cluster.local",
        "web.default.svc.cluster.local",
    }
    assert egress.ALLOW_ANY_ROUTE in vhosts(routes(other)["outbound"])


def test_proxies_under_one_sidecar_share_their_resources() -> None:
    translator = Translator(snapshot(BASE, INSTANCES))
    one, two = translator.config_for(WEB), translator.config_for(sidecar("web-1"))
    for type_url in (typeurls.CLUSTER, typeurls.ENDPOINT):
        shared = [n for n in one.resources(type_url) if n.startswith("outbound|")]
        assert shared
        assert all(one.resources(type_url)[n] is two.resources(type_url)[n] for n in shared)
    assert one.resources(typeurls.ROUTE)["outbound"] is two.resources(typeurls.ROUTE)["outbound"]


def changed_versions(text: str, instances: tuple[object, ...], proxy: Proxy) -> set[str]:
    """The xDS types whose version changes for `proxy` between BASE and `text`, with the
    second Translator built from the first (as a publish does); checked against a fresh
    translation of the new snapshot."""
    before = Translator(snapshot(BASE, INSTANCES))
    old = before.config_for(proxy)
    new_snapshot = snapshot(text, instances, 2)  # type: ignore[arg-type]
    after = Translator(new_snapshot, previous=before)
    new = after.config_for(proxy)
    fresh = Translator(new_snapshot).config_for(proxy)
    assert new.versions == fresh.versions
    return {t for t in new.versions if new.versions[t] != old.versions[t]}


def test_changes_outside_the_scope_leave_it_untouched() -> None:
    vs_edit = BASE.replace(routing("details", 90), routing("details", 50))
    assert changed_versions(vs_edit, INSTANCES, WEB) == set()
    assert changed_versions(vs_edit, INSTANCES, OTHER) == {typeurls.ROUTE}
    joined = (*INSTANCES, instance("details-v2-0", 20012, app="details", version="v2"))
    assert changed_versions(BASE, joined, WEB) == set()
    assert changed_versions(BASE, joined, OTHER) == {typeurls.ENDPOINT}
    added = BASE + service("payments")
    assert changed_versions(added, INSTANCES, WEB) == set()
    assert typeurls.CLUSTER in changed_versions(added, INSTANCES, OTHER)


def test_changes_inside_the_scope_reach_it() -> None:
    vs_edit = BASE.replace(routing("reviews", 90), routing("reviews", 50))
    assert changed_versions(vs_edit, INSTANCES, WEB) == {typeurls.ROUTE}
    joined = (*INSTANCES, instance("reviews-v2-0", 20002, app="reviews", version="v2"))
    assert changed_versions(BASE, joined, WEB) == {typeurls.ENDPOINT}
    widened = BASE.replace('"./ratings.default.svc.cluster.local"', '"./*"')
    assert changed_versions(widened, INSTANCES, WEB) >= {typeurls.CLUSTER, typeurls.ROUTE}


def test_a_destination_rule_applies_where_it_is_exported() -> None:
    text = (
        service("reviews", "shop")
        + service("web", "shop")
        + service("web", "other")
        + """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews.shop.svc.cluster.local
  exportTo: ["."]
  subsets: [{name: v1, labels: {version: v1}}]
"""
    )
    translator = Translator(snapshot(text))
    subset = "outbound|8080|v1|reviews.shop.svc.cluster.local"
    assert subset in clusters(translator.config_for(sidecar("web-0", namespace="shop")))
    in_other = clusters(translator.config_for(sidecar("web-0", namespace="other")))
    assert "outbound|8080||reviews.shop.svc.cluster.local" in in_other
    assert subset not in in_other


def test_a_selector_sidecar_applies_only_to_the_workloads_it_selects() -> None:
    translator = Translator(snapshot(BASE, INSTANCES))
    labelled = sidecar("api-0")
    web_like = Proxy(**{**labelled.__dict__, "labels": Labels.of({"app": "web", "v": "2"})})
    assert translator.scope_of(web_like) is not None
    assert translator.scope_of(web_like).sidecar == ("default", "web")  # type: ignore[union-attr]
    assert translator.scope_of(labelled).sidecar is None  # type: ignore[union-attr]


def test_a_scoped_captured_sidecar_listens_only_for_its_services() -> None:
    mesh = service("reviews") + service("details") + service("web") + SCOPED
    mesh = mesh.replace(
        '"./ratings.default.svc.cluster.local"', '"./web.default.svc.cluster.local"'
    )
    ips = {
        "reviews.default.svc.cluster.local": "10.200.1.1",
        "details.default.svc.cluster.local": "10.200.1.2",
        "web.default.svc.cluster.local": "10.200.1.3",
    }
    loaded = load_text(mesh, "mesh.yaml")
    snap = build_snapshot(loaded.resources, INSTANCES, 1, cluster_ips=ips)
    captured = replace(
        sidecar("web-0", inbound_port=None, outbound_port=None, app_port=32000),
        address="10.100.0.2",
        traffic=Traffic.CAPTURED,
    )
    lds = listeners(Translator(snap).config_for(captured))
    chain = lds["0.0.0.0_8080"].filter_chains[0]
    assert sorted(r.address_prefix for r in chain.filter_chain_match.prefix_ranges) == [
        "10.200.1.1",
        "10.200.1.3",
    ]
    # REGISTRY_ONLY: what the scope does not reach goes to the black hole
    default = lds["virtualOutbound"].default_filter_chain
    assert default.name == "BlackHoleFilterChain"


def test_a_chain_of_changes_equals_fresh_translations() -> None:
    """Each Translator takes over from the previous one (scopes, tables, clusters kept by
    what changed); every step equals a translation from scratch, for every proxy."""
    steps = [
        (BASE.replace(routing("details", 90), routing("details", 50)), INSTANCES),
        (BASE.replace(routing("details", 90), routing("details", 50)), INSTANCES[:1]),
        (BASE.replace(routing("reviews", 90), routing("reviews", 60)), INSTANCES[:1]),
        (
            BASE.replace(routing("reviews", 90), routing("reviews", 60)),
            (*INSTANCES, instance("reviews-v2-0", 20002, app="reviews", version="v2")),
        ),
        (
            BASE.replace(
                '"./ratings.default.svc.cluster.local"', '"./details.default.svc.cluster.local"'
            ),
            INSTANCES,
        ),
        (BASE, INSTANCES),
    ]
    proxies = (WEB, sidecar("web-1"), OTHER)
    previous = Translator(snapshot(BASE, INSTANCES))
    for proxy in proxies:
        previous.config_for(proxy)
    for version, (text, instances) in enumerate(steps, start=2):
        new = snapshot(text, instances, version)
        after, fresh = Translator(new, previous=previous), Translator(new)
        for proxy in proxies:
            got, want = after.config_for(proxy), fresh.config_for(proxy)
            assert got.versions == want.versions, (version, proxy.id)
            assert {(t, n): r.body for t, by in got.by_type.items() for n, r in by.items()} == {
                (t, n): r.body for t, by in want.by_type.items() for n, r in by.items()
            }
        previous = after


def test_endpoint_only_changes_in_a_scoped_mesh_equal_fresh_translations() -> None:
    """The endpoint fast path (`with_instances`) in a mesh with Sidecars: replicas come
    and go, and every proxy's config, scoped or not, equals a translation from scratch."""
    resources = load_text(BASE, "mesh.yaml").resources
    extra = instance("reviews-v1-1", 20003, app="reviews", version="v1")
    steps = [INSTANCES[:1], INSTANCES, (*INSTANCES, extra), INSTANCES]
    proxies = (WEB, sidecar("web-1"), OTHER)
    before = snapshot(BASE, INSTANCES)
    previous = Translator(before)
    for proxy in proxies:
        previous.config_for(proxy)
    current = INSTANCES
    for version, instances in enumerate(steps, start=2):
        new, _ = with_instances(before, resources, current, instances, version)
        after, fresh = Translator(new, previous=previous), Translator(new)
        for proxy in proxies:
            got, want = after.config_for(proxy), fresh.config_for(proxy)
            assert got.versions == want.versions, (version, proxy.id)
            assert {(t, n): r.body for t, by in got.by_type.items() for n, r in by.items()} == {
                (t, n): r.body for t, by in want.by_type.items() for n, r in by.items()
            }
        before, previous, current = new, after, instances
