"""model.authz: which AuthorizationPolicies and RequestAuthentications apply to a proxy."""

from __future__ import annotations

from plait.api import Loaded, load_text
from plait.api.security import Action
from plait.model.authz import (
    authorization_policies_for,
    is_targeted,
    request_authentications_for,
    selects_nothing,
)
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind
from plait.model.snapshot import MeshSnapshot, build_snapshot

CONFIG = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 80}]
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
metadata: {name: mesh-deny, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: [TRACE]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-reviews, namespace: istio-system}
spec:
  selector: {matchLabels: {app: reviews}}
  action: AUDIT
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ns-all, namespace: shop}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: v2-only, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews, version: v2}}
  rules: [{to: [{operation: {methods: [GET]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: by-service, namespace: shop}
spec:
  targetRef: {kind: Service, name: reviews}
  action: DENY
  rules: [{to: [{operation: {paths: [/admin]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: by-gateway, namespace: shop}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: web}]
  rules: [{to: [{operation: {methods: [GET]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gw-selector, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: CUSTOM
  provider: {name: ext}
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-ns, namespace: other}
spec:
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: missing-service, namespace: shop}
spec:
  targetRef: {kind: Service, name: nope}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: cross-ns-ref, namespace: shop}
spec:
  targetRef: {kind: Service, name: reviews, namespace: other}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  jwtRules: [{issuer: me, jwks: '{"keys": []}'}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: gw-jwt, namespace: shop}
spec:
  targetRef: {kind: Gateway, name: web}
  jwtRules: [{issuer: gw, jwks: '{"keys": []}'}]
"""


def _snapshot() -> MeshSnapshot:
    result = load_text(CONFIG, "mesh.yaml")
    assert not result.errors, result.errors
    return build_snapshot(result.resources, [], version=1)


def _sidecar(namespace: str = "shop", **labels: str) -> Proxy:
    return Proxy(
        id="p", kind=ProxyKind.SIDECAR, workload="w", namespace=namespace, labels=Labels.of(labels)
    )


GATEWAY = Proxy(
    id="gw",
    kind=ProxyKind.GATEWAY,
    workload="istio-ingressgateway",
    namespace="istio-system",
    labels=Labels.of({"istio": "ingressgateway", "app": "istio-ingressgateway"}),
)


def _names(items: tuple[Loaded, ...]) -> list[str]:
    return [i.resource.metadata.name for i in items]


def test_reviews_v2_gets_mesh_namespace_selector_and_service_policies() -> None:
    got = authorization_policies_for(_snapshot(), _sidecar(app="reviews", version="v2"))
    assert _names(got.deny) == ["mesh-deny", "by-service"]
    assert _names(got.allow) == ["ns-all", "v2-only"]
    assert _names(got.audit) == ["mesh-reviews"]
    assert got.custom == ()
    assert got.of(Action.DENY) == got.deny


def test_selector_must_be_a_subset_of_the_labels() -> None:
    got = authorization_policies_for(_snapshot(), _sidecar(app="reviews", version="v1"))
    assert _names(got.allow) == ["ns-all"]


def test_root_namespace_selector_applies_in_every_namespace() -> None:
    got = authorization_policies_for(_snapshot(), _sidecar("other", app="reviews"))
    assert _names(got.audit) == ["mesh-reviews"]
    assert _names(got.allow) == ["other-ns"]
    # the Service target is in shop: a same-labelled workload elsewhere is not selected
    assert _names(got.deny) == ["mesh-deny"]


def test_unrelated_namespace_gets_only_mesh_wide_policies() -> None:
    got = authorization_policies_for(_snapshot(), _sidecar("empty", app="x"))
    assert _names(got.deny) == ["mesh-deny"]
    assert (got.allow, got.audit, got.custom) == ((), (), ())


def test_gateway_gets_gateway_target_and_selector_policies() -> None:
    got = authorization_policies_for(_snapshot(), GATEWAY)
    assert _names(got.allow) == ["by-gateway"]
    assert _names(got.custom) == ["gw-selector"]
    assert _names(got.deny) == ["mesh-deny"]


def test_gateway_target_does_not_select_sidecars() -> None:
    got = authorization_policies_for(_snapshot(), _sidecar(istio="ingressgateway"))
    assert "by-gateway" not in _names(got.allow)


def test_gateway_api_label_selects_by_gateway_name() -> None:
    gw = Proxy(
        id="g",
        kind=ProxyKind.GATEWAY,
        workload="edge",
        namespace="shop",
        labels=Labels.of({"gateway.networking.k8s.io/gateway-name": "edge"}),
    )
    text = (
        CONFIG
        + """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: edge, namespace: shop}
spec:
  targetRef: {kind: Gateway, name: edge}
  rules: [{}]
"""
    )
    snap = build_snapshot(load_text(text, "m.yaml").resources, [], version=1)
    assert "edge" in _names(authorization_policies_for(snap, gw).allow)
    assert "edge" not in _names(authorization_policies_for(snap, GATEWAY).allow)


def test_request_authentications_by_selector_and_target() -> None:
    snap = _snapshot()
    assert _names(request_authentications_for(snap, _sidecar(app="reviews"))) == ["jwt"]
    assert _names(request_authentications_for(snap, GATEWAY)) == ["gw-jwt"]
    assert request_authentications_for(snap, _sidecar(app="ratings")) == ()


def test_selects_nothing_reports_only_targeted_policies() -> None:
    snap = _snapshot()
    proxies = [_sidecar(app="reviews", version="v1"), GATEWAY]
    by_name = {i.resource.metadata.name: i for i in snap.authorization_policies}
    nothing = sorted(n for n, i in by_name.items() if selects_nothing(snap, i, proxies))
    assert nothing == ["cross-ns-ref", "missing-service", "v2-only"]
    assert not is_targeted(by_name["ns-all"])
    assert is_targeted(by_name["by-service"])
