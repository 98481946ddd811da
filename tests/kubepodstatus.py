"""What the test node agent knows of a pod it runs (`RunningPod`) and the `pods/status`
it reports from that (`pod_status`, pure): the shape of KWOK's pod-ready stage, which the
real EndpointSlice controller reads (tests/kubenode.py)."""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass, field
from typing import Any

from lightkube.resources.core_v1 import Pod

from plait.podnet import Pod as NetPod


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RunningPod:
    """A pod this node runs: its network namespace and container processes."""

    net: NetPod
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    exited: dict[str, int] = field(default_factory=dict)  # init containers that ran to the end
    started: str = field(default_factory=now)
    ready: bool = False
    failure: str | None = None
    restarts: dict[str, int] = field(default_factory=dict)
    stopping: bool = False  # being removed: exits are expected, nothing restarts
    aliases: list[tuple[str, list[str]]] = field(default_factory=list)  # spec.hostAliases


def pod_status(pod: Pod, running: RunningPod, host_ip: str, at: str) -> dict[str, Any]:
    """The pod's status as of `at`: phase, IPs, conditions, each container's state."""
    spec = pod.spec
    assert spec is not None
    inits = spec.initContainers or []
    initialized = all(
        c.name in running.procs and (c.restartPolicy == "Always" or running.exited.get(c.name) == 0)
        for c in inits
    )
    failed = running.failure is not None or any(code != 0 for code in running.exited.values())
    done = all(c.name in running.exited for c in spec.containers)
    flag = "True" if running.ready else "False"

    def state(name: str) -> dict[str, Any]:
        if name in running.exited:
            return {"terminated": {"exitCode": running.exited[name], "finishedAt": at}}
        if name in running.procs:
            return {"running": {"startedAt": running.started}}
        return {"waiting": {"reason": "PodInitializing"}}

    def statuses(containers: Any, *, init: bool) -> list[dict[str, Any]]:
        # an init container that runs on (a native sidecar) is ready once started
        def ready(name: str) -> bool:
            if not init:
                return running.ready
            return name in running.procs and name not in running.exited

        return [
            {
                "name": c.name, "image": c.image or "", "imageID": "",
                "restartCount": running.restarts.get(c.name, 0),
                "ready": ready(c.name),
                "started": c.name in running.procs,
                "containerID": f"plait://{running.procs[c.name].pid}" if c.name in running.procs else None,
                "state": state(c.name),
            }
            for c in containers
        ]  # fmt: skip

    phase = "Failed" if failed else "Succeeded" if done else "Running" if initialized else "Pending"
    status: dict[str, Any] = {
        "phase": phase,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": str(running.net.ip),
        "podIPs": [{"ip": str(running.net.ip)}],
        "startTime": running.started,
        "conditions": [
            {"type": t, "status": s, "lastTransitionTime": at}
            for t, s in (
                ("PodScheduled", "True"),
                ("Initialized", "True" if initialized else "False"),
                ("ContainersReady", flag),
                ("Ready", flag),
            )
        ],
        "containerStatuses": statuses(spec.containers, init=False),
        "initContainerStatuses": statuses(inits, init=True),
    }
    if running.failure is not None:
        status["message"] = running.failure
        status["reason"] = "NodeAgentError"
    return status
