"""How pods on the test node reach Services by name and cluster IP (tests/kubenode.py).

Names: each pod's hosts file maps every Service (`NAME`, `NAME.NS`,
`NAME.NS.svc.cluster.local`) to its cluster IP (plait.podnet names), then the pod's
`hostAliases`. There is no kube-proxy for cluster IPs: the service range is an
`unreachable` route on the host (a sidecar captures what it serves; nothing leaks out),
but for

- the `kubernetes` Service, which every pod reaches through a relay on the node to the
  API server (tests/kubeapi.py ApiRelay), and
- the proxies' own connections (uid 1337: Envoy to the control plane's Service), which
  a relay per Service port sends to a ready endpoint (tests/kubeapi.py ServiceRelay).

NodePorts are another matter: tests/kubenodeports.py.
"""

from __future__ import annotations

import functools
import random
import subprocess
from ipaddress import IPv4Address, IPv4Network

from lightkube import Client
from lightkube.resources.core_v1 import Service
from lightkube.resources.discovery_v1 import EndpointSlice

import kubeapi
from kubepods import PodRunner
from kubepodstatus import RunningPod
from plait.podnet import Pod as NetPod
from plait.podnet import ServiceName, hosts_text
from plait.podnet.network import ETC_NETNS

PROXY_UID = 1337  # the mesh proxies' user (capture lets its traffic out)


class PodServices:
    """Follows Services (`service_event`) into the names and relays of every pod the
    runner runs (under the runner's lock, held while pods are added or removed)."""

    def __init__(
        self, client: Client, runner: PodRunner, api_server: tuple[str, int], service_cidr: str
    ) -> None:
        self.client, self.service_cidr = client, service_cidr
        self.gateway = IPv4Address(runner.network.gateway)
        self.pods, self.lock = runner.pods, runner.lock
        self.api_relay = kubeapi.ApiRelay(self.gateway, api_server)
        self.services: dict[str, ServiceName] = {}  # by "namespace/name": what pods resolve
        # (cluster IP, port) → the relay proxies (uid PROXY_UID) reach it through
        self.relays: dict[tuple[IPv4Address, int], kubeapi.ServiceRelay] = {}

    @property
    def api_ip(self) -> IPv4Address:
        """The `kubernetes` Service's cluster IP: the first of the range, as the API
        server allocates it."""
        return next(IPv4Network(self.service_cidr).hosts())

    def api_env(self) -> dict[str, str]:
        """What kubelet tells every container about the API server (in-cluster config)."""
        return {"KUBERNETES_SERVICE_HOST": str(self.api_ip),
                "KUBERNETES_SERVICE_PORT": str(kubeapi.HTTPS)}  # fmt: skip

    # --- a pod joins ------------------------------------------------------------------

    def join(self, running: RunningPod) -> None:
        """The pod's hosts file, and its DNAT rules to the API relay and service relays."""
        with self.lock:
            self.write_hosts(running)
        net = running.net
        subprocess.run(net.exec_argv(self.api_relay.pod_rule(self.api_ip)), check=True)
        for (ip, port), relay in list(self.relays.items()):
            self._route(net, relay, ip, port)

    def write_hosts(self, running: RunningPod) -> None:
        """In place: `ip netns exec` bind-mounts the file, pinning its inode. The pod's
        `hostAliases` come last, as the kubelet appends them. Called with the lock held."""
        net = running.net
        text = hosts_text(net.name, net.namespace, net.ip, list(self.services.values()))
        text += "".join(f"{ip}\t{' '.join(names)}\n" for ip, names in running.aliases)
        (ETC_NETNS / net.netns / "hosts").write_text(text)

    @staticmethod
    def _route(net: NetPod, relay: kubeapi.ServiceRelay, ip: IPv4Address, port: int) -> None:
        rule = relay.pod_rule(ip, port, PROXY_UID)
        subprocess.run(net.exec_argv(rule), check=False, capture_output=True)

    # --- Services ---------------------------------------------------------------------

    def service_event(self, event: str, svc: Service) -> None:
        """Keep every pod's hosts file naming each Service's cluster IP (podnet.names)."""
        meta, spec = svc.metadata, svc.spec
        assert meta is not None and spec is not None
        key = f"{meta.namespace}/{meta.name}"
        ip = spec.clusterIP
        with self.lock:
            if event == "DELETED" or not ip or ip == "None":
                changed = self.services.pop(key, None) is not None
            else:
                name = ServiceName(str(meta.name), str(meta.namespace), IPv4Address(ip))
                changed = self.services.get(key) != name
                self.services[key] = name
                self._relay(svc)
            if changed:
                for running in self.pods.values():
                    self.write_hosts(running)

    def _relay(self, svc: Service) -> None:
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
            relay = self.relays[(ip, sp.port)] = kubeapi.ServiceRelay(self.gateway, pick)
            for running in self.pods.values():
                self._route(running.net, relay, ip, sp.port)

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

    def stop(self) -> None:
        self.api_relay.stop()
        for relay in self.relays.values():
            relay.stop()
