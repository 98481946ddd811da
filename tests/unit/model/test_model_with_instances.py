"""with_instances, the endpoint-only snapshot: equal to a full build for the new instances,
with only the affected hosts' endpoints recomputed and everything else the same object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace

import pytest

from plait.api import Loaded, load_text
from plait.model.labels import Labels
from plait.model.registry import PortMap, WorkloadInstance
from plait.model.snapshot import MeshSnapshot, build_snapshot, with_instances

MESH = """apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 8080}, {name: grpc, port: 9090, targetPort: 7070}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: team}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms}
spec:
  hosts: [vm.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http}]
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shadow}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http}]
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns}
spec:
  hosts: [external.test]
  resolution: DNS
  ports: [{number: 80, name: http}]
  endpoints: [{address: localhost}]
"""
REVIEWS = "reviews.default.svc.cluster.local"
RATINGS = "ratings.default.svc.cluster.local"
VM = "vm.internal"


def pod(
    name: str, port: int, namespace: str = "default", account: str = "", **labels: str
) -> WorkloadInstance:
    return WorkloadInstance(
        name=name,
        workload=name.rsplit("-", 1)[0],
        namespace=namespace,
        labels=Labels.of(labels),
        service_account=account or labels.get("app", "default"),
        address="127.0.0.1",
        ports=PortMap.all_to(port),
    )


R1 = pod("reviews-v1-0", 20001, app="reviews", version="v1")
R2 = pod("reviews-v2-0", 20002, app="reviews", version="v2")
T1 = pod("ratings-v1-0", 20011, app="ratings")
T2 = pod("ratings-v1-1", 20012, app="ratings")
TEAM = pod("ratings-v1-0", 20021, namespace="team", app="ratings")
V = pod("vm-0", 20031, app="vm")
BASE = (R1, T1, TEAM)


def config() -> list[Loaded]:
    result = load_text(MESH, "mesh.yaml")
    assert not result.errors, [str(m) for m in result.errors]
    return result.resources


def build(instances: Sequence[WorkloadInstance], version: int = 1) -> MeshSnapshot:
    return build_snapshot(config(), instances, version)


CHANGES: list[tuple[str, tuple[WorkloadInstance, ...], set[str]]] = [
    ("nothing", BASE, set()),
    ("a replica joins", (*BASE, T2), {RATINGS}),
    ("a replica leaves", (R1, TEAM), {RATINGS}),
    ("another namespace's replica leaves", (R1, T1), {"ratings.team.svc.cluster.local"}),
    ("a replica moves", (replace(R1, address="127.0.0.2"), T1, TEAM), {REVIEWS}),
    ("a replica is relabelled", (replace(R1, labels=Labels.of({"app": "x"})), T1, TEAM), {REVIEWS}),
    ("a new version", (*BASE, R2), {REVIEWS}),
    ("a workload entry's replica joins", (*BASE, V), {VM}),
]


@pytest.mark.parametrize(("change", "after", "hosts"), CHANGES, ids=[c[0] for c in CHANGES])
def test_equals_a_full_build(
    change: str, after: tuple[WorkloadInstance, ...], hosts: set[str]
) -> None:
    before = build(BASE)
    got, moved = with_instances(before, config(), BASE, after, 2)
    want = build(after, 2)
    assert moved == hosts, change
    assert dict(got.endpoints) == dict(want.endpoints), change
    assert got.version == 2
    assert got.services == want.services
    for f in fields(MeshSnapshot):  # everything but the endpoints is the very same object
        if f.name not in ("version", "endpoints"):
            assert getattr(got, f.name) is getattr(before, f.name), f.name
    for key, eps in got.endpoints.items():  # and so is every endpoint tuple that did not move
        if key[0] not in hosts:
            assert eps is before.endpoints[key], key


def test_a_service_entry_does_not_override_the_kubernetes_service_of_its_host() -> None:
    before = build(BASE)
    got, moved = with_instances(before, config(), BASE, (*BASE, V), 2)
    assert REVIEWS not in moved  # the `shadow` entry selects V, but the Service owns the host
    assert got.endpoints[(REVIEWS, 8080)] is before.endpoints[(REVIEWS, 8080)]


def test_nothing_changed_keeps_the_endpoints_mapping() -> None:
    before = build(BASE)
    got, moved = with_instances(before, config(), BASE, tuple(reversed(BASE)), 2)
    assert moved == frozenset()
    assert got.endpoints is before.endpoints
