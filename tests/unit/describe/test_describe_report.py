"""`plait.describe`: every section on the shop and on small configs, and request routing
evaluated on the caller's Envoy route table (canary header, weighted split, sourceLabels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plait.analysis import vet
from plait.api import Loaded
from plait.describe import RouteQuery, UnknownCaller, describe, find_service, service_names
from plait.model.snapshot import MeshSnapshot, build_snapshot
from plait.sources.directory import DirectorySource

SHOP = Path(__file__).resolve().parents[3] / "examples" / "shop"

BASE = """apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 8080, targetPort: 9080}, {name: tcp-db, port: 5432}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1}
spec:
  replicas: 2
  selector: {matchLabels: {app: reviews, version: v1}}
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec:
      serviceAccountName: reviews
      containers: [{name: app, command: [x]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v2}
spec:
  selector: {matchLabels: {app: reviews, version: v2}}
  template:
    metadata:
      labels: {app: reviews, version: v2}
      annotations: {sidecar.istio.io/inject: "false"}
    spec:
      containers: [{name: app, command: [x]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: tester}
spec:
  selector: {matchLabels: {app: tester}}
  template:
    metadata: {labels: {app: tester, role: qa}}
    spec:
      containers: [{name: app, command: [x]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    outlierDetection: {consecutive5xxErrors: 3}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      tls: {mode: DISABLE}
"""

CANARY = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {canary: {exact: "true"}}, uri: {prefix: /reviews}}]
    route: [{destination: {host: reviews, subset: v2}}]
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms}
  - match: [{sourceLabels: {role: qa}}]
    route: [{destination: {host: reviews, subset: v2}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 10}}}
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
    mirror: {host: reviews, subset: v2}
"""

SECOND_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: zz-reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
"""

SECURITY = """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: reviews}
spec:
  selector: {matchLabels: {app: reviews}}
  mtls: {mode: UNSET}
  portLevelMtls: {"9080": {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-v2}
spec:
  selector: {matchLabels: {version: v2}}
  action: DENY
  rules: [{to: [{operation: {methods: [DELETE]}}]}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt}
spec:
  selector: {matchLabels: {app: reviews}}
  jwtRules: [{issuer: "https://issuer.example", jwksUri: "https://issuer.example/jwks"}]
---
apiVersion: policy.plait.dev/v1alpha1
kind: RateLimit
metadata: {name: reviews-limit}
spec:
  targetRef: {kind: Service, name: reviews}
  limits: [{requests: 100, unit: minute}]
"""


def load(tmp_path: Path, *docs: str) -> tuple[MeshSnapshot, list[Loaded]]:
    for i, doc in enumerate(docs):
        (tmp_path / f"{i}.yaml").write_text(doc)
    return load_dir(tmp_path)


def load_dir(directory: Path) -> tuple[MeshSnapshot, list[Loaded]]:
    view = DirectorySource(directory, check=vet).load()
    return build_snapshot(view.resources, (), 0, view.messages), list(view.resources)


def run(snapshot: MeshSnapshot, config: list[Loaded], name: str, **query: Any) -> dict[str, Any]:
    service = find_service(snapshot, name)
    assert service is not None, name
    return describe(snapshot, config, service, RouteQuery(**query) if query else None)


def test_service_lookup_by_short_namespaced_and_full_names(tmp_path: Path) -> None:
    snapshot, _ = load(tmp_path, BASE)
    full = "reviews.default.svc.cluster.local"
    for name in ("reviews", "reviews.default", "reviews.default.svc", full):
        found = find_service(snapshot, name)
        assert found is not None and found.hostname == full
    assert find_service(snapshot, "nope") is None
    assert service_names(snapshot) == ["reviews.default"]


def test_service_section_ports_workloads_identities(tmp_path: Path) -> None:
    snapshot, config = load(tmp_path, BASE)
    s = run(snapshot, config, "reviews")["service"]
    assert [(p["port"], p["protocol"]) for p in s["ports"]] == [(8080, "HTTP"), (5432, "TCP")]
    assert s["selector"] == {"app": "reviews"}
    by_name = {w["name"]: w for w in s["workloads"]}
    assert set(by_name) == {"reviews-v1", "reviews-v2"}  # tester is not selected
    assert by_name["reviews-v1"]["replicas"] == 2 and by_name["reviews-v1"]["sidecar"]
    assert not by_name["reviews-v2"]["sidecar"]
    assert s["identities"] == [
        "spiffe://cluster.local/ns/default/sa/default",
        "spiffe://cluster.local/ns/default/sa/reviews",
    ]


def test_virtual_services_rules_in_one_line_and_the_winner(tmp_path: Path) -> None:
    snapshot, config = load(tmp_path, BASE, CANARY, SECOND_VS)
    data = run(snapshot, config, "reviews")
    first, second = data["virtualServices"]
    assert first["name"] == "default/reviews" and first["activeForMesh"]
    assert second["name"] == "default/zz-reviews" and second["role"] == "shadowed"
    assert first["rules"][0] == (
        "uri^/reviews canary=true → reviews (v2); timeout 2s; retries 3 per try 500ms"
    )
    assert first["rules"][1] == "source role=qa → reviews (v2); fault abort 503"
    assert first["rules"][2] == "any → reviews (v1) 90%, reviews (v2) 10%; mirror reviews (v2)"
    conflict = [m for m in data["messages"] if m["name"] == "zz-reviews"]
    assert conflict and "only its rules apply" in conflict[0]["message"]


def test_destination_rule_effective_policy_per_subset(tmp_path: Path) -> None:
    snapshot, config = load(tmp_path, BASE)
    dr = run(snapshot, config, "reviews")["destinationRules"]
    assert [r["name"] for r in dr["rules"]] == ["default/reviews"]
    by_cluster = {c["cluster"]: c for c in dr["clusters"]}
    v1 = by_cluster["outbound|8080|v1|reviews.default.svc.cluster.local"]
    v2 = by_cluster["outbound|8080|v2|reviews.default.svc.cluster.local"]
    assert v1["labels"] == {"version": "v1"}
    assert v1["policy"]["loadBalancer"] == {"simple": "LEAST_REQUEST"}
    assert v1["policy"]["outlierDetection"] == {"consecutive5xxErrors": 3}
    assert v1["tls"].startswith("auto")
    assert v2["tls"] == "DISABLE"
    assert len(dr["clusters"]) == 6  # 2 ports x (no subset, v1, v2)


def test_security_section_modes_policies_limits(tmp_path: Path) -> None:
    snapshot, config = load(tmp_path, BASE, SECURITY)
    sec = {s["workload"]: s for s in run(snapshot, config, "reviews")["security"]}
    v1, v2 = sec["default/reviews-v1"], sec["default/reviews-v2"]
    pa = v1["peerAuthentication"]
    assert pa["workload"] == {
        "mode": "STRICT",
        "policy": "istio-system/default",
        "field": "spec.mtls.mode",
    }
    assert pa["ports"]["9080"]["mode"] == "PERMISSIVE"
    assert pa["ports"]["9080"]["policy"] == "default/reviews"
    assert pa["ports"]["5432"]["mode"] == "STRICT"
    assert v1["authorization"]["DENY"] == [] and v2["authorization"]["DENY"] == ["default/deny-v2"]
    assert v1["requestAuthentication"] == ["default/jwt"]
    assert v1["rateLimits"][0]["rateLimit"] == "default/reviews-limit"
    assert v1["rateLimits"][0]["requests"] == 100 and v1["rateLimits"][0]["per"] == "minute"


def test_route_canary_header_goes_to_v2(tmp_path: Path) -> None:
    snapshot, config = load(tmp_path, BASE, CANARY)
    r = run(snapshot, config, "reviews", path="/reviews/1", headers={"canary": "true"})["route"]
    assert r["method"] == "envoy-route-table"
    assert r["route"] == "default/reviews/http[0]/match[0]"
    assert r["clusters"] == [
        {"cluster": "outbound|8080|v2|reviews.default.svc.cluster.local", "weight": 100}
    ]


def test_route_without_header_takes_the_weighted_split(tmp_path: Path) -> None:
    snapshot, config = load(tmp_path, BASE, CANARY)
    for query in ({"path": "/reviews/1"}, {"path": "/other", "headers": {"canary": "true"}}):
        r = run(snapshot, config, "reviews", **query)["route"]
        assert r["route"] == "default/reviews/http[2]/match[0]"
        assert r["clusters"] == [
            {"cluster": "outbound|8080|v1|reviews.default.svc.cluster.local", "weight": 90},
            {"cluster": "outbound|8080|v2|reviews.default.svc.cluster.local", "weight": 10},
        ]


def test_route_source_labels_depend_on_the_caller(tmp_path: Path) -> None:
    snapshot, config = load(tmp_path, BASE, CANARY)
    r = run(snapshot, config, "reviews", path="/", caller="tester")["route"]
    assert r["caller"] == "default/tester"
    assert r["route"] == "default/reviews/http[1]/match[0]"
    with pytest.raises(UnknownCaller, match="known: default/reviews-v1"):
        run(snapshot, config, "reviews", caller="ghost")


def test_route_on_tcp_port_and_no_match(tmp_path: Path) -> None:
    snapshot, config = load(tmp_path, BASE, CANARY)
    assert "no HTTP port" in run(snapshot, config, "reviews", port=5432)["route"]["note"]
    exact = CANARY.replace(
        "  - route:\n    - {destination",
        "  - match: [{uri: {exact: /x}}]\n    route:\n    - {destination",
    )
    snapshot, config = load(tmp_path, BASE, exact)
    r = run(snapshot, config, "reviews", path="/y")["route"]
    assert r["route"] is None and r["clusters"] == []
    assert run(snapshot, config, "reviews", path="/x?q=1")["route"]["clusters"][0]["weight"] == 90


def test_shop_reviews_with_security(tmp_path: Path) -> None:
    snapshot, config = load_dir(SHOP)
    data = run(snapshot, config, "reviews", caller="frontend", path="/reviews/1")
    assert {w["name"] for w in data["service"]["workloads"]} == {"reviews-v1", "reviews-v2"}
    mesh = [v for v in data["virtualServices"] if v["activeForMesh"]]
    assert [v["name"] for v in mesh] == ["default/reviews"]
    for s in data["security"]:
        assert s["peerAuthentication"]["ports"]["8080"]["mode"] == "STRICT"
        assert s["authorization"]["ALLOW"] == ["default/reviews", "istio-system/allow-nothing"]
    assert data["route"]["clusters"] == [
        {"cluster": "outbound|8080|v1|reviews.default.svc.cluster.local", "weight": 100}
    ]
    recs = run(snapshot, config, "recommendations")
    assert recs["service"]["ports"][0]["protocol"] == "GRPC"
    assert recs["virtualServices"] == [] or all(
        not v["activeForMesh"] for v in recs["virtualServices"]
    )


def test_route_from_a_caller_outside_whose_scope_the_service_is(tmp_path: Path) -> None:
    sidecar = """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: tester}
spec:
  workloadSelector: {labels: {app: tester}}
  egress: [{hosts: ["istio-system/*"]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""
    snapshot, config = load(tmp_path, BASE, CANARY, sidecar)
    r = run(snapshot, config, "reviews", path="/", caller="tester")["route"]
    assert "caller's scope" in r["note"] and "REGISTRY_ONLY" in r["note"]
    other = run(snapshot, config, "reviews", path="/", caller="reviews-v1")["route"]
    assert other["clusters"]  # a caller without a Sidecar still routes
