"""The snapshot's registry: Services and their endpoints, from Kubernetes Services,
ServiceEntries and the running workload instances.

`build_registry` converts each Kubernetes Service and each ServiceEntry host to a domain
`Service` (a Kubernetes Service of the same name wins, as in Istio) and finds each service
port's endpoints: the selected instances at the port they serve it on, or a ServiceEntry's
listed endpoints. `model.snapshot.with_instances` recomputes some of them with the same
pieces. Pure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from plait.api import KubeService, Loaded, ServiceEntry
from plait.model.labels import Labels
from plait.model.registry import (
    Endpoint,
    Resolution,
    Service,
    ServicePort,
    WorkloadInstance,
    protocol_of,
    service_hostname,
)
from plait.model.scope import EXPORT_TO_ANNOTATION, parse_annotation


def build_registry(
    kube_services: Iterable[Loaded[KubeService]],
    entries: Iterable[Loaded[ServiceEntry]],
    index: InstanceIndex,
) -> tuple[dict[str, Service], dict[tuple[str, int], tuple[Endpoint, ...]]]:
    """Services (Kubernetes Services, then ServiceEntry hosts) and their endpoints."""
    services: dict[str, Service] = {}
    endpoints: dict[tuple[str, int], tuple[Endpoint, ...]] = {}
    for item in kube_services:
        svc = _kube_service(item.resource)
        services[svc.hostname] = svc
        selected = index.select(svc.namespace, svc.selector)
        for port in svc.ports:
            endpoints[(svc.hostname, port.port)] = port_endpoints(selected, port)
    for entry_item in entries:
        entry = entry_item.resource
        for svc, eps in entry_services(entry):
            if svc.hostname in services:
                continue  # a Kubernetes Service of the same name wins, as in Istio
            services[svc.hostname] = svc
            for port in svc.ports:
                endpoints[(svc.hostname, port.port)] = entry_endpoints(entry, eps, port, index)
    return services, endpoints


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
        cluster_ip=_cluster_ip(svc.spec.cluster_ip),
        headless=svc.spec.cluster_ip == "None",
        export_to=parse_annotation(svc.metadata.annotations.get(EXPORT_TO_ANNOTATION, "")),
    )


def _cluster_ip(value: str | None) -> str | None:
    """`spec.clusterIP` when it is an address (not "None": a headless Service)."""
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def entry_services(entry: ServiceEntry) -> list[tuple[Service, list[Endpoint]]]:
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
            export_to=spec.export_to,
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
            # a STATIC endpoint without an address is reached through its network's
            # gateway (multi-network), which plait has not: it has no address to dial
            if e.address or resolution is not Resolution.STATIC
        ]
        out.append((service, endpoints))
    return out


def entry_endpoints(
    entry: ServiceEntry, eps: Sequence[Endpoint], port: ServicePort, index: InstanceIndex
) -> tuple[Endpoint, ...]:
    """One port's endpoints: listed ones with their port numbers, or, for a
    `workloadSelector`, the selected replicas in the entry's namespace (as for a Service)."""
    selector = entry.spec.workload_selector
    if selector is not None:
        labels = Labels.of(selector.labels)
        return port_endpoints(index.select(entry.metadata.namespace, labels), port)
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


class InstanceIndex:
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


def port_endpoints(
    instances: Iterable[WorkloadInstance], port: ServicePort
) -> tuple[Endpoint, ...]:
    """The endpoints of one service port: each instance at the port it serves it on."""
    found = (i.endpoint(port) for i in instances)
    return tuple(e for e in found if e is not None)
