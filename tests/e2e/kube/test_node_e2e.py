"""The test-only node agent (tests/kubenode.py) with the real control plane: a Deployment
applied with kubectl becomes pods the scheduler binds to the node, the agent runs them in
their own network namespaces, and the real EndpointSlice controller lists their IPs, which
answer HTTP; the host reaches the NodePort Service at the Node's InternalIP, balanced
over both pods by kube-proxy-shaped rules that follow the endpoints; scaling down and
deleting remove pods, processes, namespaces and rules."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubecluster import Cluster
from kubenode import NodeAgent, running_node
from loopthread import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pods are network namespaces: root only")

NAMESPACE = "web"


def deployment(replicas: int) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": NAMESPACE},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 2,
                        "containers": [
                            {
                                "name": "web",
                                # no command: the node runs the image's entrypoint (IMAGES)
                                "image": "docker.io/library/python:3.12-slim",
                                "args": ["-m", "http.server", "8080", "--bind", "0.0.0.0"],
                                "ports": [{"name": "http", "containerPort": 8080}],
                                "env": [
                                    {
                                        "name": "POD_IP",
                                        "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                                    }
                                ],
                                "readinessProbe": {"tcpSocket": {"port": "http"}},
                            }
                        ],
                    },
                },
            },
        }
    )


SERVICE = json.dumps(
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": "http"}],
        },
    }
)


def ready_endpoints(kube: Cluster) -> set[str]:
    slices = json.loads(
        kube.kubectl(
            "get",
            "endpointslices",
            "-n",
            NAMESPACE,
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "json",
        )
    )
    return {
        address
        for s in slices["items"]
        for e in s.get("endpoints") or []
        if (e.get("conditions") or {}).get("ready")
        for address in e["addresses"]
    }


def node_port_url(kube: Cluster) -> str:
    """http://NODE_IP:NODEPORT/: the Node's InternalIP as it reports it, the Service's
    nodePort as the API server allocated it."""
    return f"http://{kube.node_port(NAMESPACE, 'web')}/"


def dnat_counts(run: str) -> dict[str, int]:
    """Connections DNATed by the run's NodePort rules, by destination (rule counters)."""
    saved = subprocess.run(["iptables-save", "-c", "-t", "nat"], capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    counts = {}
    for line in saved.splitlines():
        found = re.match(rf"\[(\d+):\d+\] -A PLAIT{run}-SEP-.* --to-destination (\S+)", line)
        if found:
            counts[found[2]] = int(found[1])
    return counts


def run_chains(run: str) -> list[str]:
    saved = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    return [line for line in saved.splitlines() if f"PLAIT{run}-" in line]


def get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except OSError:
        return 0


def netns_list() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def node(kube: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeAgent]:
    with running_node(kube.kubeconfig, tmp_path_factory.mktemp("node")) as agent:
        yield agent
    assert not any(n.startswith(f"plait-{agent.network.run}-") for n in netns_list())
    assert not run_chains(agent.network.run)  # the OUTPUT jump and every chain


def test_deployment_pods_run_and_fill_endpointslices(
    kube: Cluster, node: NodeAgent, tmp_path: Path
) -> None:
    kube.kubectl("create", "namespace", NAMESPACE)
    wait_for(
        "the default ServiceAccount",
        lambda: kube.kubectl(
            "get", "sa", "default", "-n", NAMESPACE, "--ignore-not-found", "-o", "name"
        ),
    )
    kube.kubectl("apply", "-f", "-", input=SERVICE)
    kube.kubectl("apply", "-f", "-", input=deployment(2))

    def two_ready() -> set[str] | None:
        found = ready_endpoints(kube)
        return found if len(found) == 2 else None

    endpoints = wait_for("two ready endpoints", two_ready)
    items = json.loads(kube.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json"))["items"]
    # a pod the ReplicaSet replaced (one that failed under load) may still be listed
    pods = [
        p for p in items
        if any(c["type"] == "Ready" and c["status"] == "True"
               for c in p["status"].get("conditions", []))
    ]  # fmt: skip
    others = [(p["metadata"]["name"], p["status"]) for p in items if p not in pods]
    assert {p["status"]["podIP"] for p in pods} == endpoints, others
    assert all(p["spec"]["nodeName"] == node.name for p in pods)
    assert isinstance(endpoints, set)
    for address in endpoints:
        assert ipaddress.ip_address(address) in node.network.pod_cidr
        with urllib.request.urlopen(f"http://{address}:8080/", timeout=5) as answer:
            assert answer.status == 200

    # names: `web` resolves to the Service's cluster IP inside each pod (no kube-proxy: the
    # cluster IP itself is unreachable until a sidecar captures it, and never leaves the host)
    cluster_ip = kube.kubectl(
        "get", "service", "web", "-n", NAMESPACE, "-o", "jsonpath={.spec.clusterIP}"
    )
    # the agent's Service watch writes the names; it may trail the pods' readiness
    for running in list(node.pods.values()):
        for name in ("web", "web.web", "web.web.svc.cluster.local", "kubernetes.default"):
            expected = cluster_ip if name.startswith("web") else "10.96.0.1"

            def resolved(netns: str = running.net.netns, name: str = name) -> list[str]:
                found = subprocess.run(
                    ["ip", "netns", "exec", netns, "getent", "hosts", name],
                    capture_output=True, text=True,
                )  # fmt: skip
                return found.stdout.split()[:1]

            assert wait_for(f"{name} in {running.net.netns}", resolved, 30) == [expected]
    routes = subprocess.run(["ip", "route", "get", cluster_ip], capture_output=True, text=True)
    assert routes.returncode != 0 and "no route to host" in routes.stderr.lower()

    # the NodePort from the host: new connections spread over both pods (each SEP rule's
    # counter; P(40 connections all to one of two) = 2^-39), as kube-proxy's 1/2 rule does
    url = node_port_url(kube)
    assert url.startswith(f"http://{node.address}:")
    wait_for("the NodePort answering", lambda: get_status(url) == 200, 15)
    statuses = [get_status(url) for _ in range(40)]
    assert statuses == [200] * 40
    counts = dnat_counts(node.network.run)
    assert set(counts) == {f"{a}:8080" for a in endpoints}, counts
    assert all(n > 0 for n in counts.values()), counts
    print(f"40 connections to the NodePort, by pod: {counts}")

    # scale down: one pod leaves the endpoints, its processes and namespace are gone
    kube.kubectl("scale", "deployment", "web", "-n", NAMESPACE, "--replicas=1")
    wait_for("one ready endpoint", lambda: len(ready_endpoints(kube)) == 1)
    wait_for(
        "one pod left on the node", lambda: len([k for k in node.pods if k.startswith("web/")]) == 1
    )
    assert len([n for n in netns_list() if n.startswith(f"plait-{node.network.run}-web-")]) == 1
    # the rules follow the endpoints: one pod left, every connection to it
    [left] = ready_endpoints(kube)
    wait_for("the NodePort rules on the one pod",
             lambda: set(dnat_counts(node.network.run)) == {f"{left}:8080"})  # fmt: skip
    assert not [r for r in run_chains(node.network.run) if "statistic" in r]
    assert get_status(url) == 200

    kube.kubectl("delete", "deployment", "web", "-n", NAMESPACE)
    wait_for("no pods", lambda: not kube.kubectl("get", "pods", "-n", NAMESPACE, "-o", "name"))
    wait_for("no NodePort endpoint rule", lambda: not dnat_counts(node.network.run))
    assert get_status(url) == 0  # nothing there: refused
    wait_for("no web pods on the node", lambda: not [k for k in node.pods if k.startswith("web/")])
    assert not [n for n in netns_list() if n.startswith(f"plait-{node.network.run}-web-")]


def pod_with_init_and_sidecar(namespace: str) -> str:
    shared = {"name": "work", "mountPath": "/var/run/work"}
    py = "/usr/bin/python3"  # any uid can run it (the venv's python may live under /root)
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "steps", "namespace": namespace},
            "spec": {
                "securityContext": {"runAsUser": 1337},
                "volumes": [{"name": "work", "emptyDir": {}}],
                "initContainers": [
                    {"name": "prepare", "image": "busybox", "volumeMounts": [shared],
                     "command": ["sh", "-c", "echo prepared > /var/run/work/init"]},
                    {"name": "sidecar", "image": "proxy", "restartPolicy": "Always",
                     "command": [py, "-m", "http.server", "9090"],
                     "readinessProbe": {"httpGet": {"port": 9090, "path": "/"}}},
                ],
                "containers": [
                    {"name": "app", "image": "app", "volumeMounts": [shared],
                     "command": ["sh", "-c",
                                 "cp /var/run/secrets/kubernetes.io/serviceaccount/token /var/run/work/; "
                                 f"exec {py} -m http.server 8080 --directory /var/run/work"],
                     "readinessProbe": {"tcpSocket": {"port": 8080}}},
                ],
            },
        }
    )  # fmt: skip


def test_init_containers_native_sidecars_and_a_bound_token(kube: Cluster, node: NodeAgent) -> None:
    kube.kubectl("create", "namespace", "steps")
    wait_for(
        "the default ServiceAccount",
        lambda: kube.kubectl(
            "get", "sa", "default", "-n", "steps", "--ignore-not-found", "-o", "name"
        ),
    )
    kube.kubectl("apply", "-f", "-", input=pod_with_init_and_sidecar("steps"))

    def ready() -> dict[str, object] | None:
        pod = json.loads(kube.kubectl("get", "pod", "steps", "-n", "steps", "-o", "json"))
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        return pod if conditions.get("Ready") == "True" else None

    pod = wait_for("the pod to be Ready", ready)
    assert isinstance(pod, dict)
    inits = {s["name"]: s for s in pod["status"]["initContainerStatuses"]}
    assert inits["prepare"]["state"]["terminated"]["exitCode"] == 0
    assert "running" in inits["sidecar"]["state"] and inits["sidecar"]["ready"] is True
    ip = pod["status"]["podIP"]
    with urllib.request.urlopen(f"http://{ip}:8080/init", timeout=5) as answer:
        assert answer.read() == b"prepared\n"  # the init container ran first, in the same volume
    with urllib.request.urlopen(f"http://{ip}:9090/", timeout=5) as answer:
        assert answer.status == 200  # the native sidecar still runs
    with urllib.request.urlopen(f"http://{ip}:8080/token", timeout=5) as answer:
        token = answer.read().decode()
    review = json.loads(
        kube.kubectl(
            "create",
            "-o",
            "json",
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenReview",
                    "spec": {"token": token},
                }
            ),
        )  # fmt: skip
    )
    assert review["status"]["authenticated"] is True
    assert review["status"]["user"]["username"] == "system:serviceaccount:steps:default"
    assert review["status"]["user"]["extra"]["authentication.kubernetes.io/pod-name"] == ["steps"]
    kube.kubectl("delete", "pod", "steps", "-n", "steps", "--wait=true", "--timeout=30s")
    wait_for("the pod gone from the node", lambda: "steps/steps" not in node.pods)


def simple_pod(name: str, script: str, restart: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "runs"},
            "spec": {
                "restartPolicy": restart,
                "containers": [
                    {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
                ],
            },
        }
    )


def pod_status(kube: Cluster, name: str) -> dict[str, Any]:
    return dict(json.loads(kube.kubectl("get", "pod", name, "-n", "runs", "-o", "json"))["status"])


def test_containers_restart_by_policy_and_finished_pods_succeed(
    kube: Cluster, node: NodeAgent
) -> None:
    kube.kubectl("create", "namespace", "runs")
    wait_for(
        "the default ServiceAccount",
        lambda: kube.kubectl(
            "get", "sa", "default", "-n", "runs", "--ignore-not-found", "-o", "name"
        ),
    )
    kube.kubectl("apply", "-f", "-", input=simple_pod("crashes", "sleep 0.3; exit 3", "Always"))
    kube.kubectl("apply", "-f", "-", input=simple_pod("once", "exit 0", "Never"))
    kube.kubectl("apply", "-f", "-", input=simple_pod("fails", "exit 4", "Never"))

    def restarted_twice() -> bool:
        statuses = pod_status(kube, "crashes").get("containerStatuses") or []
        return bool(statuses) and statuses[0]["restartCount"] >= 2

    wait_for("two restarts", restarted_twice)
    wait_for("`once` to succeed", lambda: pod_status(kube, "once").get("phase") == "Succeeded")
    wait_for("`fails` to fail", lambda: pod_status(kube, "fails").get("phase") == "Failed")
    state = pod_status(kube, "fails")["containerStatuses"][0]["state"]
    assert state["terminated"]["exitCode"] == 4
    kube.kubectl("delete", "pods", "--all", "-n", "runs", "--wait=true", "--timeout=30s")
    wait_for(
        "the pods gone from the node", lambda: not [k for k in node.pods if k.startswith("runs/")]
    )
