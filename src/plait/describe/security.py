"""The security section, per selected workload: the PeerAuthentication mode of each port
it serves (and the policy field that decided it), the AuthorizationPolicies by action,
the RequestAuthentications and the RateLimits that apply to it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plait.analysis.report import key
from plait.analysis.workloads import Workload
from plait.api.messages import format_path
from plait.api.security import Action
from plait.model.authz import authorization_policies_for, request_authentications_for
from plait.model.peerauth import PeerAuthentications, PeerMode, workload_port
from plait.model.registry import Service
from plait.model.snapshot import MeshSnapshot
from plait.translate.ratelimit import limits_for


def _decided(decided: PeerMode) -> dict[str, Any]:
    item = decided.item
    return {
        "mode": decided.mode.value,
        "policy": key(item) if item is not None else None,
        "field": format_path(decided.loc) if item is not None else None,
    }


def _limits(snapshot: MeshSnapshot, workload: Workload) -> list[dict[str, Any]]:
    out = []
    for rl in limits_for(snapshot, workload.proxy):
        for limit in rl.spec.limits:
            period = limit.interval or limit.unit or "second"
            out.append(
                {
                    "rateLimit": f"{rl.metadata.namespace}/{rl.metadata.name}",
                    "limit": limit.name or "",
                    "requests": limit.requests,
                    "per": str(period),
                    "burst": limit.max_tokens,
                    "matches": len(limit.match or ()),
                    "statusCode": rl.spec.status_code,
                }
            )
    return out


def workload_security(
    snapshot: MeshSnapshot, service: Service, workload: Workload, peers: PeerAuthentications
) -> dict[str, Any]:
    mtls = peers.workload(workload.namespace, workload.proxy.labels)
    ports = sorted({workload_port(p) for p in service.ports})
    authz = authorization_policies_for(snapshot, workload.proxy)
    return {
        "workload": workload.label(),
        "sidecar": workload.sidecar,
        "peerAuthentication": {
            "workload": _decided(mtls.own),
            "ports": {str(p): _decided(mtls.decided(p)) for p in ports},
        },
        "authorization": {a.value: [key(i) for i in authz.of(a)] for a in Action},
        "requestAuthentication": [
            key(i) for i in request_authentications_for(snapshot, workload.proxy)
        ],
        "rateLimits": _limits(snapshot, workload),
    }


def security_section(
    snapshot: MeshSnapshot, service: Service, workloads: Sequence[Workload]
) -> list[dict[str, Any]]:
    peers = PeerAuthentications(snapshot)
    return [workload_security(snapshot, service, w, peers) for w in workloads]
