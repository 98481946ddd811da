"""The service registry: services, the workload instances behind them, their endpoints.

Sources fill it (local mode: Kubernetes Services + the replicas `plait up` started;
ServiceEntries add external hosts). Hostnames are fully qualified as in Kubernetes:
`NAME.NAMESPACE.svc.cluster.local`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from plait.model.labels import Labels

CLUSTER_DOMAIN = "cluster.local"


def service_hostname(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"


def resolve_host(services: Mapping[str, Service], host: str, namespace: str) -> str:
    """`MeshSnapshot.resolve_host` over a service map (usable while a snapshot is built)."""
    if host.startswith("*") or host in services:
        return host
    if "." not in host:
        return service_hostname(host, namespace)
    parts = host.split(".")
    if len(parts) in (2, 3) and (len(parts) == 2 or parts[2] == "svc"):
        candidate = service_hostname(parts[0], parts[1])
        if candidate in services:
            return candidate
    return host


class Protocol(StrEnum):
    """Application protocol of a port, chosen by `protocol_of` (Istio's protocol selection).

    UNKNOWN is a port whose protocol was not declared; Istio sniffs such ports (and finds
    HTTP/1.1 or HTTP/2), plait treats them as HTTP of either version (see `protocol_of`).
    """

    HTTP = "HTTP"
    HTTP2 = "HTTP2"
    GRPC = "GRPC"
    TCP = "TCP"
    TLS = "TLS"
    HTTPS = "HTTPS"
    UDP = "UDP"
    UNKNOWN = "UNKNOWN"

    @property
    def is_http(self) -> bool:
        """Routed by HTTP rules (VirtualService `http`); an undeclared port counts as HTTP."""
        return self in (Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC, Protocol.UNKNOWN)

    @property
    def is_http2(self) -> bool:
        """Spoken as HTTP/2 (prior knowledge, h2c in plain text) to the app that serves it."""
        return self in (Protocol.HTTP2, Protocol.GRPC)


_NAMES: dict[str, Protocol] = {
    "http": Protocol.HTTP,
    "http_proxy": Protocol.HTTP,
    "http2": Protocol.HTTP2,
    "h2c": Protocol.HTTP2,
    "grpc": Protocol.GRPC,
    "grpc-web": Protocol.GRPC,
    "https": Protocol.HTTPS,
    "tcp": Protocol.TCP,
    "tls": Protocol.TLS,
    "udp": Protocol.UDP,
    # Istio's experimental mongo/mysql/redis filters are off by default: opaque TCP.
    "mongo": Protocol.TCP,
    "redis": Protocol.TCP,
    "mysql": Protocol.TCP,
}

# Kubernetes' standard appProtocol values (KEP-3726), recognised by Istio as well.
_KUBERNETES_APP_PROTOCOLS: dict[str, Protocol] = {
    "kubernetes.io/h2c": Protocol.HTTP2,
    "kubernetes.io/ws": Protocol.HTTP,
    "kubernetes.io/wss": Protocol.HTTPS,
}


def protocol_of(name: str | None, app_protocol: str | None) -> Protocol:
    """Istio's explicit protocol selection for a Service (or ServiceEntry) port.

    `appProtocol` (a ServiceEntry port's `protocol`) wins whenever it is set, even when
    plait does not know its value; otherwise the port name decides by its `PROTO[-suffix]`
    prefix (`grpc-web` is matched whole). Case does not matter. What is left is UNKNOWN:
    Istio would sniff it, plait (whose sidecar is an HTTP proxy to the app in local mode)
    routes it as HTTP and lets the downstream's HTTP version pick the upstream's.
    https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/
    """
    declared = app_protocol if app_protocol else name
    if not declared:
        return Protocol.UNKNOWN
    raw = declared.lower()
    if app_protocol and raw in _KUBERNETES_APP_PROTOCOLS:
        return _KUBERNETES_APP_PROTOCOLS[raw]
    if raw.startswith("grpc-web"):
        return Protocol.GRPC
    return _NAMES.get(raw.split("-", 1)[0], Protocol.UNKNOWN)


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
    DYNAMIC_DNS = "DYNAMIC_DNS"  # resolved per request from the Host (Envoy's DFP)
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
    cluster_ip: str | None = None  # the virtual IP captured apps reach it at (transparent mode)
    headless: bool = False  # `clusterIP: None`: apps reach its pods at their own addresses
    export_to: tuple[str, ...] = ()  # namespaces that see it (model.scope); () = all

    def port(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.port == number), None)


@dataclass(frozen=True)
class Endpoint:
    """One address that serves a service port: the port an instance serves it on (see
    `PortMap`; in local mode, a replica's sidecar inbound port)."""

    address: str
    port: int
    labels: Labels = field(default_factory=Labels)
    instance: str = ""
    workload: str = ""
    namespace: str = "default"
    service_account: str = "default"
    weight: int = 1
    sidecar: bool = False  # served by a plait sidecar, so it speaks mesh mTLS (auto mTLS)


@dataclass(frozen=True)
class PortMap:
    """Where an instance serves each service port: the platform's answer, not the model's.

    Kubernetes: the port's `targetPort`, a number or the name of a container port in
    `named` (a name the pod does not declare: no endpoint for that port), else the
    service port itself. `every` sends every service port to one port instead: local
    mode's sidecar, whose one inbound listener serves them all (`PortMap.all_to`, made by
    the local workload registry).
    """

    named: tuple[tuple[str, int], ...] = ()
    every: int | None = None

    @staticmethod
    def all_to(port: int) -> PortMap:
        return PortMap(every=port)

    def target(self, port: ServicePort) -> int | None:
        """The port this instance serves `port` on; None when it does not serve it."""
        if self.every is not None:
            return self.every
        target = port.target_port
        if isinstance(target, int) and target:
            return target
        if isinstance(target, str) and target:
            return dict(self.named).get(target)
        return port.port


@dataclass(frozen=True)
class WorkloadInstance:
    """One running replica, as a workload source reports it; `ports` says where it serves
    each service port (local mode: its sidecar's inbound port, or the app's own port
    when `sidecar` is False)."""

    name: str
    workload: str
    namespace: str
    labels: Labels
    service_account: str
    address: str
    ports: PortMap
    sidecar: bool = True

    def endpoint(self, port: ServicePort) -> Endpoint | None:
        """This instance as an endpoint of a service port, if it serves that port."""
        target = self.ports.target(port)
        if target is None:
            return None
        return Endpoint(
            address=self.address,
            port=target,
            labels=self.labels,
            instance=self.name,
            workload=self.workload,
            namespace=self.namespace,
            service_account=self.service_account,
            sidecar=self.sidecar,
        )
