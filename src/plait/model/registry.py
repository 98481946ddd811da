"""The service registry: services, the workload instances behind them, their endpoints.

Sources fill it (local mode: Kubernetes Services + the replicas `plait up` started;
ServiceEntries add external hosts). Hostnames are fully qualified as in Kubernetes:
`NAME.NAMESPACE.svc.cluster.local`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from plait.model.labels import Labels

CLUSTER_DOMAIN = "cluster.local"


def service_hostname(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"


class Protocol(StrEnum):
    """Application protocol of a port, chosen from appProtocol or the port name (Istio rules)."""

    HTTP = "HTTP"
    HTTP2 = "HTTP2"
    GRPC = "GRPC"
    TCP = "TCP"
    TLS = "TLS"
    HTTPS = "HTTPS"
    UNKNOWN = "UNKNOWN"

    @property
    def is_http(self) -> bool:
        return self in (Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC)


_PREFIXES: dict[str, Protocol] = {
    "http2": Protocol.HTTP2,
    "grpc": Protocol.GRPC,
    "grpc-web": Protocol.GRPC,
    "http": Protocol.HTTP,
    "https": Protocol.HTTPS,
    "tcp": Protocol.TCP,
    "tls": Protocol.TLS,
    "mongo": Protocol.TCP,
    "redis": Protocol.TCP,
    "mysql": Protocol.TCP,
}


def protocol_of(name: str | None, app_protocol: str | None) -> Protocol:
    """Istio's protocol selection: appProtocol first, then the port name's `PROTO[-suffix]`.

    Unlike Istio (which sniffs), an unnamed port is treated as HTTP in local mode, because
    the sidecar's app-facing listener is an HTTP proxy; the analyzer warns about it.
    """
    for raw in (app_protocol, (name or "").split("-")[0] if name else None):
        if raw:
            found = _PREFIXES.get(raw.lower())
            if found is not None:
                return found
    return Protocol.HTTP if not app_protocol else Protocol.UNKNOWN


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    protocol: Protocol = Protocol.HTTP
    target_port: int | str | None = None


class Resolution(StrEnum):
    """How a service's endpoints are found (ServiceEntry `resolution`)."""

    REGISTRY = "REGISTRY"  # endpoints from the registry (Kubernetes Services)
    STATIC = "STATIC"
    DNS = "DNS"
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"
    NONE = "NONE"


@dataclass(frozen=True)
class Service:
    """A mesh service by hostname: a Kubernetes Service or a ServiceEntry host."""

    hostname: str
    name: str
    namespace: str
    ports: tuple[ServicePort, ...]
    selector: Labels = field(default_factory=Labels)
    resolution: Resolution = Resolution.REGISTRY
    external: bool = False

    def port(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.port == number), None)


@dataclass(frozen=True)
class Endpoint:
    """One address that serves a service: in local mode a replica's sidecar inbound port."""

    address: str
    port: int
    labels: Labels = field(default_factory=Labels)
    instance: str = ""
    workload: str = ""
    namespace: str = "default"
    service_account: str = "default"
    weight: int = 1


@dataclass(frozen=True)
class WorkloadInstance:
    """One running replica, as the local workload source reports it."""

    name: str
    workload: str
    namespace: str
    labels: Labels
    service_account: str
    address: str
    inbound_port: int

    def endpoint(self) -> Endpoint:
        return Endpoint(
            address=self.address,
            port=self.inbound_port,
            labels=self.labels,
            instance=self.name,
            workload=self.workload,
            namespace=self.namespace,
            service_account=self.service_account,
        )
