"""The MutatingWebhookConfiguration that sends Pod creations to plait's injector. Pure.

Selectors can only AND their terms, so each way of asking for injection is its own
webhook (Istio's layout), and each later one excludes the earlier ones' labels so a pod is
sent once:

1. namespace label `istio-injection=enabled`;
2. namespace label `istio.io/rev=REVISION` (and no `istio-injection`);
3. namespace label `plait-injection=enabled` (and neither of the above);
4. pod label `sidecar.istio.io/inject=true` in a namespace with none of the above.

Every webhook skips the excluded namespaces (by `kubernetes.io/metadata.name`, which the
API server sets on every namespace) and pods labelled `sidecar.istio.io/inject=false`.

`failurePolicy` is the choice between availability and the mesh's guarantees (see
docs/kubernetes.md): `Fail` (the default, as Istio's) refuses pod creation in an injected
namespace while no injector answers; `Ignore` admits such pods without a sidecar.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from plait.inject.pod import INJECT

NAME = "plait-sidecar-injector"
PATH = "/inject"
ISTIO_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"
PLAIT_LABEL = "plait-injection"


@dataclass(frozen=True)
class WebhookEndpoint:
    """Where the API server calls: a URL, or a Service (namespace, name, port)."""

    url: str | None = None
    service: tuple[str, str, int] | None = None

    def client_config(self, ca_bundle_pem: bytes) -> dict[str, Any]:
        out: dict[str, Any] = {"caBundle": base64.b64encode(ca_bundle_pem).decode()}
        if self.url is not None:
            out["url"] = self.url.rstrip("/") + PATH
        elif self.service is not None:
            namespace, name, port = self.service
            out["service"] = {"namespace": namespace, "name": name, "port": port, "path": PATH}
        else:
            raise ValueError("a webhook endpoint needs a url or a service")
        return out


def _exists(key: str, op: Literal["DoesNotExist"] = "DoesNotExist") -> dict[str, Any]:
    return {"key": key, "operator": op}


def _in(key: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": "In", "values": list(values)}


def webhook_configuration(
    endpoint: WebhookEndpoint,
    ca_bundle_pem: bytes,
    *,
    revision: str = "default",
    excluded_namespaces: Iterable[str] = ("istio-system", "kube-system"),
    failure_policy: Literal["Fail", "Ignore"] = "Fail",
    name: str = NAME,
) -> dict[str, Any]:
    excluded = {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                "values": sorted(excluded_namespaces)}  # fmt: skip
    not_false = {"key": INJECT, "operator": "NotIn", "values": ["false"]}
    selectors: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
        ("namespace", [_in(ISTIO_LABEL, "enabled")], not_false),
        ("rev.namespace", [_in(REVISION_LABEL, revision), _exists(ISTIO_LABEL)], not_false),
        (
            "plait.namespace",
            [_in(PLAIT_LABEL, "enabled"), _exists(ISTIO_LABEL), _exists(REVISION_LABEL)],
            not_false,
        ),
        (
            "object",
            [_exists(ISTIO_LABEL), _exists(REVISION_LABEL), _exists(PLAIT_LABEL)],
            _in(INJECT, "true"),
        ),
    ]
    webhooks = [
        {
            "name": f"{prefix}.sidecar-injector.plait.dev",
            "clientConfig": endpoint.client_config(ca_bundle_pem),
            "rules": [
                {
                    "operations": ["CREATE"],
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "resources": ["pods"],
                }
            ],
            "namespaceSelector": {"matchExpressions": [*terms, excluded]},
            "objectSelector": {"matchExpressions": [obj]},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "failurePolicy": failure_policy,
            "reinvocationPolicy": "Never",
            "timeoutSeconds": 10,
        }
        for prefix, terms, obj in selectors
    ]
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app": "plait-sidecar-injector"}},
        "webhooks": webhooks,
    }
