"""The admission decision, pure: an AdmissionReview v1 request for a Pod in, the
AdmissionReview response out (a JSONPatch when the pod is injected).

https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/
- the response echoes the request's `uid`; `patchType: JSONPatch` with the patch base64;
- the MutatingWebhookConfiguration's namespaceSelector and objectSelector already chose
  the namespaces (see `webhookconfig`); this layer checks again what a selector cannot:
  the control plane's own namespace, and the pod's annotation;
- a pod that cannot be injected as asked (a malformed sidecar annotation) is refused with
  HTTP-like code 400 and the message naming the annotation; anything else is allowed.

The patch replaces whole top-level members (labels, annotations, initContainers,
volumes): RFC 6902 `add` on an existing member replaces it, and the API server applies
the patch to the very object it sent, so there is nothing to merge.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plait.errors import InjectionError
from plait.inject.pod import inject
from plait.inject.settings import InjectSettings

PATCHED = (
    ("metadata", "labels"),
    ("metadata", "annotations"),
    ("spec", "initContainers"),
    ("spec", "containers"),
    ("spec", "volumes"),
)


@dataclass(frozen=True)
class WebhookPolicy:
    """Namespaces never injected, whatever their labels (the control plane's own)."""

    excluded_namespaces: frozenset[str] = frozenset({"istio-system", "kube-system"})


def json_patch(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """RFC 6902 operations that turn `before` into `after` on the members inject touches."""
    ops: list[dict[str, Any]] = []
    for parent, member in PATCHED:
        old = (before.get(parent) or {}).get(member)
        new = (after.get(parent) or {}).get(member)
        if new != old:
            if parent not in before:
                ops.append({"op": "add", "path": f"/{parent}", "value": {}})
            ops.append({"op": "add", "path": f"/{parent}/{member}", "value": new})
    return ops


def review(
    body: Mapping[str, Any], settings: InjectSettings, policy: WebhookPolicy
) -> dict[str, Any]:
    """The AdmissionReview answering `body`; ValueError if `body` is not a v1 review."""
    request = body.get("request") if isinstance(body, Mapping) else None
    if not isinstance(request, Mapping) or body.get("apiVersion") != "admission.k8s.io/v1":
        raise ValueError("not an admission.k8s.io/v1 AdmissionReview with a request")
    uid = request.get("uid")
    if not isinstance(uid, str):
        raise ValueError("AdmissionReview request has no uid")
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    pod = request.get("object")
    kind_ref = request.get("kind")
    kind = kind_ref.get("kind") if isinstance(kind_ref, Mapping) else None
    namespace = request.get("namespace")
    if (
        kind == "Pod"
        and isinstance(pod, dict)
        and request.get("operation", "CREATE") == "CREATE"
        and namespace not in policy.excluded_namespaces
    ):
        try:
            patch = json_patch(pod, inject(pod, settings))
        except InjectionError as exc:
            response = {"uid": uid, "allowed": False, "status": {"code": 400, "message": str(exc)}}
        else:
            if patch:
                response["patchType"] = "JSONPatch"
                response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
