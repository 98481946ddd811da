"""plait installed by Helm into the real cluster, its control plane run by the test node
agent as the chart says (uid 1337, in-cluster credentials, the CA in an emptyDir kept in a
Secret), with a real Envoy on the host connected to it.

`helm install` brings the plaitd Deployment to Ready (the readiness probe on /status
passes once the first list is in); the CRDs are served and refuse a schema error with its
field path; the injector is wired (the webhook configuration's caBundle is the mesh root;
a pod in a labelled namespace is injected by the API server's call to the webhook). Killing
the control-plane pod: the Envoy keeps its config and keeps routing while no control plane
runs; the replacement, from a fresh list, gives it identical resources; a VirtualService
edit after that is ACKed. `helm uninstall` leaves nothing behind but the CRDs: every object
of every listable kind is compared with the inventory taken before the install.

The gateway is disabled (`gateway.enabled=false`): its in-pod command (`proxy router`) is
another issue's. There is no kube-proxy on the test node: the Envoy reaches the Service
`plaitd` through a relay on loopback that dials the Service's ready endpoint at each
connection (tests/kubeapi.py), as a cluster IP would.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from kubeapi import Relay
from kubecluster import Cluster
from kubeenvoy import Envoy
from kubemanifests import web_app
from kubenode import NodeAgent, running_node
from plait.kube.crds import all_crds

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pods are network namespaces: root only")

REPO = Path(__file__).resolve().parents[3]
CONTROL = "istio-system"
NS = f"helm-{uuid.uuid4().hex[:6]}"
HOST = f"web.{NS}.svc.cluster.local"
T = TypeVar("T")
# kinds whose objects come and go on their own: not the chart's, not the control plane's
CHURN = {"events", "events.events.k8s.io"}


def wait_for(what: str, get: Callable[[], T | None], timeout: float = 60.0, step: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = None
        try:
            value = get()
        except (OSError, RuntimeError, KeyError):
            value = None  # not there yet (Envoy's admin port, a pod without status)
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step)


def helm(kube: Cluster, *args: str) -> str:
    done = subprocess.run(
        [str(kube.bin / "helm"), "--kubeconfig", str(kube.kubeconfig), *args],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, f"helm {' '.join(args)}: {done.stderr}"
    return done.stdout


def inventory(kube: Cluster) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of every object of every listable kind but events."""
    kinds = [
        k for k in kube.kubectl("api-resources", "--verbs=list", "-o", "name").split()
        if k not in CHURN
    ]  # fmt: skip
    items = json.loads(kube.kubectl("get", ",".join(kinds), "-A", "-o", "json"))["items"]
    return {(i["kind"], i["metadata"].get("namespace", ""), i["metadata"]["name"]) for i in items}


def available(kube: Cluster, namespace: str, name: str) -> bool:
    out = kube.kubectl("get", "deployment", name, "-n", namespace, "-o", "json")
    conditions = json.loads(out).get("status", {}).get("conditions", [])
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


def plaitd_pods(kube: Cluster) -> list[dict[str, Any]]:
    pods = json.loads(kube.kubectl("get", "pods", "-n", CONTROL, "-l", "app=plaitd", "-o", "json"))
    return [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]


def ready_pod(kube: Cluster, not_named: str = "") -> dict[str, Any] | None:
    for pod in plaitd_pods(kube):
        conditions = pod.get("status", {}).get("conditions", [])
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        if ready and pod["metadata"]["name"] != not_named:
            return pod
    return None


def status(pod: dict[str, Any]) -> dict[str, Any]:
    """The control plane's /status, from the pod's IP (the host reaches the pod network)."""
    url = f"http://{pod['status']['podIP']}:15014/status"
    with urllib.request.urlopen(url, timeout=5) as r:
        body: dict[str, Any] = json.load(r)
        return body


def synced(pod: dict[str, Any]) -> bool:
    """Every proxy connected and ACKed at the control plane's current generation."""
    body = status(pod)
    generation = body["controlPlane"]["generation"]
    proxies = body["proxies"]
    return bool(proxies) and all(
        p["connected"] and (p["generation"] or 0) >= generation and p["nack"] is None
        for p in proxies
    )


def web() -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": web_app(NS)})


def virtual_service(tag: str) -> str:
    return json.dumps({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"hosts": ["web"], "http": [{
            "headers": {"response": {"set": {"x-route": tag}}},
            "route": [{"destination": {"host": "web"}}],
        }]},
    })  # fmt: skip


def own(found: dict[str, str]) -> dict[str, str]:
    """`found` less what names a service of another namespace: the session's cluster is
    shared with the other kube modules, and a namespace one of them deleted without
    waiting may lose its services while this module runs (a `web` in `shop-…` did)."""

    def ours(name: str) -> bool:
        host = name.rsplit("|", 1)[-1]
        if not host.endswith(".svc.cluster.local"):
            return True
        return host.split(".")[1] in (NS, CONTROL) or host.startswith("kubernetes.default.")

    return {name: version for name, version in found.items() if ours(name)}


def versions(dump: dict[str, Any]) -> dict[str, str]:
    """Each dynamic cluster's and listener's version (content hashes)."""
    found: dict[str, str] = {}
    for c in dump["configs"]:
        for entry in c.get("dynamic_active_clusters", []):
            found[entry["cluster"]["name"]] = entry["version_info"]
        for entry in c.get("dynamic_listeners", []):
            found[entry["name"]] = entry["active_state"]["version_info"]
    return found


@pytest.fixture(scope="module")
def node(kube: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeAgent]:
    with running_node(kube.kubeconfig, tmp_path_factory.mktemp("node")) as agent:
        yield agent


def node_logs(node: NodeAgent) -> str:
    logs = sorted((node.workdir / "logs").glob(f"{CONTROL}_plaitd-*"))
    return "\n".join(f"--- {f.name} ---\n{f.read_text(errors='replace')[-3000:]}" for f in logs)


@pytest.fixture(scope="module")
def before(kube: Cluster, node: NodeAgent) -> set[tuple[str, str, str]]:
    """The cluster's objects before plait's control plane is installed (CRDs installed)."""
    names = [f"crd/{c['metadata']['name']}" for c in all_crds()]
    # another module of the session may have installed the CRDs, with helm or without
    if not kube.kubectl("get", *names, "--ignore-not-found", "-o", "name"):
        helm(kube, "install", "plait-base", str(REPO / "charts" / "base"))
    wait_for(
        "the CRDs established",
        lambda: kube.kubectl("wait", "--for=condition=Established", "--timeout=30s", *names),
    )
    if not kube.kubectl("get", "namespace", CONTROL, "--ignore-not-found", "-o", "name"):
        kube.kubectl("create", "namespace", CONTROL)
    return inventory(kube)


@pytest.fixture(scope="module")
def installed(
    kube: Cluster, node: NodeAgent, before: set[tuple[str, str, str]]
) -> Iterator[list[tuple[str, str, str]]]:
    """The release `plait`: yields the objects its manifest names."""
    began = time.monotonic()
    helm(kube, "install", "plait", str(REPO / "charts" / "plait"), "-n", CONTROL,
         "--set", "gateway.enabled=false")  # fmt: skip
    manifest = [
        o for o in yaml.safe_load_all(helm(kube, "get", "manifest", "plait", "-n", CONTROL)) if o
    ]
    made = [
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in manifest
    ]
    try:
        wait_for("the Deployment plaitd Available", lambda: available(kube, CONTROL, "plaitd"), 120)
        print(f"helm install → plaitd Available: {time.monotonic() - began:.1f} s")
        yield made
    except BaseException:
        print(node_logs(node))
        raise
    finally:
        kube.kubectl("delete", "namespace", NS, "--ignore-not-found", "--timeout=60s", check=False)
        if "plait" in helm(kube, "list", "-q", "-n", CONTROL).split():  # the last test did not
            helm(kube, "uninstall", "plait", "-n", CONTROL, "--wait", "--timeout", "120s")


def test_helm_install_brings_the_control_plane_to_ready(
    kube: Cluster, node: NodeAgent, installed: list[tuple[str, str, str]]
) -> None:
    pod = ready_pod(kube)
    assert pod is not None
    [container] = pod["spec"]["containers"]
    assert container["args"][0] == "discovery"
    # the process runs as the chart's user (the node execs down to it), not as root
    proc = node.pods[f"{CONTROL}/{pod['metadata']['name']}"].procs["discovery"]
    uids = next(
        line.split()[1:] for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        if line.startswith("Uid:")
    )  # fmt: skip
    assert uids == ["1337"] * 4, uids
    body = status(pod)
    assert body["sourceErrors"] == {}
    # the CRDs are served, and refuse a schema error with its field path
    bad = json.loads(virtual_service("x"))
    bad["spec"]["http"][0]["route"][0]["weight"] = "fifty"
    bad["metadata"]["namespace"] = CONTROL
    out = kube.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(bad), check=False)
    assert "spec.http[0].route[0].weight" in out and "must be of type integer" in out, out


def test_the_ca_is_kept_and_the_injector_is_wired(
    kube: Cluster, installed: list[tuple[str, str, str]], tmp_path: Path
) -> None:
    secret = json.loads(kube.kubectl("get", "secret", "plait-ca", "-n", CONTROL, "-o", "json"))
    root = base64.b64decode(secret["data"]["root-cert.pem"])
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "ClusterRole"

    def bundles() -> set[bytes] | None:
        config = json.loads(kube.kubectl("get", "mutatingwebhookconfiguration",
                                         f"plait-sidecar-injector-{CONTROL}", "-o", "json"))  # fmt: skip
        found = {
            base64.b64decode(w["clientConfig"].get("caBundle", "")) for w in config["webhooks"]
        }
        return found if found == {root} else None

    wait_for("the webhooks' caBundle to be the mesh root", bundles, 30)
    published = wait_for(
        "istio-ca-root-cert in default",
        lambda: kube.kubectl(
            "get",
            "configmap",
            "istio-ca-root-cert",
            "-n",
            "default",
            "-o",
            "jsonpath={.data.root-cert\\.pem}",
            check=False,
        ),  # fmt: skip
        30,
    )
    assert published.encode() == root
    # the API server calls the webhook through the Service plaitd (a server-side dry run)
    injected = f"{NS}-inject"
    kube.kubectl("create", "namespace", injected)
    try:
        kube.kubectl("label", "namespace", injected, "istio-injection=enabled")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": injected},
               "spec": {"containers": [{"name": "app", "image": "python"}]}}  # fmt: skip
        out = kube.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-",
                           input=json.dumps(pod))  # fmt: skip
        names = [c["name"] for c in json.loads(out)["spec"].get("initContainers", [])]
        assert names == ["istio-init", "istio-proxy"], out
    finally:
        kube.kubectl("delete", "namespace", injected, "--wait=false")


@pytest.fixture(scope="module")
def envoy(
    kube: Cluster, installed: list[tuple[str, str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Envoy]:
    """An Envoy on the host as the sidecar of the `web` pod, with a certificate from the
    mesh CA (read from its Secret), connected over mTLS to the Service plaitd."""
    kube.kubectl("create", "namespace", NS)
    wait_for(
        "the ServiceAccount", lambda: kube.kubectl("get", "sa", "default", "-n", NS, "-o", "name")
    )
    kube.kubectl("apply", "-f", "-", input=web())
    kube.kubectl("apply", "-f", "-", input=virtual_service("one"))
    wait_for("the Deployment web Available", lambda: available(kube, NS, "web"), 60)
    workdir = tmp_path_factory.mktemp("helm-envoy")
    secret = json.loads(kube.kubectl("get", "secret", "plait-ca", "-n", CONTROL, "-o", "json"))
    ca_dir = workdir / "ca"
    ca_dir.mkdir(mode=0o700)
    for name, value in secret["data"].items():
        (ca_dir / name).write_bytes(base64.b64decode(value))
        (ca_dir / name).chmod(0o600)

    def endpoint() -> tuple[str, int]:
        pod = ready_pod(kube)
        assert pod is not None, "no ready plaitd pod"
        return pod["status"]["podIP"], 15010

    relay = Relay(IPv4Address("127.0.0.1"), endpoint)
    pods = json.loads(kube.kubectl("get", "pods", "-n", NS, "-l", "app=web", "-o", "json"))
    name = pods["items"][0]["metadata"]["name"]
    proxy = Envoy(workdir, relay.address[1], name, {"app": "web"}, ca_dir, namespace=NS, host=HOST)
    try:
        yield proxy
    except BaseException:
        print(proxy.diagnostics())
        raise
    finally:
        proxy.stop()
        relay.stop()


def test_killing_the_control_plane_pod(kube: Cluster, node: NodeAgent, envoy: Envoy) -> None:
    cluster = f"outbound|80||{HOST}"
    assert wait_for("a routed answer", lambda: (r := envoy.get())[0] == 200 and r, 30) == (
        200,
        "one",
    )
    first = ready_pod(kube)
    assert first is not None
    wait_for("the proxy in sync", lambda: synced(first), 30)
    before = json.loads(envoy.admin("/config_dump"))
    assert cluster in versions(before)

    old = first["metadata"]["name"]
    kube.kubectl("delete", "pod", old, "-n", CONTROL, "--wait=false")
    wait_for("the old pod gone", lambda: old not in {p["metadata"]["name"] for p in plaitd_pods(kube)}
             or None, 30)  # fmt: skip
    checks = 0
    while True:
        # meanwhile no control plane serves it: the Envoy keeps its config and keeps routing
        assert cluster in versions(json.loads(envoy.admin("/config_dump")))
        assert envoy.get() == (200, "one")
        checks += 1
        if (replacement := ready_pod(kube, not_named=old)) is not None:
            break
        time.sleep(0.2)
    print(f"config and routing checked {checks} times between the old pod and a ready new one")
    wait_for("the proxy resynced with the replacement", lambda: synced(replacement), 60, 0.2)
    # the replacement, from a fresh list, made identical resources: nothing drained
    assert own(versions(json.loads(envoy.admin("/config_dump")))) == own(versions(before))
    assert envoy.get() == (200, "one")

    generation = status(replacement)["controlPlane"]["generation"]
    began = time.monotonic()
    kube.kubectl("apply", "-f", "-", input=virtual_service("two"))
    wait_for("a new generation",
             lambda: status(replacement)["controlPlane"]["generation"] > generation, 10, 0.02)  # fmt: skip
    wait_for("the edit ACKed", lambda: synced(replacement), 10, 0.02)
    print(f"kubectl apply → ACK by the replacement: {time.monotonic() - began:.2f} s")
    assert envoy.get() == (200, "two")


def test_helm_uninstall_leaves_only_the_crds(
    kube: Cluster, before: set[tuple[str, str, str]], installed: list[tuple[str, str, str]]
) -> None:
    """Last: uninstalls the release (the fixture's own finalizer then has nothing to do)."""
    kube.kubectl("delete", "namespace", NS, "--ignore-not-found", "--timeout=60s")
    # what the control plane made at run time, besides the chart's objects
    made = {("Secret", CONTROL, "plait-ca"), ("Lease", CONTROL, "plait-leader")}
    made |= {("ConfigMap", ns, "istio-ca-root-cert") for ns in ("default", "kube-system", CONTROL)}
    now = inventory(kube)
    assert made & now == made, made - now  # they exist, so their going away means something
    helm(kube, "uninstall", "plait", "-n", CONTROL, "--wait", "--timeout", "120s")
    kinds = sorted({k for k, _, _ in installed})
    print(f"the chart made {len(installed)} objects of kinds {', '.join(kinds)}")

    def leftovers() -> set[tuple[str, str, str]]:
        return inventory(kube) - before

    deadline = time.monotonic() + 60  # the garbage collector deletes what the owner owned
    while (left := leftovers()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"left behind: {sorted(left)}"
    left = inventory(kube)
    assert not set(installed) & left
    assert not made & left
    crds = kube.kubectl("get", "crd", "-l", "app.kubernetes.io/part-of=plait", "-o", "name")
    assert "virtualservices.networking.istio.io" in crds
