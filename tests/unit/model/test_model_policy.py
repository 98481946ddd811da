"""DestinationRule choice, merging and the effective policy of one cluster."""

from __future__ import annotations

from plait.api import load_text
from plait.model.policy import choose, merge
from plait.model.snapshot import build_snapshot

HOST = "reviews.default.svc.cluster.local"

SERVICE = """apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}, {name: http-admin, port: 9090}]
"""


def rules(text: str):  # type: ignore[no-untyped-def]
    result = load_text(SERVICE + "---\n" + text, "mesh.yaml")
    assert not [m for m in result.messages if m.severity.value == "error"], result.messages
    return build_snapshot(result.resources, [], 1, result.messages)


def test_seed_example_rules_merge_field_by_field() -> None:
    """The description's three DestinationRules for one host all take effect."""
    snap = rules(
        """apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews-circuit-breaker}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 100}}
    outlierDetection: {consecutive5xxErrors: 5, interval: 30s}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews-retry}
spec:
  host: reviews
  trafficPolicy:
    retryPolicy: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,connect-failure,refused-stream"}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews-timeout}
spec:
  host: reviews
  trafficPolicy:
    timeout: {http: 5s, connectTimeout: 3s}
"""
    )
    hr = snap.host_rules(HOST)
    assert hr is not None and hr.traffic_policy is not None
    tp = hr.traffic_policy
    assert tp.connection_pool is not None and tp.connection_pool.tcp is not None
    assert tp.connection_pool.tcp.max_connections == 100
    assert tp.retry_policy is not None and tp.retry_policy.attempts == 3
    assert tp.timeout is not None and str(tp.timeout.http) == "5s"
    # an extension field is warned about with the standard field to use
    result = load_text(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
        "spec: {host: reviews, trafficPolicy: {timeout: {http: 5s}}}\n",
        "dr.yaml",
    )
    warned = [m for m in result.messages if m.path == "spec.trafficPolicy.timeout"]
    assert warned and "spec.http[].timeout" in warned[0].message


def test_a_field_set_twice_keeps_the_first_and_warns() -> None:
    snap = rules(
        """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
  subsets: [{name: v1, labels: {version: x}}, {name: v2, labels: {version: v2}}]
"""
    )
    hr = snap.host_rules(HOST)
    assert hr is not None and hr.traffic_policy is not None
    assert hr.traffic_policy.load_balancer is not None
    assert hr.traffic_policy.load_balancer.simple == "RANDOM"
    assert [(s.name, s.labels["version"]) for s in hr.subsets] == [("v1", "v1"), ("v2", "v2")]
    paths = {(m.name, m.path) for m in snap.messages if "already" in m.message}
    assert paths == {("b", "spec.trafficPolicy.loadBalancer"), ("b", "spec.subsets[0].name")}


def test_port_and_subset_levels_overlay_whole_fields() -> None:
    snap = rules(
        """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool: {tcp: {maxConnections: 10}, http: {http1MaxPendingRequests: 1}}
    portLevelSettings:
    - port: {number: 9090}
      connectionPool: {tcp: {maxConnections: 2}}
  subsets:
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: LEAST_REQUEST}
"""
    )
    hr = snap.host_rules(HOST)
    assert hr is not None
    base = hr.policy_for(9080)
    assert base is not None and base.connection_pool is not None
    assert base.connection_pool.tcp is not None and base.connection_pool.tcp.max_connections == 10
    admin = hr.policy_for(9090)
    assert admin is not None and admin.connection_pool is not None
    # the port-level connectionPool replaces the whole field: no http settings remain
    assert admin.connection_pool.http is None
    assert admin.connection_pool.tcp is not None and admin.connection_pool.tcp.max_connections == 2
    v2 = hr.policy_for(9080, "v2")
    assert v2 is not None and v2.load_balancer is not None
    assert v2.load_balancer.simple == "LEAST_REQUEST"
    assert v2.connection_pool == base.connection_pool
    assert hr.policy_for(9080, "nope") == base


def test_rules_prefer_the_service_namespace_then_the_root_namespace() -> None:
    result = load_text(
        "\n---\n".join(
            f"apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
            f"metadata: {{name: r, namespace: {ns}}}\n"
            f"spec: {{host: reviews.default.svc.cluster.local}}\n"
            for ns in ("alpha", "istio-system", "default")
        ),
        "drs.yaml",
    )
    items = list(result.resources)
    assert [r.resource.metadata.namespace for r in choose(items, "default")] == ["default"]
    assert [r.resource.metadata.namespace for r in choose(items[:2], "default")] == ["istio-system"]
    assert [r.resource.metadata.namespace for r in choose(items[:1], "default")] == ["alpha"]
    selected = load_text(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: s}\n"
        "spec: {host: reviews, workloadSelector: {matchLabels: {app: x}}}\n",
        "s.yaml",
    )
    assert choose(list(selected.resources), "default") == []
    rules_, msgs = merge(HOST, [])
    assert rules_.traffic_policy is None and not msgs
