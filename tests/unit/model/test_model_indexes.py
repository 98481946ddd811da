"""model.indexes: what build_snapshot indexes, and that the indexes answer as a scan would."""

from __future__ import annotations

import pytest
from test_model_authz import GATEWAY, _sidecar
from test_model_authz import _snapshot as authz_snapshot

from plait.api import load_text
from plait.model.authz import (
    applies_to,
    authorization_policies_for,
    request_authentications_for,
)
from plait.model.indexes import MESH_GATEWAY, gateway_key, gateways_of
from plait.model.labels import Labels
from plait.model.proxy import Proxy
from plait.model.registry import PortMap, ServicePort, WorkloadInstance
from plait.model.snapshot import MeshSnapshot, build_snapshot

ROUTING = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a-mesh, namespace: shop}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b-both, namespace: shop}
spec:
  hosts: [reviews, www.example.com]
  gateways: [web, mesh, web]
  http: [{route: [{destination: {host: reviews}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: c-other-gateway, namespace: shop}
spec:
  hosts: ["*"]
  gateways: [istio-system/public]
  http: [{delegate: {name: d-delegate}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: d-delegate, namespace: shop}
spec:
  http: [{route: [{destination: {host: reviews}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: e-orphan, namespace: shop}
spec:
  http: [{route: [{destination: {host: ratings.shop.svc.cluster.local}}]}]
"""


def _build(text: str) -> MeshSnapshot:
    result = load_text(text, "mesh.yaml")
    assert not result.errors, result.errors
    return build_snapshot(result.resources, [], version=1)


def test_gateway_keys_are_namespaced_except_mesh() -> None:
    assert gateway_key("web", "shop") == "shop/web"
    assert gateway_key("istio-system/public", "shop") == "istio-system/public"
    assert gateway_key(MESH_GATEWAY, "shop") == MESH_GATEWAY


def test_virtual_services_by_gateway_hold_positions_once_each() -> None:
    snap = _build(ROUTING)
    names = [v.resource.metadata.name for v in snap.virtual_services]
    by_gateway = {
        g: [names[i] for i in positions] for g, positions in snap.routing.by_gateway.items()
    }
    assert by_gateway == {
        MESH_GATEWAY: ["a-mesh", "b-both", "d-delegate", "e-orphan"],
        "shop/web": ["b-both"],
        "istio-system/public": ["c-other-gateway"],
    }
    assert snap.routing.bound_to("shop/nope") == ()
    # the index agrees with a scan of every VirtualService
    for gateway, positions in snap.routing.by_gateway.items():
        scanned = [
            i for i, v in enumerate(snap.virtual_services) if gateway in gateways_of(v.resource)
        ]
        assert list(positions) == scanned


def test_mesh_virtual_services_by_resolved_host_first_wins_orphans_included() -> None:
    snap = _build(ROUTING)
    by_host = {h: v.resource.metadata.name for h, v in snap.routing.mesh_by_host.items()}
    assert by_host == {
        "reviews.shop.svc.cluster.local": "a-mesh",  # b-both comes second
        "www.example.com": "b-both",
        "ratings.shop.svc.cluster.local": "e-orphan",  # an orphan, by its destination
    }


def test_virtual_services_by_name() -> None:
    snap = _build(ROUTING)
    found = snap.routing.by_name[("shop", "d-delegate")]
    assert found.resource.metadata.name == "d-delegate"
    assert ("other", "d-delegate") not in snap.routing.by_name


def test_policies_by_namespace_and_selector() -> None:
    snap = authz_snapshot()
    index = snap.policies.authorization

    def names(pairs: tuple[tuple[int, object], ...] | None) -> list[str]:
        items = [snap.authorization_policies[i] for i, _ in pairs or ()]
        return [i.resource.metadata.name for i in items]

    assert names(index.wide.get("istio-system")) == ["mesh-deny"]
    assert names(index.selecting.get("istio-system")) == ["gw-selector", "mesh-reviews"]
    assert names(index.wide.get("shop")) == ["ns-all"]
    assert names(index.selecting.get("shop")) == ["v2-only"]
    assert names(index.targeted) == ["by-gateway", "by-service", "cross-ns-ref", "missing-service"]
    assert names(index.wide.get("other")) == ["other-ns"]


PROXIES = [
    _sidecar(app="reviews", version="v2"),
    _sidecar(app="reviews"),
    _sidecar("other", app="reviews"),
    _sidecar("istio-system", app="reviews"),
    _sidecar("elsewhere"),
    GATEWAY,
]


@pytest.mark.parametrize("proxy", PROXIES, ids=lambda p: f"{p.namespace}:{p.labels}")
def test_indexed_policy_selection_equals_a_scan_of_every_policy(proxy: Proxy) -> None:
    snap = authz_snapshot()
    by_action = authorization_policies_for(snap, proxy)
    indexed = sorted(
        (i for a in ("deny", "allow", "audit", "custom") for i in getattr(by_action, a)),
        key=snap.authorization_policies.index,
    )
    assert indexed == [i for i in snap.authorization_policies if applies_to(snap, i, proxy)]
    assert list(request_authentications_for(snap, proxy)) == [
        i for i in snap.request_authentications if applies_to(snap, i, proxy)
    ]


def test_endpoints_carry_each_service_ports_target_port() -> None:
    """A Kubernetes-shaped PortMap: numeric, named and default target ports per port."""
    text = """
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: grpc, port: 9000, targetPort: grpc-port}
  - {name: admin, port: 9100}
"""
    result = load_text(text, "mesh.yaml")
    assert not result.errors, result.errors

    def pod(name: str, ports: PortMap) -> WorkloadInstance:
        labels = Labels.of({"app": "api"})
        return WorkloadInstance(name, "api", "shop", labels, "api", "10.0.0.1", ports)

    named = pod("api-0", PortMap(named=(("grpc-port", 9090),)))
    unnamed = pod("api-1", PortMap())
    local = pod("api-2", PortMap.all_to(20001))
    snap = build_snapshot(result.resources, [named, unnamed, local], version=1)
    host = "api.shop.svc.cluster.local"

    def ports(port: int) -> dict[str, int]:
        return {e.instance: e.port for e in snap.endpoints_for(host, port)}

    assert ports(80) == {"api-0": 8080, "api-1": 8080, "api-2": 20001}
    assert ports(9000) == {"api-0": 9090, "api-2": 20001}  # api-1 names no grpc-port
    assert ports(9100) == {"api-0": 9100, "api-1": 9100, "api-2": 20001}
    assert PortMap.all_to(7).target(ServicePort("x", 1, target_port="named")) == 7


SELECTING = """
apiVersion: v1
kind: Service
metadata: {name: all-reviews, namespace: shop}
spec: {selector: {app: reviews}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v2, namespace: shop}
spec: {selector: {app: reviews, version: v2}, ports: [{name: grpc, port: 90}]}
---
apiVersion: v1
kind: Service
metadata: {name: no-selector, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: all-reviews, namespace: other}
spec: {selector: {app: reviews}, ports: [{name: http, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: shop}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  workloadSelector: {labels: {app: reviews}}
"""


@pytest.mark.parametrize(
    ("namespace", "labels"),
    [
        ("shop", {"app": "reviews", "version": "v2"}),
        ("shop", {"app": "reviews", "version": "v1"}),
        ("shop", {"version": "v2"}),
        ("other", {"app": "reviews"}),
        ("nowhere", {"app": "reviews"}),
        ("shop", {}),
    ],
)
def test_services_selecting_a_workload_equal_a_scan(namespace: str, labels: dict[str, str]) -> None:
    snap = _build(SELECTING)
    workload = Labels.of(labels)
    found = snap.service_selectors.selecting(namespace, workload)
    scanned = [
        s
        for s in snap.services.values()
        if s.namespace == namespace
        and s.selector
        and not s.external
        and workload.matches(s.selector)
    ]
    assert sorted(s.hostname for s in found) == sorted(s.hostname for s in scanned)
    if labels == {"app": "reviews", "version": "v2"} and namespace == "shop":
        assert len(found) == 2
