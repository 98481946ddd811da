"""Find the Service `plait describe` was asked about: `name`, `name.namespace`, or a FQDN."""

from __future__ import annotations

from plait.model.registry import Service, service_hostname
from plait.model.snapshot import MeshSnapshot


def find_service(snapshot: MeshSnapshot, name: str, namespace: str = "default") -> Service | None:
    """The service `name` denotes from `namespace` (short names resolve as in Kubernetes,
    `name.ns[.svc[.cluster.local]]` too; a ServiceEntry host as written)."""
    if name in snapshot.services:
        return snapshot.services[name]
    parts = name.split(".")
    if len(parts) == 1:
        return snapshot.services.get(service_hostname(name, namespace))
    if len(parts) in (2, 3) and (len(parts) == 2 or parts[2] == "svc"):
        return snapshot.services.get(service_hostname(parts[0], parts[1]))
    return None


def service_names(snapshot: MeshSnapshot) -> list[str]:
    """Every service, `name.namespace` for Kubernetes Services, the host for entries."""
    return sorted(
        f"{s.name}.{s.namespace}" if s.hostname == service_hostname(s.name, s.namespace) else s.name
        for s in snapshot.services.values()
    )
