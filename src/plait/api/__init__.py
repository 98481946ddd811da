"""The resource model: Istio networking resources and the Kubernetes Service/Deployment
subset, as frozen pydantic models, and loading YAML into them with helpful messages.

    load_text(text, file) / load_path(path) → LoadResult(resources, messages)

Every problem is a ConfigMessage (file, document index, YAML field path); nothing raises.
Fields that validate but are not applied by the translator yet get a warning (`applied`).
"""

from plait.api.applied import APPLIED, unapplied_warnings
from plait.api.destinationrule import DestinationRule
from plait.api.duration import Duration
from plait.api.gateway import Gateway
from plait.api.kinds import KINDS, Resource, resource_key
from plait.api.kube import KubeDeployment, KubeService
from plait.api.loader import load_path, load_text
from plait.api.result import Loaded, LoadResult, Source, is_kind, of_kind
from plait.api.serviceentry import ServiceEntry
from plait.api.virtualservice import VirtualService

__all__ = [
    "APPLIED",
    "KINDS",
    "DestinationRule",
    "Duration",
    "Gateway",
    "KubeDeployment",
    "KubeService",
    "LoadResult",
    "Loaded",
    "Resource",
    "ServiceEntry",
    "Source",
    "VirtualService",
    "is_kind",
    "load_path",
    "load_text",
    "of_kind",
    "resource_key",
    "unapplied_warnings",
]
