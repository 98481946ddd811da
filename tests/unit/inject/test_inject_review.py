"""The admission decision (AdmissionReview v1 in, JSONPatch out) and the
MutatingWebhookConfiguration's selectors."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from plait.inject import (
    InjectSettings,
    WebhookEndpoint,
    WebhookPolicy,
    inject,
    review,
    webhook_configuration,
)

SETTINGS = InjectSettings()
POLICY = WebhookPolicy()


def admission(
    pod: dict[str, Any], namespace: str = "shop", operation: str = "CREATE"
) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": namespace,
            "operation": operation,
            "object": pod,
        },
    }


def a_pod(**annotations: str) -> dict[str, Any]:
    return {
        "metadata": {"generateName": "web-5d-", "labels": {"app": "web"}, **(
            {"annotations": annotations} if annotations else {})},
        "spec": {"containers": [{"name": "web", "image": "web:1"}]},
    }  # fmt: skip


def apply_patch(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 `add` on object members: the only operation the injector emits."""
    out = copy.deepcopy(doc)
    for op in ops:
        assert op["op"] == "add"
        *parents, last = op["path"].strip("/").split("/")
        target = out
        for key in parents:
            target = target[key]
        target[last] = op["value"]
    return out


def test_the_patch_turns_the_pod_into_the_injected_pod() -> None:
    pod = a_pod()
    answer = review(admission(pod), SETTINGS, POLICY)
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert response["allowed"] is True and response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    assert apply_patch(pod, ops) == inject(pod, SETTINGS)
    assert {op["path"] for op in ops} == {
        "/metadata/labels", "/metadata/annotations", "/spec/initContainers", "/spec/volumes"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("pod", "namespace", "operation"),
    [
        (a_pod(**{"sidecar.istio.io/inject": "false"}), "shop", "CREATE"),
        (a_pod(), "istio-system", "CREATE"),
        (a_pod(), "shop", "UPDATE"),
        (inject(a_pod(), SETTINGS), "shop", "CREATE"),
    ],
    ids=["annotated-false", "control-plane-namespace", "update", "already-injected"],
)
def test_allowed_without_a_patch(pod: dict[str, Any], namespace: str, operation: str) -> None:
    response = review(admission(pod, namespace, operation), SETTINGS, POLICY)["response"]
    assert response == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}


def test_a_malformed_annotation_refuses_the_pod_naming_it() -> None:
    pod = a_pod(**{"sidecar.istio.io/proxyMemory": "much"})
    response = review(admission(pod), SETTINGS, POLICY)["response"]
    assert response["allowed"] is False and response["status"]["code"] == 400
    assert "sidecar.istio.io/proxyMemory" in response["status"]["message"]


@pytest.mark.parametrize(
    "body",
    [{}, {"apiVersion": "admission.k8s.io/v1beta1", "request": {"uid": "x"}},
     {"apiVersion": "admission.k8s.io/v1", "request": {}}, []],
)  # fmt: skip
def test_not_a_v1_review_is_a_value_error(body: Any) -> None:
    with pytest.raises(ValueError):
        review(body, SETTINGS, POLICY)


def test_configuration_webhooks_select_each_label_once() -> None:
    config = webhook_configuration(WebhookEndpoint(url="https://127.0.0.1:9443"), b"PEM")
    hooks = config["webhooks"]
    assert [h["name"] for h in hooks] == [
        "namespace.sidecar-injector.plait.dev",
        "rev.namespace.sidecar-injector.plait.dev",
        "plait.namespace.sidecar-injector.plait.dev",
        "object.sidecar-injector.plait.dev",
    ]
    for hook in hooks:
        assert hook["clientConfig"] == {
            "caBundle": base64.b64encode(b"PEM").decode(),
            "url": "https://127.0.0.1:9443/inject",
        }
        assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
        excluded = hook["namespaceSelector"]["matchExpressions"][-1]
        assert excluded == {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                            "values": ["istio-system", "kube-system"]}  # fmt: skip
    assert hooks[0]["namespaceSelector"]["matchExpressions"][0] == {
        "key": "istio-injection", "operator": "In", "values": ["enabled"]}  # fmt: skip
    assert hooks[3]["objectSelector"]["matchExpressions"] == [
        {"key": "sidecar.istio.io/inject", "operator": "In", "values": ["true"]}]  # fmt: skip


def test_configuration_by_service() -> None:
    endpoint = WebhookEndpoint(service=("istio-system", "plaitd", 443))
    config = webhook_configuration(endpoint, b"PEM", failure_policy="Ignore")
    hook = config["webhooks"][0]
    assert hook["clientConfig"]["service"] == {
        "namespace": "istio-system", "name": "plaitd", "port": 443, "path": "/inject"}  # fmt: skip
    assert hook["failurePolicy"] == "Ignore"


def test_a_malformed_pod_or_kind_in_a_review_is_not_a_crash() -> None:
    body = admission({"spec": {"containers": "web"}})
    response = review(body, SETTINGS, POLICY)["response"]
    assert response["allowed"] is False and "spec.containers" in response["status"]["message"]
    body["request"]["kind"] = "Pod"  # not the GroupVersionKind object
    assert review(body, SETTINGS, POLICY)["response"] == {"uid": body["request"]["uid"],
                                                          "allowed": True}  # fmt: skip
