"""build_snapshot: services, endpoints and indexes from config and running instances."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from plait.api import load_text
from plait.errors import ConfigMessage
from plait.model.labels import Labels
from plait.model.registry import (
    Endpoint,
    PortMap,
    Protocol,
    Resolution,
    Service,
    ServicePort,
    WorkloadInstance,
)
from plait.model.snapshot import MeshSnapshot, build_snapshot

REVIEWS = "reviews.default.svc.cluster.local"
HTTP_8080 = ServicePort("http", 8080)

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 8080, targetPort: 9080}
  - {name: grpc-api, port: 9000}
  - {name: tcp-db, port: 5432, appProtocol: mysql}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec:
  selector: {app: ratings}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec:
  ports: [{port: 80}]
"""


def snapshot(
    text: str, instances: Sequence[WorkloadInstance] = (), version: int = 1
) -> MeshSnapshot:
    result = load_text(text, "mesh.yaml")
    assert not result.errors, result.errors
    return build_snapshot(result.resources, instances, version)


def instance(
    name: str, namespace: str = "default", port: int = 20000, **labels: str
) -> WorkloadInstance:
    return WorkloadInstance(
        name=name,
        workload=name.rsplit("-", 1)[0],
        namespace=namespace,
        labels=Labels.of(labels),
        service_account="sa",
        address="127.0.0.1",
        ports=PortMap.all_to(port),
    )


def test_kubernetes_service_becomes_a_service_with_protocols() -> None:
    snap = snapshot(SERVICES)
    assert set(snap.services) == {
        REVIEWS,
        "ratings.shop.svc.cluster.local",
        "headless.default.svc.cluster.local",
    }
    assert snap.service(REVIEWS) == Service(
        hostname=REVIEWS,
        name="reviews",
        namespace="default",
        ports=(
            ServicePort("http", 8080, Protocol.HTTP, 9080),
            ServicePort("grpc-api", 9000, Protocol.GRPC, None),
            ServicePort("tcp-db", 5432, Protocol.TCP, None),
        ),
        selector=Labels.of({"app": "reviews"}),
        resolution=Resolution.REGISTRY,
        external=False,
    )
    # an unnamed port declares no protocol (Istio would sniff it; plait routes it as HTTP)
    assert snap.service("ratings.shop.svc.cluster.local").ports[0].protocol is Protocol.UNKNOWN  # type: ignore[union-attr]


def test_endpoints_are_selected_by_labels_within_the_service_namespace() -> None:
    v1 = instance("reviews-v1-0", port=20001, app="reviews", version="v1")
    v2 = instance("reviews-v2-0", port=20002, app="reviews", version="v2")
    elsewhere = instance("reviews-v1-0", namespace="shop", port=20003, app="reviews")
    other = instance("ratings-0", port=20004, app="ratings")
    snap = snapshot(SERVICES, [v1, v2, elsewhere, other])
    expected = (v1.endpoint(HTTP_8080), v2.endpoint(HTTP_8080))
    assert snap.endpoints_for(REVIEWS, 8080) == expected
    assert snap.endpoints_for(REVIEWS, 9000) == expected  # every port, the same instances
    assert snap.endpoints_for("ratings.shop.svc.cluster.local", 80) == ()
    assert snap.endpoints_for(REVIEWS, 1234) == ()


def test_a_service_without_selector_selects_nothing() -> None:
    snap = snapshot(SERVICES, [instance("any-0", app="reviews")])
    assert snap.endpoints_for("headless.default.svc.cluster.local", 80) == ()


@pytest.mark.parametrize(
    ("host", "namespace", "expected"),
    [
        ("reviews", "default", REVIEWS),
        ("reviews", "shop", "reviews.shop.svc.cluster.local"),  # short names: caller's namespace
        ("reviews.default", "shop", REVIEWS),
        ("reviews.default.svc", "shop", REVIEWS),
        (REVIEWS, "shop", REVIEWS),
        ("ratings.shop", "default", "ratings.shop.svc.cluster.local"),
        ("missing.default", "default", "missing.default"),  # no such service: unchanged
        ("reviews.other.svc", "default", "reviews.other.svc"),
        ("api.example.com", "default", "api.example.com"),
        ("*.example.com", "default", "*.example.com"),
        ("*", "default", "*"),
    ],
)
def test_resolve_host(host: str, namespace: str, expected: str) -> None:
    assert snapshot(SERVICES).resolve_host(host, namespace) == expected


ENTRIES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: shop}
spec:
  hosts: [api.example.com, cdn.example.com]
  resolution: DNS
  ports:
  - {number: 443, name: https, protocol: HTTPS}
  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: internal}
spec:
  hosts: [db.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http}
  - {number: 9000, name: grpc, protocol: GRPC, targetPort: 9100}
  endpoints:
  - {address: 10.0.0.1, ports: {http: 8081}, labels: {version: v1}, weight: 3}
  - {address: 10.0.0.2}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shadow}
spec:
  hosts: [reviews.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 1, name: http}]
  endpoints: [{address: 10.9.9.9}]
"""


def test_service_entry_hosts_become_services() -> None:
    snap = snapshot(ENTRIES)
    api = snap.service("api.example.com")
    assert api == Service(
        hostname="api.example.com",
        name="api.example.com",
        namespace="shop",
        ports=(
            ServicePort("https", 443, Protocol.HTTPS, None),
            ServicePort("http", 80, Protocol.HTTP, 8080),
        ),
        resolution=Resolution.DNS,
        external=True,
    )
    assert snap.service("cdn.example.com") is not None
    assert snap.endpoints_for("api.example.com", 443) == ()  # DNS: resolved by Envoy
    internal = snap.service("db.internal")
    assert internal is not None
    assert (internal.resolution, internal.external) == (Resolution.STATIC, False)
    assert internal.ports[1].protocol is Protocol.GRPC


def test_service_entry_endpoints_take_per_port_numbers_labels_and_weights() -> None:
    snap = snapshot(ENTRIES)
    assert snap.endpoints_for("db.internal", 80) == (
        Endpoint("10.0.0.1", 8081, Labels.of({"version": "v1"}), weight=3),
        Endpoint("10.0.0.2", 80),
    )
    # no per-endpoint number for "grpc": the port's targetPort
    assert [e.port for e in snap.endpoints_for("db.internal", 9000)] == [9100, 9100]


def test_a_kubernetes_service_wins_over_a_service_entry_of_the_same_host() -> None:
    snap = snapshot(SERVICES + "---\n" + ENTRIES)
    reviews = snap.service(REVIEWS)
    assert reviews is not None and reviews.resolution is Resolution.REGISTRY
    assert snap.endpoints_for(REVIEWS, 1) == ()


DRS = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b-reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a-reviews-fqdn}
spec:
  host: reviews.default.svc.cluster.local
  subsets: [{name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings.shop
"""


def test_destination_rules_are_indexed_by_resolved_host_and_merged() -> None:
    snap = snapshot(SERVICES + "---\n" + DRS)
    rules = snap.host_rules(REVIEWS)
    assert rules is not None
    # both default-namespace rules for reviews merge, in name order: a-... then b-...
    assert [r.resource.metadata.name for r in rules.sources] == ["a-reviews-fqdn", "b-reviews"]
    assert [s.name for s in rules.subsets] == ["v2", "v1"]
    shop = snap.host_rules("reviews.shop.svc.cluster.local")  # short host, DR's namespace
    assert shop is not None and shop.sources[0].resource.metadata.namespace == "shop"
    ratings = snap.host_rules("ratings.shop.svc.cluster.local")
    assert ratings is not None and ratings.sources[0].resource.metadata.name == "ratings"
    assert snap.host_rules("api.example.com") is None
    assert [d.resource.metadata.name for d in snap.destination_rules] == [
        "a-reviews-fqdn",
        "b-reviews",
        "ratings",
        "reviews",
    ]


def test_istio_resources_are_ordered_by_namespace_then_name() -> None:
    text = "\n---\n".join(
        f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: [h{i}]
  http: [{{route: [{{destination: {{host: h{i}}}}}]}}]"""
        for i, (ns, name) in enumerate([("shop", "a"), ("default", "z"), ("default", "b")])
    )
    snap = snapshot(text)
    keys = [
        (v.resource.metadata.namespace, v.resource.metadata.name) for v in snap.virtual_services
    ]
    assert keys == [("default", "b"), ("default", "z"), ("shop", "a")]


def test_version_and_messages_are_carried() -> None:
    message = ConfigMessage("f.yaml", 0, "spec", "bad")
    snap = build_snapshot((), (), 7, [message])
    assert snap.version == 7
    assert snap.messages == (message,)
    assert snap.services == {} and snap.endpoints == {}


def test_multi_label_selectors_need_every_pair() -> None:
    text = """
apiVersion: v1
kind: Service
metadata: {name: reviews-v2}
spec:
  selector: {app: reviews, version: v2}
  ports: [{name: http, port: 8080}]
"""
    snap = snapshot(
        text,
        [
            instance("reviews-v1-0", app="reviews", version="v1", port=1),
            instance("reviews-v2-0", app="reviews", version="v2", port=2),
            instance("reviews-v2-1", app="reviews", version="v2", tier="x", port=3),
            instance("other-0", version="v2", port=4),
            instance("reviews-v2-9", namespace="shop", app="reviews", version="v2", port=5),
        ],
    )
    got = snap.endpoints_for("reviews-v2.default.svc.cluster.local", 8080)
    assert [e.instance for e in got] == ["reviews-v2-0", "reviews-v2-1"]


CLUSTER_IP_MESH = """apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: 10.96.0.10
  selector: {app: db}
  ports: [{name: tcp, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec:
  clusterIP: None
  selector: {app: headless}
  ports: [{name: tcp, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
"""


def test_cluster_ips_come_from_the_service_or_the_platform() -> None:
    loaded = load_text(CLUSTER_IP_MESH, "mesh.yaml")
    snap = build_snapshot(loaded.resources, [], 1)
    ips = {h.split(".")[0]: s.cluster_ip for h, s in snap.services.items()}
    assert ips == {"db": "10.96.0.10", "headless": None, "web": None}
    given = {"web.default.svc.cluster.local": "10.140.0.3", "gone.default.svc.cluster.local": "x"}
    snap = build_snapshot(loaded.resources, [], 1, cluster_ips=given)
    assert snap.services["web.default.svc.cluster.local"].cluster_ip == "10.140.0.3"
    assert "gone.default.svc.cluster.local" not in snap.services
