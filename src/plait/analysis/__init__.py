"""Semantic validation: what a schema cannot see, checked before config reaches Envoy.

    vet(LoadResult) → LoadResult      per resource: errors drop the resource (never pushed)
    analyze(MeshSnapshot) → messages  across resources: warnings (nothing is dropped)

Pure functions, no I/O. `vet` runs on each file as it loads (the directory source then
keeps the resource's last good version, as for any error in that file); `analyze` runs
once per config change on the snapshot. Every message names file, document and field
path and says what to do. The checks are listed in docs/traffic/validation.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from plait.analysis.conflicts import host_conflicts
from plait.analysis.reachability import unreachable_rules
from plait.analysis.references import reference_problems
from plait.analysis.resource import resource_problems
from plait.analysis.security import security_problems
from plait.analysis.sidecars import selecting_nothing, sidecar_problems
from plait.analysis.telemetry import telemetry_problems
from plait.analysis.workloads import workloads_of
from plait.api import Loaded, LoadResult
from plait.errors import ConfigMessage, Severity
from plait.model.snapshot import MeshSnapshot


def vet(result: LoadResult) -> LoadResult:
    """`result` without the resources that have errors, with every problem as a message."""
    kept: list[Loaded] = []
    messages = list(result.messages)
    for item in result.resources:
        problems = resource_problems(item)
        messages += problems
        if not any(p.severity is Severity.ERROR for p in problems):
            kept.append(item)
    return LoadResult(tuple(kept), tuple(messages))


def analyze(snapshot: MeshSnapshot, config: Sequence[Loaded] | None = None) -> list[ConfigMessage]:
    """Warnings about how the snapshot's resources refer to and shadow each other.

    `config` (the loaded resources the snapshot was built from) supplies the Deployments
    the security checks need (`analysis.security`); without it they are skipped.
    """
    out = reference_problems(snapshot)
    for item in snapshot.virtual_services:
        out += unreachable_rules(item)
    out += host_conflicts(snapshot)
    out += telemetry_problems(snapshot)
    out += sidecar_problems(snapshot)
    if config is not None:
        out += security_problems(snapshot, config)
        if snapshot.sidecars:
            out += selecting_nothing(snapshot, workloads_of(config, snapshot))
    return out


__all__ = ["analyze", "resource_problems", "vet"]
