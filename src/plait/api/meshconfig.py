"""Mesh-wide settings: Istio's MeshConfig, read from the ConfigMap `istio` in `istio-system`.

Istio reads its MeshConfig from the `mesh` key of that ConfigMap, a YAML string, so the
same file works under Istio and under plait. The string is parsed here, before
validation, so that an error points into it (`data.mesh.outboundTrafficPolicy.mode`).
plait applies `outboundTrafficPolicy.mode`; any other MeshConfig field is accepted and
reported as understood but not applied (MeshConfig has dozens of fields, most of them
about Istio's own processes). Every other ConfigMap is ordinary application config:
plait keeps only its name and ignores the rest, without a message.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, Strict, model_validator

from plait.api.common import IstioModel, KubeModel, ObjectMeta, Str, dns_subdomain, known
from plait.api.messages import closest

MESH_CONFIG_NAME = "istio"
ROOT_NAMESPACE = "istio-system"

OutboundMode = Literal["ALLOW_ANY", "REGISTRY_ONLY"]


class OutboundTrafficPolicy(IstioModel):
    """`outboundTrafficPolicy`: may sidecars reach hosts that no service or entry declares?"""

    mode: OutboundMode = "ALLOW_ANY"
    egress_proxy: dict[str, object] | None = None


class MeshConfig(IstioModel):
    """The fields of Istio's MeshConfig that plait applies; other fields are kept as extras."""

    model_config = ConfigDict(extra="allow")
    APPLIED_FIELDS: ClassVar[tuple[str, ...]] = ("outboundTrafficPolicy", "trustDomain")

    outbound_traffic_policy: OutboundTrafficPolicy | None = None
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
