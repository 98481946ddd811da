"""Scoping: which services, VirtualServices and DestinationRules a sidecar may see.

Istio's semantics (pilot/pkg/model/sidecar.go, push_context.go):

* **exportTo** on a VirtualService, DestinationRule or ServiceEntry (and a Service's
  `networking.istio.io/exportTo` annotation): `*` everyone, `.` the resource's own
  namespace, a name that namespace, `~` no one; unset is everyone (the mesh defaults
  `defaultServiceExportTo` & co. are `*`, and plait reads no other).
* **Which Sidecar** applies to a proxy: one in its namespace whose `workloadSelector`
  selects it, else its namespace's Sidecar without selector, else the root namespace's
  Sidecar without selector (the mesh default); none: the proxy sees everything exported
  to its namespace. Among several candidates of one rank, the first by name wins (Istio
  says the behaviour is undefined; `analysis` warns).
* **Egress hosts** `ns/dnsName`: `ns` is matched against the namespace of the config that
  declares the host (the Service, ServiceEntry or VirtualService), `*` any, `.` the
  proxy's own namespace (also in the root namespace's default Sidecar), `~` none; the
  dnsName is `*`, `*.suffix` or exact. Only what is exported to the proxy's namespace can
  be imported. No `egress` means `*/*`.
* An egress listener with a `port` imports only that port of each service; clusters are
  the union over listeners. The route table for a port uses the listener of that port if
  there is one, else the catch-all (the listener without port).
* The destinations of imported VirtualServices are imported too (routes need their
  clusters), with the listener's port or every port of the destination.
* `outboundTrafficPolicy.mode` of the Sidecar, else the mesh's, decides what happens to
  hosts the proxy does not see (`translate.egress`).

DestinationRules: among the rules for a host, only those exported to the proxy's
namespace are candidates; `model.policy.choose` then picks as for everyone (the service's
namespace, then the root namespace, ...). Gateways are not scoped (Istio applies Sidecar
to sidecars only; exportTo to gateways is not applied by plait either).

Pure: no I/O. A `Scope` is a frozen value; the translator memoizes it per (namespace,
Sidecar) and shares the clusters and route tables built from it among the proxies that
have the same one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from plait.api import DestinationRule, Loaded, VirtualService
from plait.api.sidecar import ANY_NAMESPACE, NO_NAMESPACE, OWN_NAMESPACE, EgressListener, Sidecar
from plait.model.meshsettings import OutboundMode
from plait.model.registry import Service

EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"
"""A Kubernetes Service's exportTo (comma-separated), as Istio reads it."""

Key = tuple[str, str]
"""(namespace, name) of a resource."""

T = TypeVar("T")


def exported_to(export_to: Sequence[str], owner_namespace: str, namespace: str) -> bool:
    """Whether a resource of `owner_namespace` with `export_to` is visible in `namespace`."""
    if not export_to:
        return True
    return any(
        value in (ANY_NAMESPACE, namespace)
        or (value == OWN_NAMESPACE and owner_namespace == namespace)
        for value in export_to
    )


def restricted(export_to: Sequence[str]) -> bool:
    """Whether `export_to` hides the resource from some namespace."""
    return bool(export_to) and ANY_NAMESPACE not in export_to


def parse_annotation(value: str) -> tuple[str, ...]:
    """`networking.istio.io/exportTo: ".,other"` → ('.', 'other')."""
    return tuple(v.strip() for v in value.split(",") if v.strip())


def host_matches(pattern: str, hostname: str) -> bool:
    """An egress dnsName (`*`, `*.suffix`, exact) against a hostname (which may itself be a
    ServiceEntry wildcard: then the pattern must cover it)."""
    if pattern == "*":
        return True
    if hostname.startswith("*"):
        return pattern == hostname or (
            pattern.startswith("*") and hostname[1:].endswith(pattern[1:])
        )
    if pattern.startswith("*"):
        return hostname.endswith(pattern[1:])
    return pattern == hostname


@dataclass(frozen=True)
class EgressHost:
    """One `ns/dnsName` with `.` replaced by the proxy's namespace."""

    namespace: str  # '*', '~' or a namespace name
    name: str

    @staticmethod
    def parse(text: str, proxy_namespace: str) -> EgressHost:
        namespace, _, name = text.partition("/")
        return EgressHost(proxy_namespace if namespace == OWN_NAMESPACE else namespace, name)

    def imports(self, namespace: str, hostname: str) -> bool:
        """Whether this host imports `hostname` declared by config in `namespace`."""
        if self.namespace == NO_NAMESPACE:
            return False
        if self.namespace != ANY_NAMESPACE and self.namespace != namespace:
            return False
        return host_matches(self.name, hostname)


CATCH_ALL = EgressListener(hosts=("*/*",))


@dataclass(frozen=True)
class Scope:
    """What the proxies of one namespace under one Sidecar (or none) see.

    `clusters[hostname]`: the service ports it gets clusters for; `routes[port]`: the
    hostnames it routes on that port, `None` key for every port without a listener of its
    own; `virtual_services[hostname]`: the (namespace, name) of the VirtualService (bound
    to `mesh`) that answers for a host it routes. It holds no resource, only what was
    chosen, so a scope stays valid across edits that keep the hosts, destinations and
    visibility of every resource (`translate.reuse.scope_context`)."""

    namespace: str
    sidecar: Key | None
    outbound_mode: OutboundMode
    clusters: Mapping[str, frozenset[int]] = field(default_factory=dict)
    routes: Mapping[int | None, frozenset[str]] = field(default_factory=dict)
    virtual_services: Mapping[str, Key] = field(default_factory=dict)

    def routes_port(self, hostname: str, port: int) -> bool:
        """Whether the outbound table has a virtual host for `hostname:port`."""
        if port not in self.clusters.get(hostname, ()):
            return False
        listener = self.routes.get(port)
        if listener is None:
            listener = self.routes.get(None, frozenset())
        return hostname in listener


@dataclass(frozen=True)
class ScopeInputs:
    """What a scope is built from (the snapshot's parts, so this module needs no snapshot)."""

    services: Mapping[str, Service]
    services_by_namespace: Mapping[str, tuple[Service, ...]]
    virtual_services: Sequence[Loaded[VirtualService]]  # bound to mesh, in snapshot order
    vs_hosts: Mapping[Key, tuple[str, ...]]  # resolved hosts of each of them
    vs_destinations: Mapping[Key, tuple[str, ...]]  # resolved destination hosts
    mesh_mode: OutboundMode
    # positions in `virtual_services` by resolved host and by namespace
    vs_by_host: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    vs_by_namespace: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @staticmethod
    def build(
        services: Mapping[str, Service],
        virtual_services: Sequence[Loaded[VirtualService]],
        vs_hosts: Mapping[Key, tuple[str, ...]],
        vs_destinations: Mapping[Key, tuple[str, ...]],
        mesh_mode: OutboundMode,
    ) -> ScopeInputs:
        by_namespace: dict[str, list[Service]] = {}
        for service in services.values():
            by_namespace.setdefault(service.namespace, []).append(service)
        vs_by_host: dict[str, list[int]] = {}
        vs_by_namespace: dict[str, list[int]] = {}
        for position, item in enumerate(virtual_services):
            key = _key(item.resource)
            vs_by_namespace.setdefault(key[0], []).append(position)
            for host in vs_hosts.get(key, ()):
                vs_by_host.setdefault(host, []).append(position)
        return ScopeInputs(
            services=services,
            services_by_namespace={ns: tuple(v) for ns, v in by_namespace.items()},
            virtual_services=virtual_services,
            vs_hosts=vs_hosts,
            vs_destinations=vs_destinations,
            mesh_mode=mesh_mode,
            vs_by_host={h: tuple(v) for h, v in vs_by_host.items()},
            vs_by_namespace={ns: tuple(v) for ns, v in vs_by_namespace.items()},
        )


def build_scope(inputs: ScopeInputs, namespace: str, sidecar: Loaded[Sidecar] | None) -> Scope:
    """The scope of proxies in `namespace` under `sidecar` (None: no Sidecar applies)."""
    spec = sidecar.resource.spec if sidecar is not None else None
    listeners = (spec.egress if spec is not None else ()) or (CATCH_ALL,)
    mode = inputs.mesh_mode
    if spec is not None and spec.outbound_traffic_policy is not None:
        mode = OutboundMode(spec.outbound_traffic_policy.mode)
    clusters: dict[str, set[int]] = {}
    routes: dict[int | None, frozenset[str]] = {}
    chosen_vs: dict[str, Key] = {}
    for listener in listeners:
        hosts = [EgressHost.parse(h, namespace) for h in listener.hosts]
        port = listener.port.number if listener.port is not None else None
        imported = _import_services(inputs, namespace, hosts, port)
        for service, ports in imported:
            clusters.setdefault(service.hostname, set()).update(ports)
        routes[port] = frozenset(s.hostname for s, _ in imported)
        for item in _import_virtual_services(inputs, namespace, hosts):
            key = _key(item.resource)
            for host in inputs.vs_hosts.get(key, ()):
                chosen_vs.setdefault(host, key)
            for dest in inputs.vs_destinations.get(key, ()):
                target = inputs.services.get(dest)
                if target is None or not _visible(target, namespace):
                    continue
                ports = _ports(target, port)
                if ports:
                    clusters.setdefault(dest, set()).update(ports)
    return Scope(
        namespace=namespace,
        sidecar=_key(sidecar.resource) if sidecar is not None else None,
        outbound_mode=mode,
        clusters={h: frozenset(p) for h, p in clusters.items()},
        routes=routes,
        virtual_services={h: v for h, v in chosen_vs.items() if h in clusters},
    )


def _key(resource: VirtualService | Sidecar | DestinationRule) -> Key:
    return resource.metadata.namespace, resource.metadata.name


def _visible(service: Service, namespace: str) -> bool:
    return exported_to(service.export_to, service.namespace, namespace)


def _ports(service: Service, port: int | None) -> frozenset[int]:
    if port is None:
        return frozenset(p.port for p in service.ports)
    return frozenset([port]) if service.port(port) is not None else frozenset()


def _pools(
    hosts: Sequence[EgressHost],
    exact: Callable[[str], Iterable[T]],
    in_namespace: Callable[[str], Iterable[T]],
    every: Iterable[T],
) -> Iterator[Iterable[T]]:
    """For each egress host, what it may import: by its exact name, its namespace, or all
    (so exact hosts cost a lookup, not a scan of the mesh)."""
    for host in hosts:
        if host.namespace == NO_NAMESPACE:
            continue
        if "*" not in host.name:
            yield exact(host.name)
        elif host.namespace == ANY_NAMESPACE:
            yield every
        else:
            yield in_namespace(host.namespace)


def _candidates(inputs: ScopeInputs, hosts: Sequence[EgressHost]) -> Iterable[Service]:
    """The services any of `hosts` may import."""

    def exact(name: str) -> Iterable[Service]:
        found = inputs.services.get(name)
        return (found,) if found is not None else ()

    def in_namespace(ns: str) -> Iterable[Service]:
        return inputs.services_by_namespace.get(ns, ())

    pools = _pools(hosts, exact, in_namespace, inputs.services.values())
    return {s.hostname: s for pool in pools for s in pool}.values()


def _import_services(
    inputs: ScopeInputs, namespace: str, hosts: Sequence[EgressHost], port: int | None
) -> list[tuple[Service, frozenset[int]]]:
    out: list[tuple[Service, frozenset[int]]] = []
    for service in _candidates(inputs, hosts):
        if not _visible(service, namespace):
            continue
        if not any(h.imports(service.namespace, service.hostname) for h in hosts):
            continue
        ports = _ports(service, port)
        if ports:
            out.append((service, ports))
    return out


def _vs_candidates(inputs: ScopeInputs, hosts: Sequence[EgressHost]) -> list[int]:
    """Positions of the VirtualServices any of `hosts` may import, in snapshot order."""
    pools = _pools(
        hosts,
        lambda name: inputs.vs_by_host.get(name, ()),
        lambda ns: inputs.vs_by_namespace.get(ns, ()),
        range(len(inputs.virtual_services)),
    )
    return sorted({position for pool in pools for position in pool})


def _import_virtual_services(
    inputs: ScopeInputs, namespace: str, hosts: Sequence[EgressHost]
) -> list[Loaded[VirtualService]]:
    """The VirtualServices (bound to mesh, exported to `namespace`) that `hosts` import:
    one of their hosts is imported from the VirtualService's namespace."""
    out: list[Loaded[VirtualService]] = []
    for position in _vs_candidates(inputs, hosts):
        item = inputs.virtual_services[position]
        vs = item.resource
        ns = vs.metadata.namespace
        if not exported_to(vs.spec.export_to, ns, namespace):
            continue
        own = inputs.vs_hosts.get(_key(vs), ())
        if any(h.imports(ns, host) for h in hosts for host in own):
            out.append(item)
    return out


def destinations(vs: VirtualService) -> list[str]:
    """The destination hosts a VirtualService names, as written (routes, mirrors; http, tcp,
    tls)."""
    spec = vs.spec
    hosts = [d.destination.host for rule in spec.http for d in rule.route]
    hosts += [rule.mirror.host for rule in spec.http if rule.mirror is not None]
    hosts += [m.destination.host for rule in spec.http for m in rule.mirrors]
    hosts += [d.destination.host for rule in spec.tcp for d in rule.route]
    hosts += [d.destination.host for rule in spec.tls for d in rule.route]
    return list(dict.fromkeys(hosts))


def visible_rules(
    rules: Sequence[Loaded[DestinationRule]], namespace: str
) -> list[Loaded[DestinationRule]]:
    """The DestinationRules of a host that are exported to `namespace`."""
    return [
        r
        for r in rules
        if exported_to(r.resource.spec.export_to, r.resource.metadata.namespace, namespace)
    ]
