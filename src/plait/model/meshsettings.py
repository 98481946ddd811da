"""The mesh-wide settings in force: what the mesh ConfigMap says, or Istio's defaults."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from plait.api import Loaded
from plait.api.meshconfig import ConfigMap


class OutboundMode(StrEnum):
    """MeshConfig `outboundTrafficPolicy.mode`: may a sidecar reach unregistered hosts?"""

    ALLOW_ANY = "ALLOW_ANY"  # yes, passed through (Istio's default)
    REGISTRY_ONLY = "REGISTRY_ONLY"  # no: only services and ServiceEntry hosts; else 502


@dataclass(frozen=True)
class MeshSettings:
    outbound_mode: OutboundMode = OutboundMode.ALLOW_ANY


def mesh_settings(config: Iterable[Loaded]) -> MeshSettings:
    """The settings of the mesh ConfigMap (`istio-system/istio`) if there is one."""
    for item in config:
        resource = item.resource
        if isinstance(resource, ConfigMap) and resource.is_mesh_config:
            mesh = resource.data.mesh
            if mesh is not None:
                return MeshSettings(outbound_mode=OutboundMode(mesh.outbound_mode))
    return MeshSettings()
