"""MeshSnapshot: one immutable, indexed view of all config and the registry.

Built once per change (`build_snapshot`), read by every translator; it holds no locks,
no metrics and no status (those live with the server). Istio resources stay as their
validated, frozen pydantic models: re-declaring the whole Istio API as dataclasses would
double it without making translation safer; the registry is converted to domain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from plait.api import DestinationRule, Gateway, KubeService, Loaded, ServiceEntry, VirtualService
from plait.api.meshconfig import ConfigMap
from plait.api.ratelimit import RateLimit
from plait.api.security import AuthorizationPolicy, PeerAuthentication, RequestAuthentication
from plait.errors import ConfigMessage
from plait.model.labels import Labels
from plait.model.meshsettings import MeshSettings, mesh_settings
from plait.model.orphans import orphan_hosts
from plait.model.policy import HostRules, choose, merge
from plait.model.registry import (
    Endpoint,
    Protocol,
    Resolution,
    Service,
    ServicePort,
    WorkloadInstance,
    protocol_of,
    service_hostname,
)

MESH_GATEWAY = "mesh"


@dataclass(frozen=True)
class MeshSnapshot:
    version: int
    services: Mapping[str, Service]
    endpoints: Mapping[tuple[str, int], tuple[Endpoint, ...]]
    virtual_services: tuple[Loaded, ...] = ()
    destination_rules: tuple[Loaded, ...] = ()
    gateways: tuple[Loaded, ...] = ()
    rate_limits: tuple[Loaded, ...] = ()
    peer_authentications: tuple[Loaded, ...] = ()
    authorization_policies: tuple[Loaded, ...] = ()
    request_authentications: tuple[Loaded, ...] = ()
    messages: tuple[ConfigMessage, ...] = ()
    mesh: MeshSettings = field(default_factory=MeshSettings)  # the mesh ConfigMap's settings
    # indexes, derived in build_snapshot
    rules_by_host: Mapping[str, HostRules] = field(default_factory=dict)
    orphan_hosts: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)

    def vs_hosts(self, vs: VirtualService) -> tuple[str, ...]:
        """The hosts a VirtualService applies to: its own, or an orphan's destination hosts
        (see `model.orphans`)."""
        if vs.spec.hosts:
            return tuple(vs.spec.hosts)
        return self.orphan_hosts.get((vs.metadata.namespace, vs.metadata.name), ())

    def service(self, hostname: str) -> Service | None:
        return self.services.get(hostname)

    def endpoints_for(self, hostname: str, port: int) -> tuple[Endpoint, ...]:
        return self.endpoints.get((hostname, port), ())

    def resolve_host(self, host: str, namespace: str) -> str:
        """Istio short-name resolution: `reviews` in namespace ns → `reviews.ns.svc.cluster.local`.

        Beyond Istio, `reviews.ns` and `reviews.ns.svc` also resolve when such a service exists.
        """
        if host.startswith("*") or host in self.services:
            return host
        if "." not in host:
            return service_hostname(host, namespace)
        parts = host.split(".")
        if len(parts) in (2, 3) and (len(parts) == 2 or parts[2] == "svc"):
            candidate = service_hostname(parts[0], parts[1])
            if candidate in self.services:
                return candidate
        return host

    def host_rules(self, hostname: str) -> HostRules | None:
        """The merged DestinationRules for a host (see `model.policy`), if any."""
        return self.rules_by_host.get(hostname)


def _kube_service(svc: KubeService) -> Service:
    ns = svc.metadata.namespace
    ports = tuple(
        ServicePort(
            name=p.name or "",
            port=p.port,
            protocol=protocol_of(p.name, p.app_protocol),
            target_port=p.target_port,
        )
        for p in svc.spec.ports
    )
    return Service(
        hostname=service_hostname(svc.metadata.name, ns),
        name=svc.metadata.name,
        namespace=ns,
        ports=ports,
        selector=Labels.of(svc.spec.selector or {}),
    )


def _entry_services(entry: ServiceEntry) -> list[tuple[Service, list[Endpoint]]]:
    spec = entry.spec
    ns = entry.metadata.namespace
    ports = tuple(
        ServicePort(
            name=p.name or "",
            port=p.number,
            protocol=protocol_of(p.name, p.protocol),
            target_port=p.target_port,
        )
        for p in spec.ports
    )
    resolution = Resolution(spec.resolution or "NONE")
    out: list[tuple[Service, list[Endpoint]]] = []
    for host in spec.hosts:
        service = Service(
            hostname=host,
            name=host,
            namespace=ns,
            ports=ports,
            resolution=resolution,
            external=(spec.location or "MESH_EXTERNAL") == "MESH_EXTERNAL",
        )
        endpoints = [
            Endpoint(
                address=e.address or host,
                port=0,
                labels=Labels.of(e.labels),
                namespace=ns,
                weight=e.weight or 1,
            )
            for e in spec.endpoints
        ]
        out.append((service, endpoints))
    return out


def _entry_endpoints(
    entry: ServiceEntry, eps: Sequence[Endpoint], port: ServicePort, index: _InstanceIndex
) -> tuple[Endpoint, ...]:
    """One port's endpoints: listed ones with their port numbers, or, for a
    `workloadSelector`, the selected replicas in the entry's namespace (as for a Service)."""
    selector = entry.spec.workload_selector
    if selector is not None:
        labels = Labels.of(selector.labels)
        return tuple(i.endpoint() for i in index.select(entry.metadata.namespace, labels))
    return tuple(
        replace(e, port=_entry_endpoint_port(entry, idx, port)) for idx, e in enumerate(eps)
    )


def _entry_endpoint_port(entry: ServiceEntry, endpoint_index: int, port: ServicePort) -> int:
    endpoints = entry.spec.endpoints
    ports: Mapping[str, int] = {}
    if endpoint_index < len(endpoints):
        ports = endpoints[endpoint_index].ports
    target = ports.get(port.name)
    if target:
        return target
    if isinstance(port.target_port, int) and port.target_port:
        return port.target_port
    return port.port


def _by_name(items: Iterable[Loaded]) -> tuple[Loaded, ...]:
    """Deterministic order: namespace, then name (Istio orders by creation time)."""
    return tuple(
        sorted(items, key=lambda x: (x.resource.metadata.namespace, x.resource.metadata.name))
    )


class _InstanceIndex:
    """Instances by (namespace, label, value), so selecting is not services × instances."""

    def __init__(self, instances: Sequence[WorkloadInstance]) -> None:
        self._by_pair: dict[tuple[str, str, str], list[WorkloadInstance]] = {}
        for i in instances:
            for key, value in i.labels.items():
                self._by_pair.setdefault((i.namespace, key, value), []).append(i)

    def select(self, namespace: str, selector: Labels) -> list[WorkloadInstance]:
        """Instances in namespace matching every selector pair; none for an empty selector."""
        if not selector:
            return []  # a Service without a selector has no registry endpoints (Kubernetes)
        candidates = min(
            (self._by_pair.get((namespace, k, v), []) for k, v in selector.items()), key=len
        )
        return [i for i in candidates if i.labels.matches(selector)]


def build_snapshot(
    config: Sequence[Loaded],
    instances: Sequence[WorkloadInstance],
    version: int,
    messages: Sequence[ConfigMessage] = (),
) -> MeshSnapshot:
    """Index validated config and the running instances into one snapshot."""
    services: dict[str, Service] = {}
    endpoints: dict[tuple[str, int], tuple[Endpoint, ...]] = {}
    kinds: dict[type[Any], list[Loaded]] = {}
    for item in config:
        kinds.setdefault(type(item.resource), []).append(item)

    index = _InstanceIndex(instances)
    for item in kinds.get(KubeService, []):
        svc = _kube_service(item.resource)  # type: ignore[arg-type]
        services[svc.hostname] = svc
        selected = [i.endpoint() for i in index.select(svc.namespace, svc.selector)]
        for port in svc.ports:
            endpoints[(svc.hostname, port.port)] = tuple(selected)

    for item in kinds.get(ServiceEntry, []):
        entry: ServiceEntry = item.resource  # type: ignore[assignment]
        for svc, eps in _entry_services(entry):
            if svc.hostname in services:
                continue  # a Kubernetes Service of the same name wins, as in Istio
            services[svc.hostname] = svc
            for port in svc.ports:
                endpoints[(svc.hostname, port.port)] = _entry_endpoints(entry, eps, port, index)

    drs = _by_name(kinds.get(DestinationRule, []))
    snapshot = MeshSnapshot(
        version=version,
        services=services,
        endpoints=endpoints,
        virtual_services=_by_name(kinds.get(VirtualService, [])),
        destination_rules=drs,
        gateways=_by_name(kinds.get(Gateway, [])),
        rate_limits=_by_name(kinds.get(RateLimit, [])),
        peer_authentications=_by_name(kinds.get(PeerAuthentication, [])),
        authorization_policies=_by_name(kinds.get(AuthorizationPolicy, [])),
        request_authentications=_by_name(kinds.get(RequestAuthentication, [])),
        messages=tuple(messages),
        mesh=mesh_settings(kinds.get(ConfigMap, [])),
    )
    by_host: dict[str, list[Loaded]] = {}
    for item in drs:
        dr: DestinationRule = item.resource  # type: ignore[assignment]
        by_host.setdefault(snapshot.resolve_host(dr.spec.host, dr.metadata.namespace), []).append(
            item
        )
    rules_by_host: dict[str, HostRules] = {}
    merge_messages: list[ConfigMessage] = []
    for host, items in by_host.items():
        service = services.get(host)
        chosen = choose(items, service.namespace if service is not None else None)
        if not chosen:
            continue
        rules, warnings = merge(host, chosen)
        rules_by_host[host] = rules
        merge_messages += warnings
    object.__setattr__(snapshot, "rules_by_host", rules_by_host)
    orphans, orphan_messages = orphan_hosts(snapshot.virtual_services)
    object.__setattr__(snapshot, "orphan_hosts", orphans)
    merge_messages += orphan_messages
    if merge_messages:
        object.__setattr__(snapshot, "messages", (*snapshot.messages, *merge_messages))
    return snapshot


__all__ = ["MESH_GATEWAY", "MeshSnapshot", "Protocol", "build_snapshot"]
