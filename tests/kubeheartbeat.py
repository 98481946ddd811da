"""The test node's Node object and its heartbeat (tests/kubenode.py): registered with
its `podCIDR` and address, then kept Ready (status conditions) and alive (a Lease in
kube-node-lease renewed every HEARTBEAT_S) as a kubelet does, so the node-lifecycle
controller leaves it schedulable.

The Node reports the bridge's address as its InternalIP (and the pods' hostIP): the
host reaches it, and the test node's NodePorts (tests/kubenodeports.py) are served there.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from lightkube import ApiError, Client
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.core_v1 import NodeSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Node
from lightkube.types import PatchType

from kubepodstatus import now

HEARTBEAT_S = 5.0
LEASE_S = 40


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_status(name: str, address: IPv4Address, at: str) -> dict[str, Any]:
    """The Node's status: Ready, no pressure, its addresses, room for 110 pods."""
    cond = [
        ("Ready", "True", "KubeletReady"),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID"),
    ]
    resources = {"cpu": "16", "memory": "64Gi", "pods": "110"}
    return {
        "conditions": [
            {"type": t, "status": s, "reason": r, "lastHeartbeatTime": at, "lastTransitionTime": at}
            for t, s, r in cond
        ],
        "addresses": [
            {"type": "InternalIP", "address": str(address)},
            {"type": "Hostname", "address": name},
        ],
        "capacity": resources,
        "allocatable": resources,
        "nodeInfo": {
            "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "plait://test",
            "kernelVersion": os.uname().release, "kubeProxyVersion": "", "kubeletVersion": "v1.37.2",
            "machineID": "", "operatingSystem": "linux", "osImage": "plait test node", "systemUUID": "",
        },
    }  # fmt: skip


class NodeHeartbeat:
    """`register()` the Node, then `run(stop)` beats until `stop` is set; `delete()`."""

    def __init__(
        self, client: Client, name: str, pod_cidr: IPv4Network, address: IPv4Address
    ) -> None:
        self.client, self.name, self.pod_cidr, self.address = client, name, pod_cidr, address

    def register(self) -> None:
        labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux"}
        cidr = str(self.pod_cidr)
        self.client.create(
            Node(
                metadata=ObjectMeta(name=self.name, labels=labels),
                spec=NodeSpec(podCIDR=cidr, podCIDRs=[cidr]),
            )
        )
        self.beat()

    def beat(self) -> None:
        status = node_status(self.name, self.address, now())
        self.client.patch(Node.Status, self.name, {"status": status}, patch_type=PatchType.MERGE)
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_S,
                "renewTime": _micro_now()}  # fmt: skip
        try:
            self.client.patch(Lease, self.name, {"spec": spec}, namespace="kube-node-lease",
                              patch_type=PatchType.MERGE)  # fmt: skip
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            self.client.create(
                Lease(
                    metadata=ObjectMeta(name=self.name, namespace="kube-node-lease"),
                    spec=LeaseSpec(holderIdentity=self.name, leaseDurationSeconds=LEASE_S),
                )
            )

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                self.beat()
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                print(f"node agent: heartbeat failed ({exc})")

    def delete(self) -> None:
        self.client.delete(Node, self.name)
