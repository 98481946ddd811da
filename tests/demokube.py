"""`make demo-kube` / `make demo-kube-down`: the shop on the local test cluster with plait
installed by Helm.

    python tests/demokube.py up [DIR]     # prints export KUBECONFIG=… and gateway: http://…
    python tests/demokube.py down [DIR]

Steps of `up`, each with a deadline and a clear failure:

1. the local cluster with the node agent (tests/kubecluster.py; root, for pod networks);
2. `helm install plait-base charts/base`, `helm install plait charts/plait -n istio-system`
   (the gateway's service account named as Istio's default profile and the shop's
   policies name it);
3. `kubectl label namespace default istio-injection=enabled`;
4. `kubectl apply` of the shop: examples/shop's Services and Istio resources, and
   examples/shop-kube/shop.yaml (its Deployments for pods, and ServiceAccounts);
5. wait until plaitd, the gateway and every shop pod are Ready, and the gateway answers
   at NODE_IP:nodePort (the node's InternalIP; the chart's LoadBalancer Service has node
   ports, which the test node serves as kube-proxy does), then print the lines.

The same steps, with assertions, are tests/e2e/kube/test_shop_in_pods_e2e.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from kubecluster import REPO, Cluster, down, up

DEFAULT_DIR = Path(os.environ.get("PLAIT_DEMO_KUBE_DIR", "/tmp/plait-demo-kube"))
SHOP = REPO / "examples" / "shop"
SHOP_KUBE = REPO / "examples" / "shop-kube" / "shop.yaml"
ISTIO_FILES = ("gateway.yaml", "virtual-services.yaml", "destination-rules.yaml", "security.yaml")
GATEWAY_SA = "istio-ingressgateway-service-account"  # examples/shop/security.yaml's
READY_TIMEOUT = float(os.environ.get("PLAIT_DEMO_KUBE_TIMEOUT", "180"))


def helm(cluster: Cluster, *args: str) -> None:
    subprocess.run(
        [str(cluster.bin / "helm"), "--kubeconfig", str(cluster.kubeconfig), *args],
        check=True,
        capture_output=True,
        text=True,
    )


def not_ready(cluster: Cluster, namespace: str) -> list[str]:
    """Pods of `namespace` that are not Ready (with restarts and status message), or why
    there are none (the last FailedCreate event: a refusal by the webhook, say)."""
    pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json"))["items"]
    out = []
    for pod in pods:
        status = pod.get("status", {})
        if not any(c["type"] == "Ready" and c["status"] == "True"
                   for c in status.get("conditions") or []):  # fmt: skip
            restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or [])
            message = status.get("message") or status.get("phase", "")
            out.append(f"{namespace}/{pod['metadata']['name']}: {message} ({restarts} restarts)")
    if not pods:
        why = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                              "reason=FailedCreate", "-o", "jsonpath={.items[-1:].message}")  # fmt: skip
        out.append(f"{namespace}: no pods yet {('- ' + why[:300]) if why else ''}")
    return out


def answers(url: str) -> bool:
    """The shop answers 200 there."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return bool(r.status == 200)
    except OSError:  # HTTPError too
        return False


def bring_up(directory: Path) -> int:
    if REPO.is_relative_to("/tmp"):
        # the control plane's pod mounts an emptyDir on /tmp, which hides the checkout (and
        # its .venv, the test node's images) from the processes in that pod
        print(f"demo-kube cannot run from a checkout under /tmp ({REPO}): clone elsewhere",
              file=sys.stderr)  # fmt: skip
        return 2
    cluster = up(directory, node=os.geteuid() == 0)
    if not cluster.with_node:
        print("demo-kube needs root (pods are network namespaces)", file=sys.stderr)
        return 2
    helm(cluster, "install", "plait-base", str(REPO / "charts" / "base"))
    helm(cluster, "install", "plait", str(REPO / "charts" / "plait"), "-n", "istio-system",
         "--create-namespace", "--set", f"gateway.serviceAccountName={GATEWAY_SA}")  # fmt: skip
    cluster.kubectl("label", "namespace", "default", "istio-injection=enabled", "--overwrite")
    files = [SHOP / "services.yaml", SHOP_KUBE, *(SHOP / f for f in ISTIO_FILES)]
    for path in files:
        cluster.kubectl("apply", "-f", str(path))
    deadline = time.monotonic() + READY_TIMEOUT
    while waiting := not_ready(cluster, "istio-system") + not_ready(cluster, "default"):
        if time.monotonic() > deadline:
            print(f"not ready after {READY_TIMEOUT:.0f} s:", file=sys.stderr)
            for line in waiting:
                print(f"  {line}", file=sys.stderr)
            print(f"logs: {directory}/node; stop with `make demo-kube-down`", file=sys.stderr)
            return 1
        time.sleep(1)
    address = cluster.node_port("istio-system", "istio-ingressgateway", "http2")
    while not answers(f"http://{address}/product/book"):
        if time.monotonic() > deadline:
            print(f"the gateway does not answer at {address} after {READY_TIMEOUT:.0f} s; "
                  f"logs: {directory}/node", file=sys.stderr)  # fmt: skip
            return 1
        time.sleep(1)
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    print(f"gateway: http://{address}")
    print(f"try:  curl -s 'http://{address}/checkout?item=book&payment=invoice'")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("up", "down"):
        print("usage: demokube.py up|down [DIR]", file=sys.stderr)
        return 2
    directory = Path(argv[1]).resolve() if len(argv) > 1 else DEFAULT_DIR
    if argv[0] == "down":
        down(directory)
        print(f"stopped; removed {directory}", file=sys.stderr)
        return 0
    return bring_up(directory)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
