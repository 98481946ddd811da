"""Mesh-wide settings: Istio's MeshConfig, read from the ConfigMap `istio` in `istio-system`.

Istio reads its MeshConfig from the `mesh` key of that ConfigMap, a YAML string, so the
same file works under Istio and under plait. The string is parsed here, before
validation, so that an error points into it (`data.mesh.outboundTrafficPolicy.mode`).
plait applies `outboundTrafficPolicy.mode`, `trustDomain` and the tracing fields
(`enableTracing`, `defaultConfig.tracing.sampling` and `.zipkin.address`,
`extensionProviders[].zipkin|opentelemetry` chosen by `defaultProviders.tracing`; see
`model.meshsettings.TracingSettings`); any other MeshConfig field is accepted and
reported as understood but not applied (MeshConfig has dozens of fields, most of them
about Istio's own processes). Every other ConfigMap is ordinary application config:
plait keeps only its name and ignores the rest, without a message.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, Strict, model_validator

from plait.api.common import (
    Bool,
    IstioModel,
    KubeModel,
    NonEmptyStr,
    ObjectMeta,
    PortNumber,
    Str,
    dns_subdomain,
    known,
)
from plait.api.messages import closest

MESH_CONFIG_NAME = "istio"
ROOT_NAMESPACE = "istio-system"

OutboundMode = Literal["ALLOW_ANY", "REGISTRY_ONLY"]


class OutboundTrafficPolicy(IstioModel):
    """`outboundTrafficPolicy`: may sidecars reach hosts that no service or entry declares?"""

    mode: OutboundMode = "ALLOW_ANY"
    egress_proxy: dict[str, object] | None = None


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"'{value}' is not HOST:PORT (for example zipkin.istio-system:9411)")
    return value


class ZipkinAddress(IstioModel):
    """`defaultConfig.tracing.zipkin`: the collector as `host:port` (Istio's legacy form)."""

    model_config = ConfigDict(extra="allow")
    address: Annotated[NonEmptyStr, AfterValidator(_host_port)] | None = None


class ProxyTracing(IstioModel):
    """`defaultConfig.tracing` (ProxyConfig's Tracing): the sampling percentage, a collector."""

    model_config = ConfigDict(extra="allow")
    sampling: Annotated[float, Field(ge=0, le=100)] | None = None
    zipkin: ZipkinAddress | None = None


class ProxyDefaults(IstioModel):
    """`defaultConfig` (Istio's ProxyConfig): plait reads `tracing`; others are extras."""

    model_config = ConfigDict(extra="allow")
    tracing: ProxyTracing | None = None


class CollectorService(IstioModel):
    """A tracing provider's collector: `service` (a hostname or IP) and `port`."""

    model_config = ConfigDict(extra="allow")
    service: NonEmptyStr
    port: PortNumber


class ExtensionProvider(IstioModel):
    """One `extensionProviders[]` entry; plait uses the `zipkin` and `opentelemetry` kinds."""

    model_config = ConfigDict(extra="allow")
    name: NonEmptyStr
    zipkin: CollectorService | None = None
    opentelemetry: CollectorService | None = None


class DefaultProviders(IstioModel):
    """`defaultProviders`: which extension providers are in force without a Telemetry."""

    model_config = ConfigDict(extra="allow")
    tracing: tuple[Str, ...] = ()


class MeshConfig(IstioModel):
    """The fields of Istio's MeshConfig that plait applies; other fields are kept as extras."""

    model_config = ConfigDict(extra="allow")
    APPLIED_FIELDS: ClassVar[tuple[str, ...]] = (
        "outboundTrafficPolicy",
        "trustDomain",
        "enableTracing",
        "defaultConfig",
        "extensionProviders",
        "defaultProviders",
    )

    outbound_traffic_policy: OutboundTrafficPolicy | None = None
    enable_tracing: Bool | None = None
    default_config: ProxyDefaults | None = None
    extension_providers: tuple[ExtensionProvider, ...] = ()
    default_providers: DefaultProviders | None = None
    # the SPIFFE trust domain of workload identities; read when the control plane starts
    trust_domain: Annotated[str, Strict(), AfterValidator(dns_subdomain)] | None = None

    @model_validator(mode="after")
    def _no_misspelt_fields(self) -> MeshConfig:
        # An extra is a MeshConfig field plait does not apply; one that is nearly the name
        # of a field plait applies is a typo that would silently keep the default.
        for key in self.model_extra or {}:
            near = closest(key, self.APPLIED_FIELDS, cutoff=0.8)
            if near is not None:
                raise ValueError(f"unknown field '{key}'; did you mean '{near}'?")
        return self

    @model_validator(mode="after")
    def _default_tracer_is_declared(self) -> MeshConfig:
        declared = {p.name for p in self.extension_providers}
        chosen = self.default_providers.tracing if self.default_providers else ()
        for name in chosen:
            if name not in declared:
                raise ValueError(
                    f"defaultProviders.tracing names '{name}', which no extensionProviders "
                    "entry declares"
                )
        return self

    @property
    def outbound_mode(self) -> OutboundMode:
        policy = self.outbound_traffic_policy
        return policy.mode if policy is not None else "ALLOW_ANY"


def _parse_yaml(value: Any) -> Any:
    """`data.mesh` is YAML inside a string, as Istio expects; parse it for validation."""
    if not isinstance(value, str):
        raise ValueError(
            "ConfigMap data values are strings: write the MeshConfig as a YAML block "
            "('mesh: |' followed by indented lines)"
        )
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValueError(f"not valid YAML{where} of the mesh config: {problem}") from exc
    return {} if parsed is None else parsed


class MeshConfigData(KubeModel):
    """`data` of the mesh ConfigMap: `mesh` (MeshConfig) and `meshNetworks` (not applied)."""

    mesh: Annotated[MeshConfig, BeforeValidator(_parse_yaml)] | None = None
    mesh_networks: Str | None = None


class ConfigMap(KubeModel):
    """`v1/ConfigMap`: only `istio-system/istio` means something to plait (its MeshConfig)."""

    KNOWN: ClassVar[frozenset[str]] = known("binaryData immutable")

    api_version: Literal["v1"]
    kind: Literal["ConfigMap"]
    metadata: ObjectMeta
    data: MeshConfigData = Field(default_factory=MeshConfigData)

    @model_validator(mode="before")
    @classmethod
    def _ignore_application_config(cls, document: Any) -> Any:
        if not isinstance(document, dict) or _is_mesh_config(document.get("metadata")):
            return document
        return {k: document[k] for k in ("apiVersion", "kind", "metadata") if k in document}

    @property
    def is_mesh_config(self) -> bool:
        meta = self.metadata
        return (meta.name, meta.namespace) == (MESH_CONFIG_NAME, ROOT_NAMESPACE)


def _is_mesh_config(metadata: Any) -> bool:
    if not isinstance(metadata, dict):
        return False
    return (metadata.get("name"), metadata.get("namespace")) == (MESH_CONFIG_NAME, ROOT_NAMESPACE)
