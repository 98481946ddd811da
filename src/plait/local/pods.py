"""Transparent mode's pods for `plait up --transparent`: one network namespace per
replica on the run's bridge (`podnet`), the capture rules applied inside it before the
app starts, and a cluster IP per Service whose name resolves in every pod.

Envoy runs in the pod as root with GID 1337: Istio's capture rules exempt the proxy by
UID *or* GID, and keeping root's UID lets Envoy read the agent's files and SDS socket
without handing them to another user. Its admin API listens on the pod IP (port 15000,
left out of inbound capture) so that the agent on the host reaches it.

Failure model: everything is recorded in `podnet`'s state file before it is made, so
`close()` (plait up's stop), `plait down` after a crash and a failed start all remove it
with `podnet.teardown`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from plait.capture.settings import PROXY_UID
from plait.errors import StartupError
from plait.model.registry import Resolution, Service
from plait.podnet import Pod, PodDns, PodNetwork, teardown
from plait.podnet.names import CLUSTER_FIRST

ADMIN_PORT = 15000
PROXY_PORTS = (ADMIN_PORT, 15020, 15021, 15090)
STATE_FILE = "podnet.json"


def state_path(run_dir: Path) -> Path:
    return run_dir / STATE_FILE


def meshed(services: Iterable[Service]) -> list[Service]:
    """The services that get a cluster IP: Kubernetes Services (not ServiceEntries), but
    headless ones (`clusterIP: None`), whose pods apps reach at the pods' own addresses."""
    return [
        s
        for s in services
        if not s.external and s.resolution == Resolution.REGISTRY and not s.headless
    ]


def entry_hosts(services: Iterable[Service]) -> list[Service]:
    """ServiceEntry hosts that get an address in pods, as Istio's DNS proxy with address
    auto-allocation gives them: every host but wildcards."""
    return [s for s in services if s.external and not s.hostname.startswith("*")]


class Pods:
    """One run's pod network, as `LocalMesh` uses it."""

    def __init__(self, run_dir: Path) -> None:
        teardown(state_path(run_dir))  # what an earlier run that was killed left behind
        self.net = PodNetwork.create(state_path(run_dir))

    @property
    def host_address(self) -> str:
        """The host's address on the bridge: where pods reach the control plane."""
        return str(self.net.gateway)

    def sync_services(self, services: Iterable[Service]) -> dict[str, str]:
        """Give every meshed service a cluster IP and every ServiceEntry host an address
        (and drop those gone); hostname → IP."""
        services = list(services)
        wanted = {(s.namespace, s.name): s.hostname for s in meshed(services)}
        wanted |= {("*host", s.hostname): s.hostname for s in entry_hosts(services)}
        for key in list(self.net.services):
            namespace, name = key.split("/", 1)
            if (namespace, name) not in wanted:
                self.net.remove_service(name, namespace)
        return {
            host: str(
                self.net.add_host(host)
                if namespace == "*host"  # not a namespace name: a ServiceEntry host
                else self.net.add_service(name, namespace)
            )
            for (namespace, name), host in sorted(wanted.items())
        }

    async def add(
        self, name: str, namespace: str, capture: bool = True, dns: PodDns = CLUSTER_FIRST
    ) -> Pod:
        """A new pod, with the capture rules in force (before anything runs in it) unless
        `capture` is False (a pod without a sidecar), and its template's DNS settings."""
        pod = await asyncio.to_thread(self.net.add_pod, name, namespace, dns)
        if not capture:
            return pod
        argv = pod.exec_argv(
            [sys.executable, "-m", "plait", "capture", "apply"]
            + [arg for port in PROXY_PORTS for arg in ("--proxy-port", str(port))]
        )
        done = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await done.communicate()
        if done.returncode != 0:
            raise StartupError(
                f"pod {namespace}/{name}: plait capture apply exited {done.returncode}: "
                f"{out.decode(errors='replace').strip()}"
            )
        return pod

    async def remove(self, pod: Pod) -> None:
        await asyncio.to_thread(self.net.remove_pod, pod)

    def close(self) -> None:
        self.net.close()


def envoy_wrapper(pod: Pod) -> tuple[str, ...]:
    """Run Envoy in `pod` with the proxy GID (exempt from capture), keeping root's UID,
    and with the sidecar's hosts file (no ServiceEntry addresses: `podnet.names`)."""
    return tuple(pod.proxy_prefix(PROXY_UID))  # Istio gives istio-proxy the same UID and GID


def listens(pid: int | None, port: int) -> bool:
    """Whether a socket in `pid`'s network namespace listens on TCP `port`
    (/proc/PID/net/tcp is the namespace's table; a connect from the host would be captured)."""
    if pid is None:
        return False
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (
                len(fields) > 3
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                return True
    return False


def remove_leftovers(run_dir: Path) -> Sequence[str]:
    """Tear down what a run that did not stop cleanly left (plait down after a crash)."""
    return teardown(state_path(run_dir))
