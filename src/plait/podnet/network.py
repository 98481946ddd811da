"""Pods as network namespaces on a bridge: create, resolve names, tear down.

A `PodNetwork` is one run's: a bridge with the gateway address of a free /24, one
network namespace per pod joined to it by a veth pair (the pod's end is `eth0`, with its
own IP and a default route via the bridge), loopback up, a per-pod hosts file and
resolv.conf, and the pod's sidecar's own hosts file beside the state file (see `names`).
Names carry a random run id, so parallel runs and tests never collide; the
pod and service ranges are chosen, under a host-wide lock, among /24s that overlap no
host route, and reserved by a route while the run lives.

Failure model: everything made is first written to the state file (`state`), so
`teardown(path)` removes every namespace, veth, bridge, route and /etc/netns entry of a
run even after the process that made them crashed; processes still inside a pod's
namespace are killed first (they can only be the run's own). Removing the namespace
removes its iptables rules with it. Linux only; needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from plait.errors import PodNetworkError
from plait.podnet.addresses import ClusterIPAllocator, free_subnets, routed_networks
from plait.podnet.names import CLUSTER_FIRST, PodDns, ServiceName, hosts_text, resolv_text
from plait.podnet.state import StateFile

LOCK_PATH = Path("/run/plait/podnet.lock")
ETC_NETNS = Path("/etc/netns")
HOST_RESOLV = Path("/etc/resolv.conf")
PROXY_ETC = "proxy-etc"  # beside the state file: each pod's sidecar hosts file
TIMEOUT_S = 30.0


def _ip(*args: str, check: bool = True) -> str:
    try:
        done = subprocess.run(
            ["ip", *args], capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except FileNotFoundError as exc:
        raise PodNetworkError("the `ip` command (iproute2) is not installed") from exc
    if check and done.returncode != 0:
        raise PodNetworkError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _routes(attempts: int = 5) -> list[dict[str, object]]:
    """Every IPv4 route of every table, as `ip -j` gives them. A dump the kernel
    interrupts (routes changing meanwhile: other pod networks coming and going) can come
    out as broken JSON: it is asked again."""
    for _ in range(attempts - 1):
        try:
            routes: list[dict[str, object]] = json.loads(
                _ip("-j", "-4", "route", "show", "table", "all")
            )
            return routes
        except json.JSONDecodeError:
            continue
    last: list[dict[str, object]] = json.loads(_ip("-j", "-4", "route", "show", "table", "all"))
    return last


@contextlib.contextmanager
def _host_lock() -> Iterator[None]:
    """Serialise range choice across processes: choose, then reserve, then release."""
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_PATH.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _slug(text: str) -> str:
    """At most 30 characters; a longer name keeps a hash of itself, so two pods whose
    names share their first 30 characters (a ReplicaSet's) get different namespaces."""
    slug = re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-") or "pod"
    if len(slug) <= 30:
        return slug
    return f"{slug[:23]}-{hashlib.sha256(text.encode()).hexdigest()[:6]}"


@dataclass(frozen=True)
class Pod:
    """One pod: its name and Kubernetes namespace, network namespace, IP and host veth."""

    name: str
    namespace: str
    netns: str
    ip: IPv4Address
    host_veth: str
    dns: PodDns = CLUSTER_FIRST
    proxy_hosts: Path | None = None  # its sidecar's hosts file (`names`)

    def exec_argv(self, argv: Sequence[str], uid: int | None = None) -> list[str]:
        """argv that runs `argv` in the pod (with its hosts file), as `uid` if given."""
        drop = []
        if uid is not None:
            drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        return ["ip", "netns", "exec", self.netns, *drop, *argv]

    def proxy_prefix(self, gid: int) -> list[str]:
        """argv prefix that runs the sidecar's Envoy in the pod with the proxy GID and its
        own hosts file, bind-mounted over the pod's inside the mount namespace that
        `ip netns exec` makes for it (so nothing else sees it)."""
        drop = ["setpriv", f"--regid={gid}", "--clear-groups"]
        if self.proxy_hosts is None:
            return ["ip", "netns", "exec", self.netns, *drop]
        mount = 'mount --bind "$0" /etc/hosts && exec "$@"'
        return ["ip", "netns", "exec", self.netns, "sh", "-c", mount, str(self.proxy_hosts), *drop]


@dataclass
class PodNetwork:
    """One run's bridge, pods and cluster IPs; `create` makes it, `close` removes it."""

    state: StateFile
    bridge: str
    pod_cidr: IPv4Network
    service_cidr: IPv4Network
    pods: dict[str, Pod] = field(default_factory=dict)
    cluster_ips: ClusterIPAllocator = field(init=False)
    services: dict[str, ServiceName] = field(default_factory=dict)
    _made: int = field(default=0, init=False)  # pods made: veth names are never reused
    _last_ip: IPv4Address | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.cluster_ips = ClusterIPAllocator(self.service_cidr)

    @property
    def run(self) -> str:
        return self.state.run

    @property
    def gateway(self) -> IPv4Address:
        return self.pod_cidr.network_address + 1

    @classmethod
    def create(cls, state_path: Path) -> PodNetwork:
        """A new bridge on a free /24 and a reserved /24 of cluster IPs; records to state_path.

        On failure, everything made so far is removed before the error propagates.
        """
        run = secrets.token_hex(3)
        state = StateFile(state_path, run)
        state.save()
        try:
            with _host_lock():
                taken = routed_networks(_routes())
                start = secrets.randbelow(1 << 15)
                free = list(itertools.islice(free_subnets(taken, start), 2))
                if len(free) < 2:
                    raise PodNetworkError("no two free /24s left in 10.128.0.0/9 for pods")
                pod_cidr, service_cidr = free
                bridge = f"plb{run}"
                state.extra.update(
                    podCidr=str(pod_cidr), serviceCidr=str(service_cidr), bridge=bridge
                )
                state.record("bridge", name=bridge)
                _ip("link", "add", bridge, "type", "bridge")
                _ip(
                    "addr",
                    "add",
                    f"{pod_cidr.network_address + 1}/{pod_cidr.prefixlen}",
                    "dev",
                    bridge,
                )
                _ip("link", "set", bridge, "up")
                state.record("route", dst=str(service_cidr))
                _ip("route", "add", "unreachable", str(service_cidr))
        except BaseException:
            teardown(state_path)
            raise
        return cls(state=state, bridge=bridge, pod_cidr=pod_cidr, service_cidr=service_cidr)

    def _free_ip(self) -> IPv4Address:
        """The next free address after the last one given, wrapping (as CNI's host-local
        IPAM does): a pod's address is not handed to the next pod the moment it is freed,
        while a terminating endpoint with that address may still be listed."""
        used = {pod.ip for pod in self.pods.values()} | {self.gateway}
        hosts = list(self.pod_cidr.hosts())
        start = 0 if self._last_ip is None else hosts.index(self._last_ip) + 1
        for ip in hosts[start:] + hosts[:start]:
            if ip not in used:
                self._last_ip = ip
                return ip
        raise PodNetworkError(f"no free pod IP left in {self.pod_cidr}")

    def add_pod(self, name: str, namespace: str = "default", dns: PodDns = CLUSTER_FIRST) -> Pod:
        """A network namespace joined to the bridge, with loopback, eth0, an IP and a route,
        and name resolution per `dns` (`names`).

        Raises PodNetworkError if the run already has a pod of that name and namespace.
        """
        netns = f"plait-{self.run}-{_slug(namespace)}-{_slug(name)}"
        if netns in self.pods:
            raise PodNetworkError(f"pod {namespace}/{name} exists already ({netns})")
        ip = self._free_ip()
        self._made += 1
        host_veth, peer = f"plv{self.run}{self._made:x}", f"plp{self.run}{self._made:x}"
        self.state.record("netns", name=netns, pod=netns)
        _ip("netns", "add", netns)
        with _host_lock():
            if not ETC_NETNS.exists():
                self.state.record("dir", path=str(ETC_NETNS))
            self.state.record("etc", path=str(ETC_NETNS / netns), pod=netns)
            (ETC_NETNS / netns).mkdir(parents=True, exist_ok=True)
        proxy_etc = self.state.path.parent / PROXY_ETC / netns
        self.state.record("etc", path=str(proxy_etc), pod=netns)
        proxy_etc.mkdir(parents=True, exist_ok=True)
        self.state.record("link", name=host_veth, pod=netns)
        _ip("link", "add", host_veth, "type", "veth", "peer", "name", peer)
        _ip("link", "set", host_veth, "master", self.bridge)
        _ip("link", "set", host_veth, "up")
        _ip("link", "set", peer, "netns", netns)
        inside = ("-n", netns)
        _ip(*inside, "link", "set", peer, "name", "eth0")
        _ip(*inside, "addr", "add", f"{ip}/{self.pod_cidr.prefixlen}", "dev", "eth0")
        _ip(*inside, "link", "set", "eth0", "up")
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "route", "add", "default", "via", str(self.gateway))
        pod = Pod(name, namespace, netns, ip, host_veth, dns, proxy_etc / "hosts")
        self.pods[netns] = pod
        self._write_names(pod)
        return pod

    def remove_pod(self, pod: Pod) -> None:
        """Kill what runs in the pod and remove its namespace, veth and /etc/netns entry;
        its IP is free for the next pod."""
        mine = [e for e in self.state.made if e.get("pod") == pod.netns]
        for entry in reversed(mine):
            _remove(entry)
        self.state.made = [e for e in self.state.made if e.get("pod") != pod.netns]
        self.state.save()
        self.pods.pop(pod.netns, None)

    def add_service(self, name: str, namespace: str = "default") -> IPv4Address:
        """The service's cluster IP (stable per run); every pod's hosts file now names it."""
        key = f"{namespace}/{name}"
        ip = self.cluster_ips.allocate(key)
        self.services[key] = ServiceName(name, namespace, ip)
        for pod in self.pods.values():
            self._write_names(pod)
        return ip

    def add_host(self, hostname: str) -> IPv4Address:
        """A ServiceEntry host's address (stable per run), as Istio's DNS proxy with
        address auto-allocation answers it; every pod's hosts file now names it."""
        key = f"*host/{hostname}"
        ip = self.cluster_ips.allocate(key)
        self.services[key] = ServiceName(hostname, "", ip, host=True)
        for pod in self.pods.values():
            self._write_names(pod)
        return ip

    def remove_service(self, name: str, namespace: str = "default") -> None:
        """Forget the service (or, with namespace `*host`, the ServiceEntry host `name`):
        its name leaves every hosts file, its IP becomes free."""
        key = f"{namespace}/{name}"
        self.services.pop(key, None)
        self.cluster_ips.release(key)
        for pod in self.pods.values():
            self._write_names(pod)

    def _write_names(self, pod: Pod) -> None:
        """Rewrite the pod's hosts and resolv.conf in place (the netns exec mount pins inodes)."""
        etc = ETC_NETNS / pod.netns
        services = list(self.services.values())
        (etc / "hosts").write_text(hosts_text(pod.name, pod.namespace, pod.ip, services))
        if pod.proxy_hosts is not None:
            text = hosts_text(pod.name, pod.namespace, pod.ip, services, proxy=True)
            pod.proxy_hosts.write_text(text)
        host = ""
        if pod.dns.policy == "Default":
            with contextlib.suppress(OSError):
                host = HOST_RESOLV.read_text()
        (etc / "resolv.conf").write_text(resolv_text(pod.namespace, pod.dns, host))

    def close(self) -> list[str]:
        """Remove everything this run made (see `teardown`); what was removed."""
        return teardown(self.state.path)


def _pids_in(netns: str) -> list[int]:
    out = _ip("netns", "pids", netns, check=False)
    return [int(pid) for pid in out.split() if pid.isdigit()]


def _netns_exists(netns: str) -> bool:
    return (Path("/run/netns") / netns).exists()


def _remove(entry: dict[str, str]) -> None:
    kind = entry.get("kind")
    if kind == "netns":
        name = entry["name"]
        if not _netns_exists(name):
            return
        for pid in _pids_in(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _ip("netns", "del", name)
    elif kind in ("link", "bridge"):
        if Path("/sys/class/net", entry["name"]).exists():
            _ip("link", "del", entry["name"])
    elif kind == "route":
        _ip("route", "del", "unreachable", entry["dst"], check=False)
    elif kind == "etc":
        shutil.rmtree(entry["path"], ignore_errors=True)
    elif kind == "dir":
        with _host_lock(), contextlib.suppress(OSError):
            Path(entry["path"]).rmdir()  # only if empty: another run may still use it


def teardown(state_path: Path) -> list[str]:
    """Remove everything the state file records, newest first, then the file itself.

    Keeps going past a failed removal and raises PodNetworkError naming every failure at
    the end (the state file is then kept, so a second teardown can retry).
    """
    if not state_path.exists():
        return []
    state = StateFile.load(state_path)
    failures: list[str] = []
    for entry in reversed(state.made):
        try:
            _remove(entry)
        except PodNetworkError as exc:
            failures.append(str(exc))
    if failures:
        raise PodNetworkError("teardown left things behind:\n" + "\n".join(failures))
    state_path.unlink(missing_ok=True)
    return [f"{e['kind']} {e.get('name') or e.get('dst') or e.get('path')}" for e in state.made]
