"""Per-pod name resolution: the hosts and resolv.conf files `ip netns exec` mounts.

`ip netns exec NAME` bind-mounts every file in /etc/netns/NAME/ over the same file in
/etc for the command it runs, so a per-pod `hosts` file makes `SERVICE` (same namespace),
`SERVICE.NAMESPACE` and `SERVICE.NAMESPACE.svc.cluster.local` resolve to the service's
cluster IP with glibc's ordinary `files` lookup: no DNS server to run, nothing on the
host's /etc changes. The mount pins the file's inode, so updates must rewrite the file in
place (never rename over it). resolv.conf carries Kubernetes' search path and no
nameserver: names that are not services fail fast instead of leaking to the host's DNS.
Pure: text in, text out.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

DOMAIN = "cluster.local"


@dataclass(frozen=True)
class ServiceName:
    """A service's name, its namespace and its cluster IP; or, with `host`, a ServiceEntry
    host with the address Istio's DNS proxy would answer (`namespace` is then unused)."""

    name: str
    namespace: str
    cluster_ip: IPv4Address
    host: bool = False


def hosts_text(pod: str, namespace: str, pod_ip: IPv4Address, services: list[ServiceName]) -> str:
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{pod_ip}\t{pod}",
    ]
    for svc in sorted(services, key=lambda s: (s.host, s.namespace, s.name)):
        if svc.host:
            lines.append(f"{svc.cluster_ip}\t{svc.name}")
            continue
        names = [f"{svc.name}.{svc.namespace}.svc.{DOMAIN}", f"{svc.name}.{svc.namespace}"]
        if svc.namespace == namespace:
            names.append(svc.name)
        lines.append(f"{svc.cluster_ip}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def resolv_text(namespace: str) -> str:
    return (
        "# plait pod: services resolve through /etc/hosts; no DNS server\n"
        f"search {namespace}.svc.{DOMAIN} svc.{DOMAIN} {DOMAIN}\n"
        "options ndots:5\n"
    )
