"""The pods/status the test node reports (tests/kubepodstatus.py), in KWOK's pod-ready
shape: what the EndpointSlice controller and the kubelet's readers look at."""

from __future__ import annotations

import subprocess
from ipaddress import IPv4Address
from typing import Any, cast

from lightkube.resources.core_v1 import Pod

from kubepodstatus import RunningPod, pod_status
from plait.podnet import Pod as NetPod

POD = Pod.from_dict(
    {"metadata": {"name": "web-1", "namespace": "shop"},
     "spec": {"initContainers": [{"name": "istio-init", "image": "plait-proxy"},
                                 {"name": "istio-proxy", "image": "plait-proxy",
                                  "restartPolicy": "Always"}],
              "containers": [{"name": "app", "image": "shop"}]}}
)  # fmt: skip


class Proc:
    pid = 4242


def running_pod(*started: str) -> RunningPod:
    net = NetPod("web-1", "shop", "plait-x-shop-web-1", IPv4Address("10.9.0.5"), "plvx1")
    procs = {name: cast(subprocess.Popen[bytes], Proc()) for name in started}
    return RunningPod(net, procs=procs, started="2026-01-01T00:00:00Z")


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def test_pending_while_init_containers_run() -> None:
    status = pod_status(POD, running_pod("istio-init"), "10.9.0.1", "T")
    assert status["phase"] == "Pending"
    assert conditions(status)["Initialized"] == "False"
    assert status["podIPs"] == [{"ip": "10.9.0.5"}] and status["hostIP"] == "10.9.0.1"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}


def test_running_then_ready_with_a_native_sidecar_ready_once_started() -> None:
    running = running_pod("istio-init", "istio-proxy", "app")
    running.exited["istio-init"] = 0
    status = pod_status(POD, running, "10.9.0.1", "T")
    assert status["phase"] == "Running"
    assert conditions(status) == {"PodScheduled": "True", "Initialized": "True",
                                  "ContainersReady": "False", "Ready": "False"}  # fmt: skip
    inits = {s["name"]: s for s in status["initContainerStatuses"]}
    assert inits["istio-init"]["state"] == {"terminated": {"exitCode": 0, "finishedAt": "T"}}
    assert inits["istio-proxy"]["ready"] and inits["istio-proxy"]["started"]
    assert inits["istio-proxy"]["containerID"] == "plait://4242"
    running.ready = True
    status = pod_status(POD, running, "10.9.0.1", "T")
    assert conditions(status)["Ready"] == "True"
    assert status["containerStatuses"][0]["ready"] is True


def test_a_failed_init_container_or_agent_error_fails_the_pod() -> None:
    running = running_pod("istio-init")
    running.exited["istio-init"] = 1
    assert pod_status(POD, running, "10.9.0.1", "T")["phase"] == "Failed"
    running = running_pod()
    running.failure = "VolumeError: no such ConfigMap"
    status = pod_status(POD, running, "10.9.0.1", "T")
    assert (status["phase"], status["reason"], status["message"]) == (
        "Failed", "NodeAgentError", "VolumeError: no such ConfigMap")  # fmt: skip
