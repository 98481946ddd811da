"""Kubernetes admission (plait.controlplane.kubeadmission.PodAdmission): a node is admitted
only as a Pod of its namespace that runs as its certificate's service account, belongs to
the workload it claims and carries the labels it claims."""

from __future__ import annotations

from typing import Any

import pytest

from plait.controlplane.kubeadmission import PodAdmission, pod_name
from plait.model.identity import SpiffeId
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind

POD: dict[str, Any] = {
    "metadata": {
        "name": "web-5d9f-abcde",
        "namespace": "shop",
        "labels": {"app": "web", "version": "v1", "pod-template-hash": "5d9f"},
        "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d9f"}],
    },
    "spec": {"serviceAccountName": "web"},
}
PODS = {("shop", "web-5d9f-abcde"): POD}
WEB = SpiffeId("cluster.local", "shop", "web")


def proxy(
    node: str = "sidecar~10.0.0.9~web-5d9f-abcde.shop~shop.svc.cluster.local", **kw: Any
) -> Proxy:
    fields: dict[str, Any] = {
        "workload": "web",
        "namespace": "shop",
        "labels": Labels.of({"app": "web"}),
    }
    fields.update(kw)
    return Proxy(id=node, kind=ProxyKind.SIDECAR, **fields)


def test_pod_names_from_istio_and_plait_node_ids() -> None:
    assert pod_name(proxy()) == "web-5d9f-abcde"
    assert pod_name(proxy("sidecar~web-5d9f-abcde.shop")) == "web-5d9f-abcde"


def test_the_pod_of_the_account_is_admitted() -> None:
    assert PodAdmission(lambda: PODS).admit(WEB, proxy()) is None


@pytest.mark.parametrize(
    ("identity", "node", "fields", "reason"),
    [
        (SpiffeId("cluster.local", "shop", "other"), None, {}, "runs as web"),
        (WEB, "sidecar~10.0.0.9~nope.shop~shop.svc.cluster.local", {}, "no Pod shop/nope"),
        (WEB, None, {"workload": "db"}, "belongs to web, not db"),
        (WEB, None, {"labels": Labels.of({"app": "db"})}, "labels"),
        (SpiffeId("cluster.local", "other", "web"), None, {}, "namespace"),
    ],
)
def test_anything_else_is_refused(
    identity: SpiffeId, node: str | None, fields: dict[str, Any], reason: str
) -> None:
    p = proxy(node, **fields) if node else proxy(**fields)
    refused = PodAdmission(lambda: PODS).admit(identity, p)
    assert refused is not None and reason in refused
