"""The test node's kube-proxy for NodePort and LoadBalancer Services (iptables mode), so
the host reaches a Service at `NODE_IP:nodePort` as it would on a cluster node.

It follows Services and EndpointSlices and keeps host nat rules in the shape kube-proxy's
iptables proxier writes (kubernetes pkg/proxy/iptables/proxier.go):

    OUTPUT ─► PLAIT<run>-SERVICES: -d NODE_IP ─► PLAIT<run>-NODEPORTS
      -p tcp --dport NODEPORT ─► PLAIT<run>-SVC-<hash>          (one per Service port)
        -m statistic --mode random --probability 1/(n-i) ─► PLAIT<run>-SEP-<hash>  (i < n-1)
        ─► the last endpoint's PLAIT<run>-SEP-<hash>              (unconditional)
          -p tcp -j DNAT --to-destination POD_IP:PORT

so each of n endpoints gets 1/n of the connections, as kube-proxy's rules give them.
Endpoints are the ready ones of the Service's EndpointSlices (`conditions.ready` unset or
true) at the slice port named as the Service port; with none ready, the serving
terminating ones (kube-proxy's fallback). A Service of type NodePort or LoadBalancer
(which has nodePorts too: there is no load balancer here, its status stays empty) gets
one rule per TCP port; every change is written in one `iptables-restore --noflush`, so a
connection never sees half a change, and an established one keeps its endpoint
(conntrack) while the rules move on to the new ones, as under kube-proxy.

Differences from kube-proxy: only connections made on the host itself are served (nat
OUTPUT; the host does not forward, so nothing comes from outside or from pods through
PREROUTING), at the node's address only (kube-proxy with `--nodeport-addresses` set to
it; not 127.0.0.1), hence no masquerading (the host's source address is already the
bridge address the pod answers); a port without endpoints has no rule, so a connection
is refused by the host rather than REJECTed by a filter rule; no cluster IPs (see
tests/kubeservices.py), no session affinity, no UDP.

Chains carry the pod network's run id, so concurrent test clusters on one host never
touch each other's rules; `stop()` (and `teardown(run)`, which `make cluster-down` calls
for a node agent that crashed) removes the OUTPUT jump and every chain of the run.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from lightkube.resources.core_v1 import Service
from lightkube.resources.discovery_v1 import EndpointSlice

PREFIX = "PLAIT"
MAX_CHAIN = 28  # iptables' limit on a chain name
SERVICE_LABEL = "kubernetes.io/service-name"
EXPOSED = ("NodePort", "LoadBalancer")


@dataclass(frozen=True, order=True)
class NodePort:
    """One port of a Service, served at the node's address on `node_port`."""

    namespace: str
    service: str
    port_name: str
    node_port: int

    def __str__(self) -> str:
        """kube-proxy's ServicePortName: `NS/NAME:PORT`."""
        return f"{self.namespace}/{self.service}:{self.port_name}"


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


def node_ports(svc: Service) -> list[NodePort]:
    """The TCP ports of a NodePort or LoadBalancer Service that have a nodePort."""
    meta, spec = svc.metadata, svc.spec
    if meta is None or spec is None or spec.type not in EXPOSED:
        return []
    return [
        NodePort(str(meta.namespace), str(meta.name), p.name or "", p.nodePort)
        for p in spec.ports or []
        if p.nodePort and (p.protocol or "TCP") == "TCP"
    ]


def endpoints(slices: Iterable[EndpointSlice], port_name: str) -> list[Endpoint]:
    """The endpoints connections to the Service port go to, sorted: the ready ones, or,
    with none ready, the serving terminating ones (as kube-proxy's CategorizeEndpoints)."""
    ready: set[Endpoint] = set()
    terminating: set[Endpoint] = set()
    for eps in slices:
        ports = [
            p.port
            for p in eps.ports or []
            if (p.name or "") == port_name and (p.protocol or "TCP") == "TCP" and p.port
        ]
        if not ports:
            continue
        for e in eps.endpoints or []:
            if not e.addresses:
                continue
            found = Endpoint(e.addresses[0], ports[0])
            cond = e.conditions
            if cond is None or cond.ready is None or cond.ready:
                ready.add(found)
            elif cond.serving and cond.terminating:
                terminating.add(found)
    return sorted(ready or terminating)


def chain(run: str, kind: str, *parts: str) -> str:
    """`PLAIT<run>-KIND[-HASH]`: a hash of `parts` (as kube-proxy's KUBE-SVC-/KUBE-SEP-)."""
    name = f"{PREFIX}{run}-{kind}"
    if parts:
        digest = hashlib.sha256("\0".join(parts).encode()).digest()
        name += "-" + base64.b32encode(digest).decode()[: MAX_CHAIN - len(name) - 1]
    return name


def probability(n: int) -> str:
    """kube-proxy's computeProbability: 1/n with 10 decimals."""
    return f"{1.0 / n:0.10f}"


@dataclass(frozen=True)
class Rules:
    """One run's nat chains and their rules (iptables-restore lines)."""

    chains: tuple[str, ...]
    rules: tuple[str, ...]

    def restore(self, stale: Iterable[str] = ()) -> str:
        """iptables-restore input (for --noflush) that makes exactly these chains: each
        named chain is flushed and refilled; `stale` chains are flushed and deleted."""
        gone = sorted(set(stale) - set(self.chains))
        lines = ["*nat", *(f":{c} - [0:0]" for c in (*self.chains, *gone)), *self.rules]
        return "\n".join([*lines, *(f"-X {c}" for c in gone), "COMMIT", ""])


def rules(run: str, node_ip: IPv4Address, table: Mapping[NodePort, Sequence[Endpoint]]) -> Rules:
    """The chains for `table` (each node port → its endpoints; none: no rule)."""
    services, nodeports = chain(run, "SERVICES"), chain(run, "NODEPORTS")
    chains = [services, nodeports]
    out = [
        f'-A {services} -m comment --comment "plait test node: nodeports" '
        f"-d {node_ip}/32 -j {nodeports}"
    ]
    for port in sorted(table):
        eps = table[port]
        if not eps:
            continue
        svc = chain(run, "SVC", str(port), "tcp")
        chains.append(svc)
        out.append(f'-A {nodeports} -m comment --comment "{port}" -m tcp -p tcp '
                   f"--dport {port.node_port} -j {svc}")  # fmt: skip
        for i, ep in enumerate(eps):
            sep = chain(run, "SEP", str(port), "tcp", str(ep))
            chains.append(sep)
            pick = f" -m statistic --mode random --probability {probability(len(eps) - i)}"
            last = i == len(eps) - 1
            out.append(f'-A {svc} -m comment --comment "{port} -> {ep}"'
                       f"{'' if last else pick} -j {sep}")  # fmt: skip
            out.append(f'-A {sep} -m comment --comment "{port}" -m tcp -p tcp '
                       f"-j DNAT --to-destination {ep}")  # fmt: skip
    return Rules(tuple(chains), tuple(out))


def _iptables(*args: str, stdin: str | None = None) -> str:
    argv = (
        ["iptables-restore", "-w", "--noflush"] if stdin is not None else ["iptables", "-w", *args]
    )
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise OSError(f"{' '.join(argv)}: {done.stderr.strip()}\n{stdin or ''}")
    return done.stdout


def _jump(run: str) -> list[str]:
    return ["OUTPUT", "-m", "comment", "--comment", f"plait test node {run}: service portals",
            "-j", chain(run, "SERVICES")]  # fmt: skip


def teardown(run: str) -> list[str]:
    """Remove every rule jumping to the run's chains, then the chains; what was removed."""
    saved = subprocess.run(
        ["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True
    ).stdout
    mine = f"{PREFIX}{run}-"
    chains = [line[1:].split()[0] for line in saved.splitlines() if line.startswith(f":{mine}")]
    for line in saved.splitlines():
        args = shlex.split(line)
        if args[:1] == ["-A"] and not args[1].startswith(mine) and f"-j {mine}" in line:
            _iptables("-t", "nat", "-D", *args[1:])
    if chains:
        _iptables(stdin=Rules((), ()).restore(stale=chains))
    return chains


class NodePortProxy:
    """Follows Services (`service_event`) and EndpointSlices (`slice_event`), from any
    thread, into the run's rules; `start()` first, `stop()` removes everything."""

    def __init__(self, run: str, node_ip: IPv4Address) -> None:
        self.run, self.node_ip = run, node_ip
        self.ports: dict[str, list[NodePort]] = {}  # by "namespace/service"
        self.slices: dict[str, dict[str, EndpointSlice]] = {}  # "namespace/service" → by name
        self.applied = rules(run, node_ip, {})
        self._lock = threading.Lock()

    def start(self) -> None:
        try:
            _iptables(stdin=self.applied.restore())
            _iptables("-t", "nat", "-I", *_jump(self.run))
        except BaseException:
            teardown(self.run)
            raise

    def service_event(self, event: str, svc: Service) -> None:
        meta = svc.metadata
        assert meta is not None
        with self._lock:
            key = f"{meta.namespace}/{meta.name}"
            found = [] if event == "DELETED" else node_ports(svc)
            if found:
                self.ports[key] = found
            else:
                self.ports.pop(key, None)
            self._sync()

    def slice_event(self, event: str, eps: EndpointSlice) -> None:
        meta = eps.metadata
        assert meta is not None
        service = (meta.labels or {}).get(SERVICE_LABEL)
        if not service:
            return
        with self._lock:
            mine = self.slices.setdefault(f"{meta.namespace}/{service}", {})
            if event == "DELETED":
                mine.pop(str(meta.name), None)
            else:
                mine[str(meta.name)] = eps
            self._sync()

    def table(self) -> dict[NodePort, list[Endpoint]]:
        """Each node port → its endpoints now."""
        return {
            port: endpoints(self.slices.get(key, {}).values(), port.port_name)
            for key, ports in self.ports.items()
            for port in ports
        }

    def _sync(self) -> None:
        wanted = rules(self.run, self.node_ip, self.table())
        if wanted != self.applied:
            _iptables(stdin=wanted.restore(stale=self.applied.chains))
            self.applied = wanted

    def stop(self) -> None:
        with self._lock:
            teardown(self.run)
