"""Which kinds plait reads, in which API versions, and with which model.

A document's `kind` selects its entry; its `apiVersion` must be one of the entry's
versions. A kind that plait understands but does not apply has no model: it is reported
as a warning and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from plait.api.destinationrule import DestinationRule
from plait.api.gateway import Gateway
from plait.api.kube import KubeDeployment, KubeService
from plait.api.meshconfig import ConfigMap
from plait.api.ratelimit import RATELIMIT_VERSIONS, RateLimit
from plait.api.security import (
    SECURITY_VERSIONS,
    AuthorizationPolicy,
    PeerAuthentication,
    RequestAuthentication,
)
from plait.api.serviceentry import ServiceEntry
from plait.api.sidecar import Sidecar
from plait.api.telemetry import TELEMETRY_VERSIONS, Telemetry
from plait.api.virtualservice import NETWORKING_VERSIONS, VirtualService

Resource = (
    KubeService
    | KubeDeployment
    | VirtualService
    | DestinationRule
    | Gateway
    | ServiceEntry
    | Sidecar
    | ConfigMap
    | RateLimit
    | PeerAuthentication
    | AuthorizationPolicy
    | RequestAuthentication
    | Telemetry
)
"""Every resource model; each has `api_version`, `kind`, `metadata` and (not ConfigMap) `spec`."""

ResourceModel = (
    type[KubeService]
    | type[KubeDeployment]
    | type[VirtualService]
    | type[DestinationRule]
    | type[Gateway]
    | type[ServiceEntry]
    | type[Sidecar]
    | type[ConfigMap]
    | type[RateLimit]
    | type[PeerAuthentication]
    | type[AuthorizationPolicy]
    | type[RequestAuthentication]
    | type[Telemetry]
)


@dataclass(frozen=True)
class KindInfo:
    """One kind: its accepted apiVersions and the model that validates it."""

    kind: str
    versions: tuple[str, ...]
    model: ResourceModel | None
    legacy_groups: tuple[str, ...] = ()

    @property
    def groups(self) -> tuple[str, ...]:
        """API groups in which this kind lives or lived."""
        own = tuple(dict.fromkeys(group_of(v) for v in self.versions))
        return own + self.legacy_groups


KINDS: dict[str, KindInfo] = {
    info.kind: info
    for info in (
        KindInfo("Service", ("v1",), KubeService),
        KindInfo("Deployment", ("apps/v1",), KubeDeployment, legacy_groups=("extensions",)),
        KindInfo("VirtualService", NETWORKING_VERSIONS, VirtualService),
        KindInfo("DestinationRule", NETWORKING_VERSIONS, DestinationRule),
        KindInfo("Gateway", NETWORKING_VERSIONS, Gateway),
        KindInfo("ServiceEntry", NETWORKING_VERSIONS, ServiceEntry),
        KindInfo("Sidecar", NETWORKING_VERSIONS, Sidecar),
        KindInfo("ConfigMap", ("v1",), ConfigMap),  # istio-system/istio: the MeshConfig
        KindInfo("RateLimit", RATELIMIT_VERSIONS, RateLimit),  # plait's own API
        KindInfo("AuthorizationPolicy", SECURITY_VERSIONS, AuthorizationPolicy),
        KindInfo("PeerAuthentication", SECURITY_VERSIONS, PeerAuthentication),
        KindInfo("RequestAuthentication", SECURITY_VERSIONS, RequestAuthentication),
        KindInfo("Telemetry", TELEMETRY_VERSIONS, Telemetry),
    )
}


def group_of(api_version: str) -> str:
    """`networking.istio.io/v1` → `networking.istio.io`; `v1` → `` (the core group)."""
    return api_version.rpartition("/")[0]


KNOWN_GROUPS = frozenset(g for info in KINDS.values() for g in info.groups)
"""API groups plait reads. A kind under another group (Gateway API's `Gateway`, Knative's
`Service`) is a different resource, skipped with a warning; under one of these, a wrong
apiVersion is an error."""


def resource_key(resource: Resource) -> tuple[str, str, str]:
    """(kind, namespace, name): what makes a resource unique."""
    return (resource.kind, resource.metadata.namespace, resource.metadata.name)


STRICT_GROUPS: dict[str, frozenset[str]] = {
    "networking.istio.io": frozenset(
        [
            "VirtualService",
            "DestinationRule",
            "Gateway",
            "ServiceEntry",
            "Sidecar",
            "EnvoyFilter",
            "WorkloadEntry",
            "WorkloadGroup",
            "ProxyConfig",
        ]
    ),
    "security.istio.io": frozenset(
        ("AuthorizationPolicy", "PeerAuthentication", "RequestAuthentication")
    ),
    "telemetry.istio.io": frozenset(("Telemetry",)),
    "policy.plait.dev": frozenset(("RateLimit",)),
}
"""Every kind of the API groups whose names plait checks strictly: another kind there is
a typo (an error, as the API server would refuse it); a listed kind plait does not model
is skipped with a warning. Kinds of other groups are not plait's and only warned about."""
