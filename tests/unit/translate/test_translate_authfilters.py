"""translate.authfilters: the auth filters and JWKS clusters one proxy gets."""

from __future__ import annotations

from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as rbac_filter_pb2
from translate_kit import snapshot

from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind
from plait.translate.authfilters import rbac_context, security_clusters, security_filters
from plait.translate.jwt import JWT_FILTER
from plait.translate.rbac import RBAC_FILTER

MESH = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 80, targetPort: 9080}, {name: grpc, port: 9090}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  rules: [{to: [{operation: {methods: [GET], ports: ["9080"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules: [{to: [{operation: {paths: [/admin]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: istio-system}
spec:
  selector: {matchLabels: {app: reviews}}
  action: AUDIT
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  jwtRules: [{issuer: me, jwksUri: "https://login.example.com/keys"}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gw, namespace: shop}
spec:
  targetRef: {kind: Gateway, name: web}
  rules: [{to: [{operation: {ports: ["80"]}}]}]
"""

REVIEWS = Proxy(
    id="r",
    kind=ProxyKind.SIDECAR,
    workload="reviews",
    namespace="shop",
    labels=Labels.of({"app": "reviews"}),
    inbound_port=20001,
    app_port=31000,
)
RATINGS = Proxy(
    id="x",
    kind=ProxyKind.SIDECAR,
    workload="ratings",
    namespace="shop",
    labels=Labels.of({"app": "ratings"}),
    inbound_port=20002,
)
GATEWAY = Proxy(
    id="g",
    kind=ProxyKind.GATEWAY,
    workload="istio-ingressgateway",
    namespace="istio-system",
    labels=Labels.of({"istio": "ingressgateway"}),
    gateway_ports=((80, 8080),),
)


def _rbac(f: object) -> rbac_filter_pb2.RBAC:
    config = rbac_filter_pb2.RBAC()
    assert f.typed_config.Unpack(config)  # type: ignore[attr-defined]
    return config


def test_protected_sidecar_gets_jwt_then_audit_deny_allow() -> None:
    filters = security_filters(snapshot(MESH), REVIEWS)
    assert [f.name for f in filters] == [JWT_FILTER, RBAC_FILTER, RBAC_FILTER, RBAC_FILTER]
    actions = [_rbac(f).rules.action for f in filters[1:]]
    assert actions == [rbac_pb2.RBAC.LOG, rbac_pb2.RBAC.DENY, rbac_pb2.RBAC.ALLOW]


def test_unprotected_proxy_gets_nothing() -> None:
    snap = snapshot(MESH)
    assert security_filters(snap, RATINGS) == []
    assert security_clusters(snap, RATINGS) == []


def test_jwks_clusters_for_the_selected_proxy() -> None:
    clusters = security_clusters(snapshot(MESH), REVIEWS)
    assert [c.name for c in clusters] == ["outbound|443||login.example.com"]


def test_sidecar_workload_ports_arrive_at_its_inbound_listener() -> None:
    ctx = rbac_context(snapshot(MESH), REVIEWS)
    assert dict(ctx.ports) == {9080: 20001, 9090: 20001}
    allow = _rbac(security_filters(snapshot(MESH), REVIEWS)[-1])
    (policy,) = allow.rules.policies.values()
    port_rule = policy.permissions[0].and_rules.rules[1]
    assert port_rule.or_rules.rules[0].destination_port == 20001


def test_gateway_server_ports_arrive_at_host_ports() -> None:
    snap = snapshot(MESH)
    assert dict(rbac_context(snap, GATEWAY).ports) == {80: 8080}
    (allow,) = security_filters(snap, GATEWAY)
    (policy,) = _rbac(allow).rules.policies.values()
    assert policy.permissions[0].and_rules.rules[0].or_rules.rules[0].destination_port == 8080


def test_trust_domain_comes_from_mesh_settings() -> None:
    assert rbac_context(snapshot(MESH), REVIEWS).trust_domain == "cluster.local"
