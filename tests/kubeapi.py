"""How pods on the test node reach the API server: a kube-proxy for the `kubernetes`
Service alone (tests/kubenode.py).

The API server listens on the host's loopback only, which a pod's network namespace
cannot reach. Each pod gets one DNAT rule in its own namespace (nat OUTPUT: the Service's
cluster IP and port 443 → the node's bridge address and the relay's port), and the relay,
a thread of the node agent on that bridge address, copies bytes to the API server. TLS
passes through untouched and the client asked for the cluster IP, which the API server's
certificate names (tests/kubecluster.py), so in-cluster clients verify it as usual. The
rule goes with the pod's namespace; the relay with the node agent.

Differences from a cluster: a pod whose sidecar captures traffic (istio-init) reaches the
API server around it, as the DNAT rule comes first in nat OUTPUT.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from ipaddress import IPv4Address

HTTPS = 443


class Relay:
    """TCP relay from `listen` (a free port) to `upstream()`, asked at each connection
    (a test's stand-in for a Service's cluster IP: its current endpoint)."""

    def __init__(self, listen: IPv4Address, upstream: Callable[[], tuple[str, int]]) -> None:
        self.upstream = upstream
        self.sock = socket.create_server((str(listen), 0))
        self.address = (listen, int(self.sock.getsockname()[1]))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="api-relay", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return  # closed by stop()
            try:
                upstream = socket.create_connection(self.upstream(), timeout=5)
            except Exception:  # noqa: BLE001 - no endpoint or unreachable: refuse this one
                client.close()
                continue
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)


class ApiRelay(Relay):
    """The relay to the API server on the node's bridge address."""

    def __init__(self, listen: IPv4Address, upstream: tuple[str, int]) -> None:
        super().__init__(listen, lambda: upstream)

    def pod_rule(self, cluster_ip: IPv4Address) -> list[str]:
        """The iptables argv (run in the pod's namespace) sending cluster_ip:443 here."""
        host, port = self.address
        return ["iptables", "-w", "-t", "nat", "-I", "OUTPUT", "-p", "tcp", "-d",
                f"{cluster_ip}/32", "--dport", str(HTTPS), "-j", "DNAT",
                "--to-destination", f"{host}:{port}"]  # fmt: skip


class ServiceRelay(Relay):
    """A Service port's relay for the mesh's own proxies (uid `proxy_uid`): Envoy dials
    the control plane (`plaitd.istio-system.svc:15010`) by its cluster IP, which no
    sidecar captures for it; `upstream()` picks a ready endpoint at each connection.
    Apps' traffic to cluster IPs is left to their sidecar (capture), as before."""

    def pod_rule(self, cluster_ip: IPv4Address, port: int, proxy_uid: int) -> list[str]:
        host, relay_port = self.address
        return ["iptables", "-w", "-t", "nat", "-I", "OUTPUT", "-p", "tcp", "-d",
                f"{cluster_ip}/32", "--dport", str(port), "-m", "owner", "--uid-owner",
                str(proxy_uid), "-j", "DNAT", "--to-destination", f"{host}:{relay_port}"]  # fmt: skip


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy until either side ends, then close both (the other pipe then ends too)."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
