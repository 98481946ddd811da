"""The shop on the real API server, installed as a user would (docs/kubernetes.md).

`helm install` of charts/base and charts/plait (control plane and ingress gateway, the
gateway's service account named as the shop's policies expect), `kubectl label namespace
default istio-injection=enabled`, `kubectl apply` of examples/shop's Services, Gateway,
VirtualServices and DestinationRules and examples/shop-kube/shop.yaml (the Deployments):
every pod, gateway included, runs on the test node agent (tests/kubenode.py) with its
proxy in the pod. The whole shop runs (10 shop pods, the gateway, plaitd) except
examples/shop/security.yaml's zero-trust policies, which would hide the seed's policy.

Then, from the host through the gateway's Service at NODE_IP:nodePort (the Node's
InternalIP; the test node serves NodePorts as kube-proxy does, tests/kubenodeports.py), a
checkout is counted by the sidecars it crossed (each destination proxy's istio_requests_total, mutual_tls, scraped at its pod IP
on the port of its `prometheus.io/port` annotation); no app has a proxy variable; the
seed's AuthorizationPolicy (examples/seeds/authorization.yaml) gives 403 to frontend and
200 to order-service; a weighted VirtualService splits reviews within tolerance. Under
a load loop through the gateway, `kubectl rollout restart` of a Deployment and deleting
the control-plane pod lose no request. The gateway pod carries the scrape annotations and
its proxy, scraped there, counts the requests it routed; a rollout of the gateway's own
Deployment moves the NodePort's rules to the new pod and the same address keeps serving.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubecluster import Cluster
from kubenode import NodeAgent, running_node
from loopthread import wait_for
from plait.kube.crds import all_crds

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pods are network namespaces: root only")

REPO = Path(__file__).resolve().parents[3]
SHOP = REPO / "examples" / "shop"
CONTROL = "istio-system"
NS = "default"  # the shop's and the seed's policies name identities in `default`
GATEWAY_SA = "istio-ingressgateway-service-account"
SHOP_FILES = [
    SHOP / "services.yaml",
    REPO / "examples" / "shop-kube" / "shop.yaml",
    SHOP / "gateway.yaml",
    SHOP / "virtual-services.yaml",
    SHOP / "destination-rules.yaml",
]
SEED_POLICY = REPO / "examples" / "seeds" / "authorization.yaml"
APP_UID = 1000  # callers' user in a pod: anything but the proxy's 1337 is captured
PROXY_VARS = ("http_proxy=", "https_proxy=", "all_proxy=", "plait_outbound=")


def helm(kube: Cluster, *args: str) -> str:
    done = subprocess.run(
        [str(kube.bin / "helm"), "--kubeconfig", str(kube.kubeconfig), *args],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, f"helm {' '.join(args)}: {done.stderr}"
    return done.stdout


def pods(kube: Cluster, ns: str, selector: str = "") -> list[dict[str, Any]]:
    args = ["get", "pods", "-n", ns, "-o", "json", *(["-l", selector] if selector else [])]
    items: list[dict[str, Any]] = json.loads(kube.kubectl(*args))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def all_ready(kube: Cluster, ns: str, count: int) -> bool:
    found = pods(kube, ns)
    return len(found) >= count and all(ready(p) for p in found)


def gateway_url(kube: Cluster) -> str:
    """The ingress gateway's Service port http2 (80 → 8080) at NODE_IP:nodePort: the
    node's InternalIP as the Node reports it, the port Kubernetes allocated (the chart's
    Service is a LoadBalancer; there is no load balancer here, so its node ports)."""
    return f"http://{kube.node_port(CONTROL, 'istio-ingressgateway', 'http2')}"


def get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return 0, str(e)


def in_pod(node: NodeAgent, workload: str, *argv: str) -> str:
    """argv in a ready pod of `workload` (its network namespace, an empty environment,
    uid APP_UID): stdout."""
    [running] = [
        r for k, r in node.pods.items()
        if k.startswith(f"{NS}/{workload}-") and r.ready and not r.stopping
    ][:1]  # fmt: skip
    user = ["setpriv", f"--reuid={APP_UID}", f"--regid={APP_UID}", "--clear-groups"]
    done = subprocess.run(
        ["ip", "netns", "exec", running.net.netns, "env", "-i", "PATH=/usr/bin:/bin", *user,
         *argv],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return done.stdout


def curl(node: NodeAgent, caller: str, url: str) -> tuple[int, str]:
    out = in_pod(node, caller, "curl", "-sS", "-m", "5", "-w", "\n%{http_code}", url)
    body, _, code = out.rpartition("\n")
    return int(code or 0), body


def settled(node: NodeAgent, workload: str) -> bool:
    """The workload's Envoy drains no listener or filter chain."""
    text = in_pod(node, workload, "curl", "-s", "-m", "5",
                  "http://127.0.0.1:15000/stats?filter=^listener_manager.total_.*draining$")  # fmt: skip
    values = [line.rpartition(":")[2].strip() for line in text.splitlines() if line]
    return len(values) == 2 and values == ["0", "0"]


def metrics(pod: dict[str, Any]) -> str:
    notes = pod["metadata"]["annotations"]
    url = f"http://{pod['status']['podIP']}:{notes['prometheus.io/port']}"
    return get(url + notes["prometheus.io/path"], 5)[1]


def inbound_mtls(text: str) -> float:
    """Requests the proxy served as the destination over mutual TLS."""
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("istio_requests_total{")
            and 'reporter="destination"' in line
            and 'connection_security_policy="mutual_tls"' in line
        ):
            total += float(line.rpartition(" ")[2])
    return total


def diagnostics(kube: Cluster, node: NodeAgent) -> str:
    parts = [kube.kubectl("get", "pods", "-A", "-o", "wide", check=False)]
    for log in sorted((node.workdir / "logs").glob("*.log")):
        parts.append(f"--- {log.name} ---\n{log.read_text(errors='replace')[-2000:]}")
    return "\n".join(parts)


@pytest.fixture(scope="module")
def node(kube: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeAgent]:
    with running_node(kube.kubeconfig, tmp_path_factory.mktemp("node")) as agent:
        yield agent


@pytest.fixture(scope="module")
def kube_shop(kube: Cluster, node: NodeAgent) -> Iterator[str]:
    """helm install, label, kubectl apply; yields the gateway's URL once all is Ready."""
    began = time.monotonic()
    installed = False
    try:
        if not kube.kubectl("get", "crd", "virtualservices.networking.istio.io",
                            "--ignore-not-found", "-o", "name"):  # fmt: skip
            helm(kube, "install", "plait-base", str(REPO / "charts" / "base"))
        crds = [f"crd/{c['metadata']['name']}" for c in all_crds()]
        wait_for("the CRDs Established", lambda: "error" not in kube.kubectl(
            "wait", "--for=condition=Established", "--timeout=30s", *crds, check=False))  # fmt: skip
        # a root another test published (or a release's, not yet garbage collected) would
        # be mounted by the pods before plaitd replaces it: they wait for plaitd's instead
        for ns in (CONTROL, NS):
            kube.kubectl("delete", "configmap", "istio-ca-root-cert", "-n", ns,
                         "--ignore-not-found", check=False)  # fmt: skip
        helm(kube, "install", "plait", str(REPO / "charts" / "plait"), "-n", CONTROL,
             "--create-namespace", "--set", f"gateway.serviceAccountName={GATEWAY_SA}")  # fmt: skip
        installed = True
        kube.kubectl("label", "namespace", NS, "istio-injection=enabled", "--overwrite")
        for path in SHOP_FILES:
            kube.kubectl("apply", "-n", NS, "-f", str(path))
        wait_for("plaitd and the gateway Ready", lambda: all_ready(kube, CONTROL, 2), 180)
        wait_for("the 10 shop pods Ready", lambda: all_ready(kube, NS, 10), 180)
        url = gateway_url(kube)
        # routes reach the gateway: the first checkout through it
        wait_for("a checkout through the gateway",
                 lambda: get(f"{url}/checkout?item=mug&payment=card")[0] == 200, 60)  # fmt: skip
        print(f"helm install → the shop answering through the gateway: "
              f"{time.monotonic() - began:.1f} s")  # fmt: skip
        yield url
    except BaseException:
        print(diagnostics(kube, node))
        raise
    finally:
        for path in [*SHOP_FILES, SEED_POLICY]:
            kube.kubectl("delete", "-n", NS, "-f", str(path), "--ignore-not-found", "--wait=false",
                         check=False)  # fmt: skip
        kube.kubectl("delete", "deployment,serviceaccount", "order-service", "-n", NS,
                     "--ignore-not-found", check=False)  # fmt: skip
        kube.kubectl("label", "namespace", NS, "istio-injection-", check=False)
        if installed:
            helm(kube, "uninstall", "plait", "-n", CONTROL, "--wait", "--timeout", "120s")
        wait_for("the shop's pods gone", lambda: not pods(kube, NS), 60)


def test_a_checkout_crosses_the_sidecars_over_mtls(
    kube: Cluster, node: NodeAgent, kube_shop: str
) -> None:
    shop_pods = pods(kube, NS)
    for pod in shop_pods:  # each injected: the sidecar, the capture init, the token volume
        inits = [c["name"] for c in pod["spec"]["initContainers"]]
        assert inits == ["istio-init", "istio-proxy"], (pod["metadata"]["name"], inits)
    before = {p["metadata"]["name"]: inbound_mtls(metrics(p)) for p in shop_pods}
    code, body = get(f"{kube_shop}/checkout?item=book&payment=invoice")
    assert code == 200, body
    doc = json.loads(body)
    assert doc["checkout"] == "confirmed", body
    assert doc["peer"] == f"spiffe://cluster.local/ns/{CONTROL}/sa/{GATEWAY_SA}"

    def crossed() -> list[str] | None:
        grew = [
            p["metadata"]["name"] for p in shop_pods
            if inbound_mtls(metrics(p)) > before[p["metadata"]["name"]]
        ]  # fmt: skip
        # gateway → frontend → reviews, orders → inventory, payment → risk-assessment
        return grew if len(grew) >= 6 else None

    grew = wait_for("the checkout counted by the sidecars it crossed", crossed, 15)
    print(f"one checkout crossed {len(grew)} sidecars over mTLS: {sorted(grew)}")

    # no app has a proxy variable: traffic is captured, not configured
    for key, running in node.pods.items():
        if not key.startswith(f"{NS}/"):
            continue
        [app] = [name for name in running.procs if not name.startswith("istio-")]
        environ = Path(f"/proc/{running.procs[app].pid}/environ").read_bytes().decode()
        found = [v for v in environ.split("\0") if v.lower().startswith(PROXY_VARS)]
        assert not found, (key, found)


def test_each_pods_proxy_is_scraped_with_source_and_destination_labels(
    kube: Cluster, kube_shop: str
) -> None:
    assert get(f"{kube_shop}/product/book")[0] == 200  # frontend → recommendations (gRPC), cache
    assert get(f"{kube_shop}/checkout?item=lamp&payment=invoice")[0] == 200
    labelled = re.compile(r'source_workload="[^"]+".*destination_workload="[^"]+"')

    def unlabelled() -> list[str]:
        missing = []
        for pod in pods(kube, NS):
            app = pod["metadata"]["labels"]["app"]
            if app == "reviews" and pod["metadata"]["labels"]["version"] == "v2":
                continue  # the shop's VirtualService sends reviews to v1 only
            family = (
                "istio_tcp_connections_opened_total" if app == "cache" else "istio_requests_total"
            )
            lines = [x for x in metrics(pod).splitlines() if x.startswith(family + "{")]
            if not any(labelled.search(x) for x in lines):
                missing.append(f"{pod['metadata']['name']}: {family} {lines[:2]}")
        return missing

    try:
        wait_for("every pod's proxy to report labelled requests", lambda: not unlabelled(), 15)
    except AssertionError:
        print(*unlabelled(), sep="\n")
        raise


def test_the_seeds_authorization_policy_applied_with_kubectl(
    kube: Cluster, node: NodeAgent, kube_shop: str
) -> None:
    """examples/seeds/authorization.yaml: reviews accepts GET from order-service only."""
    caller = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "order-service", "namespace": NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "order-service"}},
                 "template": {"metadata": {"labels": {"app": "order-service"}},
                              "spec": {"serviceAccountName": "order-service", "containers": [{
                                  "name": "app", "image": "python:3.12",
                                  "args": ["-m", "http.server", "8080"]}]}}},
    }  # fmt: skip
    kube.kubectl("create", "serviceaccount", "order-service", "-n", NS)
    kube.kubectl("apply", "-f", "-", input=json.dumps(caller))
    wait_for("order-service Ready",
             lambda: [p for p in pods(kube, NS, "app=order-service") if ready(p)], 90)  # fmt: skip
    reviews = "http://reviews:8080/reviews/book"
    wait_for(
        "order-service's call to reviews", lambda: curl(node, "order-service", reviews)[0] == 200
    )
    assert curl(node, "frontend", reviews)[0] == 200  # no policy yet
    kube.kubectl("apply", "-n", NS, "-f", str(SEED_POLICY))
    try:
        # a pooled frontend → reviews connection is served by the old filter chain (no
        # RBAC) until reviews' Envoy has drained it, as Envoy drains on a listener update
        wait_for(
            "frontend refused, reviews' old chains drained",
            lambda: curl(node, "frontend", reviews)[0] == 403 and settled(node, "reviews-v1"),
            30,
        )
        code, body = curl(node, "frontend", reviews)
        assert (code, body.strip()) == (403, "RBAC: access denied")
        assert curl(node, "order-service", reviews)[0] == 200
    finally:
        kube.kubectl("delete", "-n", NS, "-f", str(SEED_POLICY), "--ignore-not-found")
    wait_for("frontend allowed again", lambda: curl(node, "frontend", reviews)[0] == 200, 30)


# named to sort after `reviews`: the pods' sidecars still report `reviews` as the
# service they serve (the first selecting Service by hostname)
HEADLESS_REVIEWS = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "reviewset", "namespace": NS},
    "spec": {"clusterIP": "None", "selector": {"app": "reviews"},
             "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]},
}  # fmt: skip
STRICT_REVIEWS = {
    "apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
    "metadata": {"name": "reviews-strict", "namespace": NS},
    "spec": {"selector": {"matchLabels": {"app": "reviews"}}, "mtls": {"mode": "STRICT"}},
}  # fmt: skip


def test_a_headless_services_pod_is_reached_by_its_ip_over_mtls(
    kube: Cluster, node: NodeAgent, kube_shop: str
) -> None:
    """A headless Service over reviews' pods, which are STRICT: frontend's app calls one
    pod by its IP (as a StatefulSet's peers or a scraper do). frontend's captured sidecar
    has a filter chain for that pod (translate/headless.py), so the request reaches that
    very pod over mTLS and the app sees frontend's SPIFFE ID; before, it went out in plain
    text (virtualOutbound's passthrough) and the STRICT pod refused it."""
    for doc in (HEADLESS_REVIEWS, STRICT_REVIEWS):
        kube.kubectl("apply", "-f", "-", input=json.dumps(doc))
    try:
        ready_pods = sorted(
            (p for p in pods(kube, NS, "app=reviews") if ready(p)),
            key=lambda p: p["metadata"]["name"],
        )
        target = ready_pods[-1]
        url = f"http://{target['status']['podIP']}:8080/reviews/book"

        def answered() -> dict[str, Any] | None:
            code, body = curl(node, "frontend", url)
            return json.loads(body) if code == 200 else None

        doc = wait_for("frontend's call to one reviews pod by its IP", answered, 30)
        assert doc["peer"] == f"spiffe://cluster.local/ns/{NS}/sa/frontend", doc
        for _ in range(5):  # always that pod, not one of the Service's
            again = answered()
            assert again is not None and again["instance"] == target["metadata"]["name"], again
    finally:
        for doc in (STRICT_REVIEWS, HEADLESS_REVIEWS):
            kube.kubectl("delete", "-f", "-", "--ignore-not-found", input=json.dumps(doc),
                         check=False)  # fmt: skip


def test_a_virtual_service_canary_applied_with_kubectl_splits_within_tolerance(
    kube: Cluster, node: NodeAgent, kube_shop: str
) -> None:
    canary = {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": NS},
        "spec": {"hosts": ["reviews"], "http": [{"route": [
            {"destination": {"host": "reviews", "subset": "v1"}, "weight": 75},
            {"destination": {"host": "reviews", "subset": "v2"}, "weight": 25},
        ]}]},
    }  # fmt: skip
    url = "http://reviews:8080/reviews/book"

    def version() -> str:
        code, body = curl(node, "frontend", url)
        return str(json.loads(body)["version"]) if code == 200 else f"status {code}"

    kube.kubectl("apply", "-f", "-", input=json.dumps(canary))
    try:
        wait_for("a v2 answer (the canary in place)", lambda: version() == "v2", 30)
        n = 200
        seen = Counter(version() for _ in range(n))
        print(f"reviews 75/25 canary over {n} calls: {dict(seen)}")
        assert set(seen) == {"v1", "v2"}, seen
        # binomial(200, 0.25): sd ≈ 6.1, so ±4 sd is 25 ± 12.5 %
        assert 0.125 <= seen["v2"] / n <= 0.375, seen
    finally:
        kube.kubectl("apply", "-n", NS, "-f", str(SHOP / "virtual-services.yaml"))


class Load:
    """A loop of checkouts through the gateway (card: gateway → frontend → reviews,
    orders → inventory, payment) on a thread, counting answers by status."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/checkout?item=poster&payment=card"
        self.codes: Counter[int] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            code, body = get(self.url)
            self.codes[code] += 1
            if code != 200:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {code} {body[:300]}")

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def more(self, count: int, timeout: float = 30) -> None:
        """Wait until `count` more requests were answered."""
        target = sum(self.codes.values()) + count
        wait_for(f"{count} more requests", lambda: sum(self.codes.values()) >= target, timeout)


def test_rollout_restart_and_control_plane_pod_loss_under_load_lose_no_request(
    kube: Cluster, node: NodeAgent, kube_shop: str
) -> None:
    old_orders = {p["metadata"]["name"] for p in pods(kube, NS, "app=orders")}
    [old_plaitd] = [p["metadata"]["name"] for p in pods(kube, CONTROL, "app=plaitd")]
    with Load(kube_shop) as load:
        load.more(10)
        began = time.monotonic()
        kube.kubectl("rollout", "restart", "deployment/orders", "-n", NS)
        kube.kubectl("rollout", "status", "deployment/orders", "-n", NS, "--timeout=120s")
        wait_for("the old orders pods gone", lambda: not old_orders & {
            p["metadata"]["name"] for p in pods(kube, NS, "app=orders")}, 60)  # fmt: skip
        load.more(20)
        print(f"rollout restart of orders under load: {time.monotonic() - began:.1f} s, "
              f"{dict(load.codes)}")  # fmt: skip

        kube.kubectl("delete", "pod", old_plaitd, "-n", CONTROL, "--wait=false")
        wait_for("a new plaitd Ready", lambda: [
            p for p in pods(kube, CONTROL, "app=plaitd")
            if ready(p) and p["metadata"]["name"] != old_plaitd], 90)  # fmt: skip
        load.more(20)
    print(f"under load: {dict(load.codes)}")
    assert not load.failures, load.failures[:10]
    assert set(load.codes) == {200}


def node_port_destinations(node: NodeAgent) -> set[str]:
    """Where the test node's NodePort rules send connections now (its DNAT rules): the
    gateway's, as no other Service here has node ports."""
    saved = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    found = re.findall(rf"-A PLAIT{node.network.run}-SEP-\S+ .*--to-destination (\S+)", saved)
    return set(found)


def test_the_gateway_pod_is_scraped_and_its_rollout_keeps_the_node_port_serving(
    kube: Cluster, node: NodeAgent, kube_shop: str
) -> None:
    [gateway] = [p for p in pods(kube, CONTROL, "istio=ingressgateway") if ready(p)]
    notes = gateway["metadata"]["annotations"]
    assert {k: v for k, v in notes.items() if k.startswith("prometheus.io/")} == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "15020",
        "prometheus.io/path": "/stats/prometheus",
    }
    assert get(f"{kube_shop}/checkout?item=mug&payment=card")[0] == 200

    def routed() -> list[str] | None:
        lines = [x for x in metrics(gateway).splitlines()
                 if x.startswith("istio_requests_total{")
                 and 'destination_workload="frontend"' in x]  # fmt: skip
        return lines or None

    lines = wait_for("the gateway's proxy counting what it routed", routed, 15)
    print(f"the gateway pod, scraped at its annotation's port: {lines[0][:300]}")

    old = gateway["status"]["podIP"]
    assert node_port_destinations(node) == {f"{old}:{p}" for p in (15021, 8080, 8443)}
    with Load(kube_shop) as load:
        load.more(10)
        began = time.monotonic()
        kube.kubectl("rollout", "restart", "deployment/istio-ingressgateway", "-n", CONTROL)
        kube.kubectl("rollout", "status", "deployment/istio-ingressgateway", "-n", CONTROL,
                     "--timeout=120s")  # fmt: skip
        wait_for("the old gateway pod gone", lambda: gateway["metadata"]["name"] not in {
            p["metadata"]["name"] for p in pods(kube, CONTROL, "istio=ingressgateway")}, 60)  # fmt: skip
        [new] = [p["status"]["podIP"] for p in pods(kube, CONTROL, "istio=ingressgateway")]
        wait_for("the NodePort's rules on the new gateway pod only",
                 lambda: node_port_destinations(node) == {f"{new}:{p}" for p in (15021, 8080, 8443)},
                 15)  # fmt: skip
        moved = time.monotonic() - began
        during = list(load.failures)
        load.more(20)
    print(f"gateway rollout under load through the NodePort: rules on the new pod after "
          f"{moved:.1f} s; {dict(load.codes)}; failed while the pods changed: {during[:5]}")  # fmt: skip
    assert new != old
    assert load.failures == during, load.failures[len(during) :][:10]  # none once moved
    code, body = get(f"{kube_shop}/checkout?item=book&payment=invoice")
    assert code == 200, body
