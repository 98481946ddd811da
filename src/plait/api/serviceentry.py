"""ServiceEntry (networking.istio.io v1, v1beta1, v1alpha3): the full field set.

Follows istio/api networking/v1alpha3/service_entry.proto; its `endpoints` have the
WorkloadEntry shape. The CRD's cross-field rules (resolution vs endpoints, CIDR addresses)
and the webhook's (static endpoints are IPs) are enforced.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, Strict, model_validator

from plait.api.common import (
    IstioModel,
    Labels,
    ObjectMeta,
    PortNumber,
    Protocol,
    SelectorLabels,
    Str,
    UInt32,
    dns_label,
    is_ip,
)
from plait.api.syntax import fqdn, ip_subnet, wildcard_domain
from plait.api.virtualservice import NetworkingVersion

Location = Literal["MESH_EXTERNAL", "MESH_INTERNAL"]
Resolution = Literal["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"]


class ServicePort(IstioModel):
    number: PortNumber
    protocol: Protocol | None = None
    name: Annotated[str, Strict(), AfterValidator(dns_label)]
    target_port: PortNumber | None = None


class WorkloadEntry(IstioModel):
    """One endpoint: an address (IP, hostname or unix:// socket) with per-port numbers."""

    address: Str | None = None
    ports: dict[Str, PortNumber] = Field(default_factory=dict)
    labels: Labels = Field(default_factory=dict)
    network: Str | None = None
    locality: Str | None = None
    weight: UInt32 | None = None
    service_account: Str | None = None

    @model_validator(mode="after")
    def _address(self) -> WorkloadEntry:
        if not self.address and not self.network:
            raise ValueError("an endpoint needs an 'address' (or a 'network')")
        address = self.address or ""
        if address.startswith("unix://"):
            path = address.removeprefix("unix://")
            if not path.startswith(("/", "@")) or path.endswith("/"):
                raise ValueError(
                    f"'{address}': a unix socket is an absolute path to a file (or '@name')"
                )
        if address.startswith("unix://") and self.ports:
            raise ValueError("a unix:// endpoint cannot have 'ports'")
        for name in self.ports:
            dns_label(name)
        return self


class EntryWorkloadSelector(IstioModel):
    """ServiceEntry's `workloadSelector`: `labels` (not `matchLabels`)."""

    labels: SelectorLabels = Field(default_factory=dict)


def _entry_host(value: str) -> str:
    if value == "*":
        raise ValueError("host '*' is not allowed; name the external hosts")
    return wildcard_domain(value)


class ServiceEntrySpec(IstioModel):
    hosts: Annotated[
        tuple[Annotated[str, Strict(), AfterValidator(_entry_host)], ...], Field(min_length=1)
    ]
    addresses: tuple[Annotated[str, Strict(), AfterValidator(ip_subnet)], ...] = ()
    ports: tuple[ServicePort, ...] = ()
    location: Location = "MESH_EXTERNAL"
    resolution: Resolution = "NONE"
    endpoints: tuple[WorkloadEntry, ...] = ()
    workload_selector: EntryWorkloadSelector | None = None
    export_to: tuple[Str, ...] = ()
    subject_alt_names: tuple[Str, ...] = ()

    @model_validator(mode="after")
    def _rules(self) -> ServiceEntrySpec:
        if "*" in self.hosts:
            raise ValueError("host '*' is not allowed; name the external hosts")
        for attr in ("number", "name"):
            values = [getattr(p, attr) for p in self.ports]
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"port {attr} {repeated[0]} is listed more than once")
        if self.endpoints and self.workload_selector is not None:
            raise ValueError("set either 'endpoints' or 'workloadSelector', not both")
        if any("/" in a for a in self.addresses) and self.resolution not in ("NONE", "STATIC"):
            raise ValueError("CIDR 'addresses' need resolution NONE or STATIC")
        if self.resolution == "NONE" and self.endpoints:
            raise ValueError("resolution NONE cannot have 'endpoints'; use STATIC or DNS")
        if self.resolution == "DNS_ROUND_ROBIN" and len(self.endpoints) > 1:
            raise ValueError("resolution DNS_ROUND_ROBIN allows at most one endpoint")
        if self.resolution in ("DNS", "DNS_ROUND_ROBIN") and not self.endpoints:
            wild = [h for h in self.hosts if "*" in h]
            if wild:
                raise ValueError(
                    f"host '{wild[0]}' cannot be resolved by DNS; add 'endpoints' or name a host"
                )
        if self.resolution == "STATIC":
            for e in self.endpoints:
                if e.address and not (is_ip(e.address) or e.address.startswith("unix://")):
                    raise ValueError(
                        f"endpoint address '{e.address}' is not an IP address, as resolution "
                        "STATIC needs; use resolution DNS for host names"
                    )
        if self.resolution in ("DNS", "DNS_ROUND_ROBIN"):
            for e in self.endpoints:
                if e.address and not is_ip(e.address):
                    fqdn(e.address)
        names = {p.name for p in self.ports}
        for e in self.endpoints:
            unknown = sorted(set(e.ports) - names)
            if unknown and self.resolution != "NONE":
                raise ValueError(f"endpoint port '{unknown[0]}' is not a port of this entry")
        unix = [e for e in self.endpoints if (e.address or "").startswith("unix://")]
        if unix and self.resolution == "STATIC" and len(self.ports) != 1:
            raise ValueError("a unix:// endpoint needs exactly one port in 'ports'")
        if self.resolution == "DYNAMIC_DNS":
            self._dynamic_dns()
        if self.resolution != "NONE" and len(self.hosts) > 1:
            plain = [p.name for p in self.ports if (p.protocol or "TCP").upper() in _L4_ONLY]
            if plain:
                raise ValueError(
                    f"port '{plain[0]}' is plain TCP: with several hosts nothing tells them "
                    "apart; use resolution NONE, one host per entry, or an HTTP/TLS port"
                )
        return self

    def _dynamic_dns(self) -> None:
        """Istio's rules: wildcard hosts only, no addresses or endpoints, HTTP/TLS ports."""
        tame = [h for h in self.hosts if not h.startswith("*")]
        if tame:
            raise ValueError(f"resolution DYNAMIC_DNS needs wildcard hosts; '{tame[0]}' is not")
        if self.addresses or self.endpoints:
            raise ValueError("resolution DYNAMIC_DNS takes no 'addresses' or 'endpoints'")
        for p in self.ports:
            if (p.protocol or "TCP").upper() not in ("HTTP", "TLS", "GRPC", "HTTP2"):
                raise ValueError(
                    f"port '{p.name}': resolution DYNAMIC_DNS serves HTTP, TLS, GRPC or HTTP2"
                )


_L4_ONLY = ("TCP", "MONGO", "MYSQL", "REDIS", "UDP")


class ServiceEntry(IstioModel):
    """`kind: ServiceEntry`: adds hosts (often outside the mesh) to the service registry."""

    api_version: NetworkingVersion
    kind: Literal["ServiceEntry"]
    metadata: ObjectMeta
    spec: ServiceEntrySpec
    status: dict[str, object] | None = None

    @model_validator(mode="after")
    def _waypoint(self) -> ServiceEntry:
        waypoint = self.metadata.labels.get("istio.io/use-waypoint", "")
        internal = self.spec.location == "MESH_INTERNAL"
        if (
            waypoint
            and waypoint.lower() != "none"
            and internal
            and self.spec.resolution == "DYNAMIC_DNS"
        ):
            raise ValueError(
                "resolution DYNAMIC_DNS with location MESH_INTERNAL does not work through a "
                "waypoint (Istio); use MESH_EXTERNAL or remove 'istio.io/use-waypoint'"
            )
        return self
