"""Per-pod name resolution: the hosts and resolv.conf files `ip netns exec` mounts.

`ip netns exec NAME` bind-mounts every file in /etc/netns/NAME/ over the same file in
/etc for the command it runs, so a per-pod `hosts` file makes `SERVICE` (same namespace),
`SERVICE.NAMESPACE`, `SERVICE.NAMESPACE.svc` and `SERVICE.NAMESPACE.svc.cluster.local` resolve to the service's
cluster IP with glibc's ordinary `files` lookup: no DNS server to run, nothing on the
host's /etc changes. The mount pins the file's inode, so updates must rewrite the file in
place (never rename over it). resolv.conf carries Kubernetes' search path and no
nameserver: names that are not services fail fast instead of leaking to the host's DNS;
a pod template's `dnsPolicy`/`dnsConfig` add nameservers, searches and options as the
kubelet would (`PodDns`).

The sidecar's Envoy gets its own hosts file (`hosts_text(..., proxy=True)`): without the
ServiceEntry hosts, whose addresses stand in for Istio's DNS proxy and are meant for apps
only. Envoy resolves a `resolution: DNS` entry through the pod's nameservers, as a
sidecar does through the cluster's DNS; seeing the app's answer would make it connect to
the address that only its own capture serves. Pure: text in, text out.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

DOMAIN = "cluster.local"
MAX_NAMESERVERS = 3  # the kubelet's and glibc's limit


@dataclass(frozen=True)
class PodDns:
    """A pod template's DNS settings (`dnsPolicy`, `dnsConfig`), as the kubelet applies
    them: `None` uses only the config; the cluster policies (`ClusterFirst`,
    `ClusterFirstWithHostNet`) and `Default` (the host's resolv.conf, `host`) come first
    and the config's nameservers and searches follow, its options replace same-named ones."""

    policy: str = "ClusterFirst"
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[tuple[str, str | None], ...] = ()


CLUSTER_FIRST = PodDns()  # Kubernetes' default policy, with no dnsConfig


@dataclass(frozen=True)
class ServiceName:
    """A service's name, its namespace and its cluster IP; or, with `host`, a ServiceEntry
    host with the address Istio's DNS proxy would answer (`namespace` is then unused)."""

    name: str
    namespace: str
    cluster_ip: IPv4Address
    host: bool = False


def hosts_text(
    pod: str,
    namespace: str,
    pod_ip: IPv4Address,
    services: list[ServiceName],
    proxy: bool = False,
) -> str:
    """The pod's hosts file; with `proxy`, its sidecar's (no ServiceEntry hosts)."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{pod_ip}\t{pod}",
    ]
    for svc in sorted(services, key=lambda s: (s.host, s.namespace, s.name)):
        if svc.host and proxy:
            continue
        if svc.host:
            lines.append(f"{svc.cluster_ip}\t{svc.name}")
            continue
        # NAME.NS.svc too: Kubernetes DNS answers it through the search path (the chart's
        # control-plane address, plaitd.istio-system.svc), which a hosts file does not apply
        names = [f"{svc.name}.{svc.namespace}.svc.{DOMAIN}", f"{svc.name}.{svc.namespace}.svc",
                 f"{svc.name}.{svc.namespace}"]  # fmt: skip
        if svc.namespace == namespace:
            names.append(svc.name)
        lines.append(f"{svc.cluster_ip}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def _parse_resolv(text: str) -> tuple[list[str], list[str], list[str]]:
    """nameserver, search and options entries of a resolv.conf."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            servers.append(words[1])
        elif words and words[0] in ("search", "domain"):
            searches = words[1:]
        elif words and words[0] == "options":
            options += words[1:]
    return servers, searches, options


def resolv_text(namespace: str, dns: PodDns = CLUSTER_FIRST, host: str = "") -> str:
    """The pod's resolv.conf; `host` is the host's own (for `dnsPolicy: Default`)."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if dns.policy == "Default":
        servers, searches, options = _parse_resolv(host)
    elif dns.policy != "None":
        searches = [f"{namespace}.svc.{DOMAIN}", f"svc.{DOMAIN}", DOMAIN]
        options = ["ndots:5"]
    servers = list(dict.fromkeys([*servers, *dns.nameservers]))[:MAX_NAMESERVERS]
    searches = list(dict.fromkeys([*searches, *dns.searches]))
    named = {o.split(":", 1)[0]: o for o in options}
    for name, value in dns.options:
        named[name] = name if value is None else f"{name}:{value}"
    lines = ["# plait pod: services resolve through /etc/hosts"]
    lines += [f"nameserver {ip}" for ip in servers]
    if searches:
        lines.append(f"search {' '.join(searches)}")
    if named:
        lines.append(f"options {' '.join(named.values())}")
    return "\n".join(lines) + "\n"
