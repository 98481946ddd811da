"""A test-only node agent: the kubelet, CNI, container runtime and kube-proxy of the test
cluster (tests/kubecluster.py), small enough to read. One part per module:

| part | module |
|---|---|
| the Node: registered with a free /24 `podCIDR` (plait.podnet picks it) and the bridge's address as InternalIP, kept Ready, its Lease renewed | tests/kubeheartbeat.py |
| the pods bound to the node: network namespaces on a bridge, volumes, containers as processes, probes, restarts, status in KWOK's pod-ready shape | tests/kubepods.py, tests/kubepodstatus.py, tests/kubevolumes.py |
| Services from pods: names in each pod's hosts file; the API server and (for the proxies, uid 1337) each Service port through relays on the node | tests/kubeservices.py, tests/kubeapi.py |
| NodePort and LoadBalancer Services from the host: kube-proxy's iptables rules at `NODE_IP:nodePort` | tests/kubenodeports.py |
| the list-watch loops feeding them | tests/kubewatch.py |

Concurrency: threads for the heartbeat and the watches of Pods, Services and
EndpointSlices, and one per pod that starts and supervises it; `stop()` ends them, stops
every pod, removes the NodePort rules and the bridge, and deletes the Node. Linux, root.

    python tests/kubenode.py KUBECONFIG WORKDIR     # until SIGTERM or SIGINT
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from lightkube import ApiError, Client, KubeConfig
from lightkube.resources.core_v1 import Pod, Service
from lightkube.resources.discovery_v1 import EndpointSlice

from kubeheartbeat import NodeHeartbeat
from kubenodeports import NodePortProxy
from kubepods import IMAGES, PodRunner, image_name
from kubepodstatus import RunningPod
from kubeservices import PROXY_UID, PodServices
from kubewatch import watch_forever
from plait.podnet import PodNetwork

__all__ = ["IMAGES", "PROXY_UID", "NodeAgent", "RunningPod", "image_name", "main"]


class NodeAgent:
    """Runs the pods bound to `name` (see the module docstring); `start()` then `stop()`."""

    def __init__(
        self,
        kubeconfig: Path,
        workdir: Path,
        name: str = "node-1",
        service_cidr: str = "10.96.0.0/16",
    ) -> None:
        self.name = name
        self.workdir = workdir
        self.kubeconfig = kubeconfig
        self.client = self._client()
        self.network = PodNetwork.create(workdir / "podnet.json")
        single = KubeConfig.from_file(str(kubeconfig)).get()
        server = urllib.parse.urlsplit(single.cluster.server if single else "")
        self.service_cidr = service_cidr
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []  # the heartbeat's
        self._handling: list[threading.Lock] = []  # one per watch (`kubewatch`)
        self.runner = PodRunner(self.client, self.network, workdir, name, self._stop)
        api_server = (server.hostname or "127.0.0.1", server.port or 443)
        self.services = PodServices(self.client, self.runner, api_server, service_cidr)
        self.runner.join, self.runner.env = self.services.join, self.services.api_env
        self.heartbeat = NodeHeartbeat(self.client, name, self.network.pod_cidr, self.address)
        self.node_ports = NodePortProxy(self.network.run, self.address)

    def _client(self) -> Client:
        return Client(KubeConfig.from_file(str(self.kubeconfig)), field_manager="plait-node")

    @property
    def address(self) -> IPv4Address:
        """The node's InternalIP: the bridge's address, where NodePorts are served."""
        return IPv4Address(self.network.gateway)

    @property
    def pods(self) -> dict[str, RunningPod]:
        """The pods this node runs, by "namespace/name"."""
        return self.runner.pods

    @property
    def images(self) -> dict[str, list[str]]:
        return self.runner.images

    def start(self) -> None:
        """Register the Node and its Lease, then heartbeat, run pods and serve NodePorts
        in the background."""
        try:
            self.heartbeat.register()
            self.node_ports.start()
            # no kube-proxy for cluster IPs: one that no sidecar captures must not leave
            # the host (another test cluster on this host may have made the route: share it)
            shown = ["ip", "route", "show", "exact", self.service_cidr, "type", "unreachable"]
            if not subprocess.run(shown, capture_output=True, text=True, check=True).stdout:
                self.network.state.record("route", dst=self.service_cidr)
                subprocess.run(["ip", "route", "add", "unreachable", self.service_cidr], check=True)
        except BaseException:
            self.node_ports.stop()
            self.network.close()
            self.services.stop()
            raise

        def services(event: str, svc: Service) -> None:
            self.services.service_event(event, svc)
            self.node_ports.service_event(event, svc)

        heartbeat = threading.Thread(
            target=lambda: self.heartbeat.run(self._stop), name=f"{self.name}-heartbeat",
            daemon=True,
        )  # fmt: skip
        heartbeat.start()
        self._threads.append(heartbeat)
        watches: dict[str, tuple[Any, Callable[[str, Any], None], dict[str, Any]]] = {
            "pods": (Pod, self.runner.sync, {"fields": {"spec.nodeName": self.name}}),
            "services": (Service, services, {}),
            "endpointslices": (EndpointSlice, self.node_ports.slice_event, {}),
        }
        for what, (kind, handle, selectors) in watches.items():
            lock = threading.Lock()
            self._handling.append(lock)
            thread = threading.Thread(
                target=watch_forever,
                # a client of its own: a watch's long-lived TLS stream shares no connection
                # pool with the other threads' requests (a shared one logged SSL record
                # errors, "WRONG_VERSION_NUMBER", now and then)
                args=(self._client(), kind, handle, self._stop, lock),
                kwargs=selectors,
                name=f"{self.name}-{what}",
                daemon=True,
            )
            thread.start()

    def stop(self) -> None:
        """Stop the threads and every pod, remove the NodePort rules, the network and the
        Node."""
        self._stop.set()
        for lock in self._handling:  # no watch handler runs or will run (`kubewatch`)
            with lock:
                pass
        for thread in self._threads:
            thread.join(timeout=10)
        try:
            self.runner.stop_all()
        finally:
            try:
                self.node_ports.stop()
            finally:
                self.network.close()
                self.services.stop()
                with contextlib.suppress(ApiError, OSError):
                    self.heartbeat.delete()
                self.client.close()


def main(argv: list[str]) -> int:
    """`kubenode.py KUBECONFIG WORKDIR`: run the agent until SIGTERM or SIGINT."""
    if len(argv) != 2:
        print("usage: kubenode.py KUBECONFIG WORKDIR", file=sys.stderr)
        return 2
    workdir = Path(argv[1])
    workdir.mkdir(parents=True, exist_ok=True)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    agent = NodeAgent(Path(argv[0]), workdir)
    agent.start()
    print(f"node {agent.name} ready: pods in {agent.network.pod_cidr}", flush=True)
    done.wait()
    agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


@contextlib.contextmanager
def running_node(kubeconfig: Path, workdir: Path) -> Iterator[NodeAgent]:
    """A started `NodeAgent` (as node-1), stopped when the block ends, however it ends:
    what the kube e2e modules' `node` fixtures hold, for one test or one module."""
    agent = NodeAgent(kubeconfig, workdir)
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()
