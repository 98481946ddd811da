"""Kubernetes API objects → the inputs local mode has: config documents and workload instances.

Pure functions over the API server's JSON (dicts); no I/O.

- A Service, an Istio CRD object or the mesh ConfigMap becomes the document a YAML file
  would hold: its server-set metadata (uid, resourceVersion, managedFields, ...) and its
  `status` are dropped; the api loader then validates it exactly as a file's document.
- Workload instances come from EndpointSlices joined with their Pods, Istio's way: each
  endpoint gets Istio's health status from its conditions (`endpoint_health`) and only a
  HEALTHY one is an instance. A terminating endpoint, serving or not, leaves EDS as soon
  as the pod starts terminating: istiod never sends TERMINATING endpoints (it keeps a
  serving one, as DRAINING, only for persistent-session Services, which plait does not
  have), and unready ones only in its "send unhealthy endpoints" mode. The
  Pod gives labels, service account, its named container ports (a Service's
  `targetPort: http` resolves against them in `PortMap`) and whether it has a sidecar.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from plait.model.labels import Labels
from plait.model.registry import PortMap, WorkloadInstance

Obj = dict[str, Any]
Key = tuple[str, str]

SIDECAR_CONTAINER = "istio-proxy"
SIDECAR_STATUS = "sidecar.istio.io/status"
_META_KEPT = ("name", "namespace", "labels", "annotations")


def config_document(obj: Obj) -> Obj:
    """The object as a config document: apiVersion, kind, the user's metadata, the rest
    but `status`."""
    meta = obj.get("metadata") or {}
    doc = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    doc["metadata"] = {k: meta[k] for k in _META_KEPT if meta.get(k)}
    return doc


def source_name(obj: Obj) -> str:
    """How messages name an object: `kubernetes:KIND/NS/NAME` (no file behind it)."""
    meta = obj.get("metadata") or {}
    return source_of(str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))


def source_of(kind: str, namespace: str, name: str) -> str:
    where = f"{namespace}/{name}" if namespace else name
    return f"kubernetes:{kind}/{where}"


class Health(StrEnum):
    """Istio's health status of an endpoint (pilot's model.HealthStatus) without DRAINING,
    which istiod gives a terminating-but-serving endpoint only of a persistent-session
    Service: plait has no persistent sessions."""

    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    TERMINATING = "TERMINATING"


def endpoint_health(endpoint: Obj) -> Health:
    """As istiod's endpointHealthStatus reads an EndpointSlice endpoint's `conditions`:
    `ready` unset or true is healthy (the API server sets ready false on every
    terminating endpoint, and true on all of a `publishNotReadyAddresses` Service); a
    not-ready one is terminating unless `terminating` is false (then unhealthy),
    whatever `serving` says."""
    conditions = endpoint.get("conditions") or {}
    if conditions.get("ready") is not False:
        return Health.HEALTHY
    if conditions.get("terminating") is False:
        return Health.UNHEALTHY
    return Health.TERMINATING


def ready_endpoints(slices: Iterable[Obj]) -> dict[Key, str]:
    """(namespace, pod) → address of every healthy endpoint backed by a Pod."""
    ready: dict[Key, str] = {}
    for s in slices:
        ns = (s.get("metadata") or {}).get("namespace") or ""
        for ep in s.get("endpoints") or []:
            ref = ep.get("targetRef") or {}
            addresses = ep.get("addresses") or []
            if ref.get("kind") != "Pod" or not addresses:
                continue
            if endpoint_health(ep) is not Health.HEALTHY:
                continue
            ready.setdefault((ref.get("namespace") or ns, ref.get("name") or ""), addresses[0])
    return ready


def workload_name(pod: Obj) -> str:
    """The Deployment (or other owner) a pod belongs to, as Istio names workloads: a
    ReplicaSet owner loses its pod-template-hash suffix."""
    meta = pod.get("metadata") or {}
    owners = meta.get("ownerReferences") or []
    if not owners:
        return str(meta.get("name") or "")
    owner = owners[0]
    name = str(owner.get("name") or "")
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    if owner.get("kind") == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return name[: -len(template_hash) - 1]
    return name


def named_ports(pod: Obj) -> tuple[tuple[str, int], ...]:
    spec = pod.get("spec") or {}
    named: dict[str, int] = {}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for p in c.get("ports") or []:
            if p.get("name") and isinstance(p.get("containerPort"), int):
                named.setdefault(p["name"], p["containerPort"])
    return tuple(sorted(named.items()))


def has_sidecar(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return SIDECAR_STATUS in annotations or any(
        c.get("name") == SIDECAR_CONTAINER for c in containers
    )


def workload_instances(
    pods: Mapping[Key, Obj], slices: Iterable[Obj]
) -> tuple[WorkloadInstance, ...]:
    """One instance per Pod that some EndpointSlice lists as ready (sorted by key)."""
    instances = []
    for key, address in sorted(ready_endpoints(slices).items()):
        pod = pods.get(key)
        if pod is None:
            continue  # the slice is ahead of the pod watch; the pod's event follows
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        instances.append(
            WorkloadInstance(
                name=key[1],
                workload=workload_name(pod),
                namespace=key[0],
                labels=Labels.of(meta.get("labels") or {}),
                service_account=str(spec.get("serviceAccountName") or "default"),
                address=address,
                ports=PortMap(named=named_ports(pod)),
                sidecar=has_sidecar(pod),
            )
        )
    return tuple(instances)
