"""examples/shop-kube: the shop's Deployments for a cluster are the local ones
(deployments.yaml) with what a pod needs instead of what `plait up` gives: no command (the
image's entrypoint), `HOST=0.0.0.0`, `PORT` = the container port (the sidecar reaches the
app on the pod IP) and `POD_IP` (downward API), and a ServiceAccount per workload. Services and Istio resources are applied from the
shop directory itself. PLAIT_UPDATE_GOLDEN=1 regenerates the file after a change."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

SHOP = Path(__file__).resolve().parents[3] / "examples" / "shop"
KUBE = SHOP.parent / "shop-kube" / "shop.yaml"
"""Not inside examples/shop: `plait up` reads every YAML file below its directory."""
IMAGE = "ghcr.io/plait-mesh/shop:0.1"
HEADER = """\
# The shop on Kubernetes (make demo-kube): the Deployments of ../shop/deployments.yaml for
# pods, and their ServiceAccounts (identities). Apply with ../shop/services.yaml and the
# Istio YAML of ../shop in a namespace labelled istio-injection=enabled. Generated and checked by
# tests/unit/examples/test_shop_kubernetes.py (PLAIT_UPDATE_GOLDEN=1 rewrites it).
"""


def for_pods(deployment: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(deployment)
    spec = out["spec"]["template"]["spec"]
    for container in spec["containers"]:
        container.pop("command", None)
        container["image"] = IMAGE
        port = container.get("ports", [{}])[0].get("containerPort", 8080)
        container["env"] = [
            *container.get("env", []),
            {"name": "HOST", "value": "0.0.0.0"},
            {"name": "PORT", "value": str(port)},
            # the app runs in a pod, its TCP captured (the shop's cache client needs that)
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ]
    return out


def expected() -> str:
    local = [d for d in yaml.safe_load_all((SHOP / "deployments.yaml").read_text()) if d]
    accounts = sorted({d["spec"]["template"]["spec"]["serviceAccountName"] for d in local})
    docs = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": a}} for a in accounts
    ]
    docs += [for_pods(d) for d in local]
    return HEADER + yaml.safe_dump_all(docs, sort_keys=False)


def test_kubernetes_manifests_are_the_local_deployments_for_pods() -> None:
    text = expected()
    if os.environ.get("PLAIT_UPDATE_GOLDEN"):
        KUBE.write_text(text)
    assert KUBE.read_text() == text, f"{KUBE} is stale (PLAIT_UPDATE_GOLDEN=1 rewrites it)"
    docs = [d for d in yaml.safe_load_all(text) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds.count("Deployment") == 9 and "ServiceAccount" in kinds
    for d in docs:
        if d["kind"] == "Deployment":
            (container,) = d["spec"]["template"]["spec"]["containers"]
            assert "command" not in container and container["image"] == IMAGE
            assert not any(e["name"].startswith(("PLAIT_", "HTTP_PROXY")) for e in container["env"])
