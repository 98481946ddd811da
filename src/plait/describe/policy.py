"""The DestinationRule section: the merged rules for the host and the effective policy of
each cluster (port × subset), with the TLS the sidecars use to reach it."""

from __future__ import annotations

from typing import Any

from plait.analysis.report import key
from plait.api.destinationrule import TrafficPolicy
from plait.model.registry import Service
from plait.model.snapshot import MeshSnapshot
from plait.translate.mtls import auto_mtls_applies
from plait.translate.names import outbound_cluster


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True) if model else None


def _tls(policy: TrafficPolicy | None, service: Service) -> str:
    tls = policy.tls if policy is not None else None
    if tls is not None:
        return tls.mode
    if auto_mtls_applies(service):
        return "auto (ISTIO_MUTUAL to sidecars, plain text to others)"
    return "DISABLE"


def policy_text(policy: TrafficPolicy | None) -> str:
    """One line per set field: `loadBalancer: {...}`; `-` for none."""
    if policy is None:
        return "-"
    dumped: dict[str, Any] = _dump(policy) or {}
    dumped.pop("portLevelSettings", None)
    dumped.pop("tls", None)
    return "; ".join(f"{k}: {v}" for k, v in dumped.items()) or "-"


def destination_rules_section(snapshot: MeshSnapshot, service: Service) -> dict[str, Any]:
    rules = snapshot.host_rules(service.hostname)
    subsets = [""] + [s.name for s in rules.subsets] if rules is not None else [""]
    clusters = []
    for port in service.ports:
        for subset in subsets:
            policy = rules.policy_for(port.port, subset) if rules is not None else None
            found = rules.subset(subset) if rules is not None and subset else None
            clusters.append(
                {
                    "cluster": outbound_cluster(service.hostname, port.port, subset),
                    "port": port.port,
                    "subset": subset,
                    "labels": dict(found.labels) if found is not None else {},
                    "tls": _tls(policy, service),
                    "policy": _dump(policy),
                    "summary": policy_text(policy),
                }
            )
    return {
        "rules": [
            {"name": key(i), "file": i.source.file} for i in (rules.sources if rules else ())
        ],
        "clusters": clusters,
    }
