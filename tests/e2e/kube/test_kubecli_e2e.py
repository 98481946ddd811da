"""`plait proxy-status`, `proxy-config` and `describe` against the real API server.

The chart's control plane is installed with helm into a namespace of its own and run by
the test node agent (as in test_helm_e2e): the API server's service proxy only goes to
endpoints that are Pods with that IP (kube-apiserver's `isValidAddress`), so a Service
without selector pointing at a process on the host is refused. A real Envoy on the host is
the sidecar of the `web` pod, connected over mTLS. The commands, given only `--kubeconfig`
and `-i NAMESPACE`, reach the control plane through the API server: proxy-status lists the
Envoy as synced, proxy-config shows the clusters the Envoy itself has, describe shows the
VirtualService's route and the live replica. A namespace without a control plane is exit
3; a user RBAC refuses is exit 8; both one line.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
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

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pods are network namespaces: root only")

RUN = uuid.uuid4().hex[:6]
NS, CP = f"cli-{RUN}", f"cli-cp-{RUN}"  # the session's cluster is shared with other modules
HOST = f"web.{NS}.svc.cluster.local"
CLUSTER = f"outbound|80||{HOST}"
CHART = Path(__file__).resolve().parents[3] / "charts" / "plait"
PLAIT = str(Path(sys.executable).with_name("plait"))
T = TypeVar("T")


def wait_for(what: str, get: Callable[[], T | None], timeout: float = 60.0, step: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step)


def plait(kubeconfig: Path, *args: str, namespace: str = CP) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return subprocess.run(
        [PLAIT, *args, "--kubeconfig", str(kubeconfig), "-i", namespace],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip


def helm(kube: Cluster, *args: str) -> str:
    done = subprocess.run(
        [str(kube.bin / "helm"), "--kubeconfig", str(kube.kubeconfig), *args],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"helm {' '.join(args)}: {done.stderr}"
    return done.stdout


def available(kube: Cluster, namespace: str, name: str) -> bool:
    out = kube.kubectl("get", "deployment", name, "-n", namespace, "-o", "json")
    conditions = json.loads(out).get("status", {}).get("conditions", [])
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


def running(kube: Cluster, namespace: str, app: str) -> dict[str, Any] | None:
    """A Ready pod of `app` with its IP."""
    pods = json.loads(
        kube.kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "json")
    )
    for pod in pods["items"]:
        conditions = pod.get("status", {}).get("conditions", [])
        if not pod["metadata"].get("deletionTimestamp") and any(
            c["type"] == "Ready" and c["status"] == "True" for c in conditions
        ):
            return dict(pod)
    return None


def workload() -> str:
    """The Service `web` (a Deployment of one pod) and a VirtualService for /api."""
    virtual_service = {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"hosts": ["web"], "http": [{
            "match": [{"uri": {"prefix": "/api"}}],
            "route": [{"destination": {"host": "web"}}],
        }]},
    }  # fmt: skip
    return json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [*web_app(NS), virtual_service]}
    )


@pytest.fixture(scope="module")
def node(kube: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeAgent]:
    with running_node(kube.kubeconfig, tmp_path_factory.mktemp("node")) as agent:
        yield agent


def node_logs(node: NodeAgent) -> str:
    logs = sorted((node.workdir / "logs").glob(f"{CP}_plaitd-*"))
    return "\n".join(f"--- {f.name} ---\n{f.read_text(errors='replace')[-3000:]}" for f in logs)


@pytest.fixture(scope="module")
def mesh(
    kube: Cluster, node: NodeAgent, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Envoy]:
    """The chart's control plane in namespace CP (helm, run by the node agent) and an Envoy
    on the host as the sidecar of the `web` pod, connected to it over mTLS."""
    kube.apply_crds()
    for ns in (CP, NS):
        kube.kubectl("create", "namespace", ns)
    envoy: Envoy | None = None
    relay: Relay | None = None
    try:
        helm(kube, "install", "plait", str(CHART), "-n", CP, "--set", "gateway.enabled=false")
        wait_for(
            "the ServiceAccount",
            lambda: kube.kubectl("get", "sa", "default", "-n", NS, "-o", "name"),
        )
        kube.kubectl("apply", "-f", "-", input=workload())
        wait_for("the Deployment plaitd Available", lambda: available(kube, CP, "plaitd"), 120)
        wait_for("the Deployment web Available", lambda: available(kube, NS, "web"), 60)
        workdir = tmp_path_factory.mktemp("kubecli")
        secret = json.loads(kube.kubectl("get", "secret", "plait-ca", "-n", CP, "-o", "json"))
        ca_dir = workdir / "ca"
        ca_dir.mkdir(mode=0o700)
        for name, value in secret["data"].items():
            (ca_dir / name).write_bytes(base64.b64decode(value))
            (ca_dir / name).chmod(0o600)

        def xds() -> tuple[str, int]:
            pod = running(kube, CP, "plaitd")
            assert pod is not None, "no ready plaitd pod"
            return pod["status"]["podIP"], 15010

        relay = Relay(IPv4Address("127.0.0.1"), xds)
        web = running(kube, NS, "web")
        assert web is not None
        envoy = Envoy(
            workdir, relay.address[1], web["metadata"]["name"], {"app": "web"}, ca_dir,
            namespace=NS, host=HOST,
        )  # fmt: skip
        yield envoy
    except BaseException:
        print(node_logs(node))
        if envoy is not None:
            print(envoy.diagnostics())
        raise
    finally:
        if envoy is not None:
            envoy.stop()
        if relay is not None:
            relay.stop()
        kube.kubectl("delete", "namespace", NS, "--wait=false", check=False)
        if "plait" in helm(kube, "list", "-q", "-n", CP).split():
            helm(kube, "uninstall", "plait", "-n", CP, "--wait", "--timeout", "120s")
        kube.kubectl("delete", "namespace", CP, "--wait=false", check=False)


def envoy_clusters(envoy: Envoy) -> set[str]:
    dump = json.loads(envoy.admin("/config_dump"))
    return {
        entry["cluster"]["name"]
        for config in dump["configs"]
        for entry in config.get("dynamic_active_clusters", [])
    }


def test_proxy_status_lists_the_connected_envoy_as_synced(kube: Cluster, mesh: Envoy) -> None:
    envoy = mesh

    def in_sync() -> dict[str, Any] | None:
        done = plait(kube.kubeconfig, "proxy-status", "-o", "json")
        out = json.loads(done.stdout) if done.returncode in (0, 5) else None
        return out if done.returncode == 0 and out and out["proxies"] else None

    out = wait_for("proxy-status through the API server: in sync", in_sync, 30)
    [row] = out["proxies"]
    assert row["name"] == envoy.proxy.id
    assert row["connected"] and row["inSync"]
    assert set(row["sync"].values()) <= {"SYNCED", "NOT SENT"} and "SYNCED" in row["sync"].values()
    table = plait(kube.kubeconfig, "proxy-status")
    assert table.returncode == 0, table.stderr
    assert "SYNCED" in table.stdout and envoy.proxy.id.split("~")[1][:20] in table.stdout


def test_proxy_config_shows_the_clusters_the_envoy_has(kube: Cluster, mesh: Envoy) -> None:
    envoy = mesh
    wait_for("Envoy's cluster for web", lambda: CLUSTER in envoy_clusters(envoy), 30)
    done = plait(kube.kubeconfig, "proxy-config", "clusters", "web", "-o", "json")
    assert done.returncode == 0, done.stderr
    section = json.loads(done.stdout)
    assert section["@type"].endswith("ClustersConfigDump")
    shown = {e["cluster"]["name"] for e in section["dynamic_active_clusters"]}
    assert CLUSTER in shown
    assert shown == envoy_clusters(envoy)  # what the control plane sends is what Envoy has
    table = plait(kube.kubeconfig, "proxy-config", "cluster", "web")
    assert table.returncode == 0, table.stderr
    assert "outbound|80||web" in table.stdout and "EDS" in table.stdout
    routes = plait(kube.kubeconfig, "proxy-config", "route", "web")
    assert routes.returncode == 0 and "/api" in routes.stdout, routes.stdout + routes.stderr


def test_describe_shows_the_services_routes(kube: Cluster, mesh: Envoy) -> None:
    done = plait(kube.kubeconfig, "describe", f"web.{NS}", "--path", "/api/x", "-o", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["service"]["hostname"] == HOST
    [vs] = data["virtualServices"]
    assert vs["name"].endswith("web") and vs["rules"] and "/api" in vs["rules"][0]
    assert [c["cluster"] for c in data["route"]["clusters"]] == [CLUSTER]
    envoy = mesh
    [live] = data["live"]  # from the control plane's /status
    assert live["name"] == envoy.proxy.id and live["sync"]["cds"] == "SYNCED"
    missed = plait(kube.kubeconfig, "describe", f"web.{NS}", "--path", "/other", "-o", "json")
    assert json.loads(missed.stdout)["route"]["route"] is None
    table = plait(kube.kubeconfig, "describe", f"web.{NS}")
    assert table.returncode == 0, table.stderr
    assert "VirtualServices" in table.stdout and "Route" in table.stdout


def test_no_control_plane_and_a_refusal_are_one_line_with_their_exit_codes(
    kube: Cluster, mesh: Envoy, tmp_path: Path
) -> None:
    missing = plait(kube.kubeconfig, "proxy-status", namespace=f"none-{RUN}")
    assert missing.returncode == 3, missing.stdout + missing.stderr
    assert missing.stderr.count("\n") == 1 and "no control plane found" in missing.stderr
    assert f"none-{RUN}/plaitd" in missing.stderr

    # a service account with no role: the API server refuses services/proxy
    kube.kubectl("create", "serviceaccount", "nobody", "-n", NS)
    token = kube.kubectl("create", "token", "nobody", "-n", NS).strip()
    config = yaml.safe_load(kube.kubeconfig.read_text())  # the CA data is inline
    config["users"] = [{"name": "nobody", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "nobody"
    nobody = tmp_path / "nobody.kubeconfig"
    nobody.write_text(yaml.safe_dump(config))
    for args in (("proxy-status",), ("proxy-config", "clusters", "web")):
        refused = plait(nobody, *args)
        assert refused.returncode == 8, refused.stdout + refused.stderr
        assert refused.stderr.count("\n") == 1 and "forbidden" in refused.stderr.lower()
