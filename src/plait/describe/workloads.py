"""The Service section: ports with protocols, selector, the Deployments it selects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plait.analysis.workloads import Workload, selecting, workloads_of
from plait.api import KubeDeployment, Loaded
from plait.model.identity import SpiffeId
from plait.model.registry import Service
from plait.model.snapshot import MeshSnapshot


def selected_workloads(
    snapshot: MeshSnapshot, config: Sequence[Loaded], service: Service
) -> list[Workload]:
    """The Deployments (never the gateway) whose pods the Service's selector picks."""
    return [
        w
        for w in workloads_of(config, snapshot)
        if not w.is_gateway and service in selecting(snapshot, w)
    ]


def _replicas(workload: Workload) -> int:
    dep = workload.source.resource if workload.source is not None else None
    return dep.spec.replicas if isinstance(dep, KubeDeployment) else 0


def service_section(
    snapshot: MeshSnapshot, service: Service, workloads: Sequence[Workload]
) -> dict[str, Any]:
    trust_domain = snapshot.mesh.trust_domain
    return {
        "hostname": service.hostname,
        "name": service.name,
        "namespace": service.namespace,
        "external": service.external,
        "resolution": service.resolution.value,
        "ports": [
            {
                "name": p.name,
                "port": p.port,
                "targetPort": p.target_port,
                "protocol": p.protocol.value,
            }
            for p in service.ports
        ],
        "selector": service.selector.as_dict(),
        "workloads": [
            {
                "name": w.name,
                "namespace": w.namespace,
                "labels": w.proxy.labels.as_dict(),
                "serviceAccount": w.service_account,
                "replicas": _replicas(w),
                "sidecar": w.sidecar,
                "identity": SpiffeId(trust_domain, w.namespace, w.service_account).uri,
            }
            for w in workloads
        ],
        "identities": sorted(
            {SpiffeId(trust_domain, w.namespace, w.service_account).uri for w in workloads}
        ),
    }
