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


DEFAULT_TRUST_DOMAIN = "cluster.local"
ROOT_NAMESPACE = "istio-system"
"""Where mesh-wide policies live (a PeerAuthentication without selector there is mesh-wide)."""


@dataclass(frozen=True)
class MeshSettings:
    outbound_mode: OutboundMode = OutboundMode.ALLOW_ANY
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    root_namespace: str = ROOT_NAMESPACE


def mesh_settings(config: Iterable[Loaded]) -> MeshSettings:
    """The settings of the mesh ConfigMap (`istio-system/istio`) if there is one."""
    for item in config:
        resource = item.resource
        if isinstance(resource, ConfigMap) and resource.is_mesh_config:
            mesh = resource.data.mesh
            if mesh is not None:
                return MeshSettings(
                    outbound_mode=OutboundMode(mesh.outbound_mode),
                    trust_domain=mesh.trust_domain or DEFAULT_TRUST_DOMAIN,
                )
    return MeshSettings()
