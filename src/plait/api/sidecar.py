"""Sidecar (networking.istio.io v1, v1beta1, v1alpha3): which services a proxy reaches.

Follows istio/api networking/v1alpha3/sidecar.proto. An egress host is `namespace/dnsName`:
the namespace is `*` (any), `.` (the proxy's own) or `~` (none), or a namespace name; the
dnsName is `*`, a wildcard domain (`*.example.com`) or an FQDN. Istio's webhook rules are
enforced: at most one egress listener without a port (it is the catch-all) and it comes
last, no repeated ports, an ingress listener names its port and default endpoint.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, Strict, model_validator

from plait.api.common import (
    IstioModel,
    ObjectMeta,
    PortNumber,
    Protocol,
    SelectorLabels,
    Str,
    dns_label,
    first_repeated,
)
from plait.api.syntax import wildcard_domain
from plait.api.virtualservice import NetworkingVersion

CaptureMode = Literal["DEFAULT", "IPTABLES", "NONE"]
OutboundMode = Literal["REGISTRY_ONLY", "ALLOW_ANY"]

ANY_NAMESPACE = "*"
OWN_NAMESPACE = "."
NO_NAMESPACE = "~"


def egress_host(value: str) -> str:
    """`namespace/dnsName` with Istio's meanings of `*`, `.` and `~` for the namespace."""
    namespace, slash, name = value.partition("/")
    if not slash or not namespace or not name:
        raise ValueError(
            f"egress host '{value}' must be 'namespace/dnsName' (e.g. './*', "
            "'istio-system/*', '*/reviews.default.svc.cluster.local')"
        )
    if namespace not in (ANY_NAMESPACE, OWN_NAMESPACE, NO_NAMESPACE):
        dns_label(namespace)
    if name != "*":
        wildcard_domain(name)
    return value


class SidecarPort(IstioModel):
    number: PortNumber
    protocol: Protocol | None = None
    name: Str | None = None
    target_port: PortNumber | None = None


class SidecarWorkloadSelector(IstioModel):
    """Sidecar's `workloadSelector`: `labels` (not `matchLabels`)."""

    labels: SelectorLabels = Field(default_factory=dict)


class EgressListener(IstioModel):
    port: SidecarPort | None = None
    bind: Str | None = None
    capture_mode: CaptureMode | None = None
    hosts: Annotated[
        tuple[Annotated[str, Strict(), AfterValidator(egress_host)], ...], Field(min_length=1)
    ]


class IngressListener(IstioModel):
    """Parsed so a Sidecar that has them loads; plait does not apply them (a warning)."""

    port: SidecarPort
    bind: Str | None = None
    capture_mode: CaptureMode | None = None
    default_endpoint: Str | None = None
    tls: dict[str, object] | None = None
    connection_pool: dict[str, object] | None = None


class OutboundTrafficPolicy(IstioModel):
    mode: OutboundMode = "REGISTRY_ONLY"
    egress_proxy: dict[str, object] | None = None


class SidecarSpec(IstioModel):
    workload_selector: SidecarWorkloadSelector | None = None
    ingress: tuple[IngressListener, ...] = ()
    egress: tuple[EgressListener, ...] = ()
    inbound_connection_pool: dict[str, object] | None = None
    outbound_traffic_policy: OutboundTrafficPolicy | None = None

    @model_validator(mode="after")
    def _listeners(self) -> SidecarSpec:
        portless = [i for i, e in enumerate(self.egress) if e.port is None]
        if len(portless) > 1:
            raise ValueError("only one egress listener may leave out 'port' (the catch-all)")
        if portless and portless[0] != len(self.egress) - 1:
            raise ValueError("the egress listener without 'port' (the catch-all) must be last")
        repeated = first_repeated([e.port.number for e in self.egress if e.port is not None])
        if repeated is not None:
            raise ValueError(f"egress port {repeated} is listed more than once")
        repeated = first_repeated([i.port.number for i in self.ingress])
        if repeated is not None:
            raise ValueError(f"ingress port {repeated} is listed more than once")
        return self


class Sidecar(IstioModel):
    """`kind: Sidecar`: the services a namespace's (or selected) proxies reach."""

    api_version: NetworkingVersion
    kind: Literal["Sidecar"]
    metadata: ObjectMeta
    spec: SidecarSpec
    status: dict[str, object] | None = None
