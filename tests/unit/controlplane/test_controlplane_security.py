"""DeploymentAdmission: local mode's answer to "may this identity be this workload"; the
CA's authenticator: local tokens or Kubernetes'."""

from __future__ import annotations

from pathlib import Path

import pytest

from plait.api import Loaded, load_text
from plait.ca import TokenIdentity, TokenIssuer
from plait.controlplane.security import (
    DeploymentAdmission,
    MeshSecurity,
    SecurityOptions,
    workload_check,
)
from plait.model.identity import SpiffeId
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind
from plait.xds.auth import ProxyAdmission

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec:
      serviceAccountName: reviews
      containers: [{name: app, command: [python, app.py]}]
"""
REVIEWS = SpiffeId("cluster.local", "shop", "reviews")


def config(text: str) -> tuple[Loaded, ...]:
    result = load_text(text, "mesh.yaml")
    assert not result.errors, result.errors
    return result.resources


def sidecar(workload: str = "reviews-v1", **labels: str) -> Proxy:
    return Proxy(
        id=f"sidecar~{workload}-0.shop",
        kind=ProxyKind.SIDECAR,
        workload=workload,
        namespace="shop",
        service_account="reviews",
        labels=Labels.of(labels or {"app": "reviews", "version": "v1"}),
    )


def test_a_declared_workload_is_admitted() -> None:
    admission: ProxyAdmission = DeploymentAdmission(lambda: config(DEPLOYMENT))
    assert admission.admit(REVIEWS, sidecar()) is None


def test_another_workloads_labels_or_account_are_refused() -> None:
    admission = workload_check(lambda: config(DEPLOYMENT))
    assert admission.admit(REVIEWS, sidecar(app="reviews", version="v2")) == (
        "labels {'app': 'reviews', 'version': 'v2'} are not Deployment reviews-v1's"
    )
    other = SpiffeId("cluster.local", "shop", "ratings")
    assert admission.admit(other, sidecar()) == (
        "Deployment reviews-v1 runs as reviews, not spiffe://cluster.local/ns/shop/sa/ratings"
    )


def test_an_undeclared_workload_is_refused_until_its_deployment_appears() -> None:
    current: list[tuple[Loaded, ...]] = [()]
    admission = DeploymentAdmission(lambda: current[0])
    refused = admission.admit(REVIEWS, sidecar())
    assert refused == "no Deployment shop/reviews-v1 in the mesh's config"
    current[0] = config(DEPLOYMENT)  # read again for each new stream
    assert admission.admit(REVIEWS, sidecar()) is None


def test_only_the_ingress_gateway_is_admitted_as_a_gateway() -> None:
    admission = DeploymentAdmission(lambda: ())
    gateway = SpiffeId("cluster.local", "istio-system", "istio-ingressgateway")

    def gw(workload: str) -> Proxy:
        return Proxy(id="gw", kind=ProxyKind.GATEWAY, workload=workload, namespace="istio-system")

    assert admission.admit(gateway, gw("istio-ingressgateway")) is None
    assert admission.admit(gateway, gw("egress")) == "unknown gateway"


class _Authenticator:
    async def authenticate(self, token: str) -> TokenIdentity:
        return TokenIdentity("shop", "reviews", "reviews-0")


def test_security_takes_a_kubernetes_authenticator_or_a_token_key_not_both(
    tmp_path: Path,
) -> None:
    auth = _Authenticator()
    security = MeshSecurity(
        SecurityOptions(tmp_path / "ca", authenticator=auth), "cluster.local", "127.0.0.1"
    )
    assert security.server.verifier is auth
    key = tmp_path / "token.pub"
    key.write_bytes(TokenIssuer.generate().public_key_pem)
    for wrong in ({}, {"token_public_key": key, "authenticator": auth}):
        with pytest.raises(ValueError, match="token_public_key or authenticator"):
            SecurityOptions(tmp_path / "ca", **wrong)  # type: ignore[arg-type]
