"""The control plane through the API server's service proxy: its path, and each error
answer as one line of the right kind (no control plane, a refusal, anything else)."""

from __future__ import annotations

import json

import pytest
from lightkube.config.kubeconfig import KubeConfig

from plait.errors import ControlPlaneNotFoundError, KubeApiError, KubeForbiddenError
from plait.kube.controlplane import ControlPlane

CONFIG = KubeConfig.from_server("https://api:6443").get()
assert CONFIG is not None


def status(code: int, message: str, reason: str = "") -> str:
    return json.dumps(
        {"kind": "Status", "status": "Failure", "message": message, "reason": reason, "code": code}
    )


def test_the_path_is_the_service_proxy_subresource() -> None:
    cp = ControlPlane(CONFIG, "mesh")
    assert cp.url("/debug/config_dump") == (
        "/api/v1/namespaces/mesh/services/plaitd:15014/proxy/debug/config_dump"
    )
    assert ControlPlane(CONFIG).namespace == "istio-system"


@pytest.mark.parametrize(
    ("code", "body", "kind", "text"),
    [
        (404, status(404, 'services "plaitd" not found', "NotFound"), ControlPlaneNotFoundError,
         "no control plane found at service mesh/plaitd:15014"),
        (503, status(503, 'no endpoints available for service "plaitd"'), ControlPlaneNotFoundError,
         "no endpoints available"),
        (502, "dial tcp 10.0.0.9:15014: connect: connection refused", ControlPlaneNotFoundError,
         "no control plane answers"),
        (403, status(403, 'services "plaitd" is forbidden: User "x" cannot get resource '
                          '"services/proxy"', "Forbidden"), KubeForbiddenError, "cannot get"),
        (401, status(401, "Unauthorized", "Unauthorized"), KubeForbiddenError, "Unauthorized"),
        (404, "no proxy 'x'; proxies: none\n", KubeApiError, "no proxy 'x'"),
        (500, status(500, "boom"), KubeApiError, "boom"),
    ],
)  # fmt: skip
def test_error_answers(code: int, body: str, kind: type[Exception], text: str) -> None:
    error = ControlPlane(CONFIG, "mesh")._error("/status", code, body)
    assert type(error) is kind
    assert text in str(error) and "\n" not in str(error)
