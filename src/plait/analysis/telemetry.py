"""Telemetry resources whose provider names do not say what the mesh config provides.

A tracing provider must be a `zipkin` or `opentelemetry` extension provider of the mesh
ConfigMap (otherwise the workloads it covers are not traced); an access-logging provider
that is neither Istio's built-in `envoy` nor an `envoyFileAccessLog` extension provider
turns plait's file access log off for them (plait exports access logs nowhere else).
Warnings: Istio also accepts such a Telemetry and only logs the missing provider.
"""

from __future__ import annotations

from plait.analysis.report import finding
from plait.errors import ConfigMessage
from plait.model.snapshot import MeshSnapshot

BUILTIN_FILE_LOG = "envoy"


def telemetry_problems(snapshot: MeshSnapshot) -> list[ConfigMessage]:
    tracers = {name for name, _collector in snapshot.mesh.tracing.providers}
    file_logs = {BUILTIN_FILE_LOG, *snapshot.mesh.file_log_providers}
    out: list[ConfigMessage] = []
    for item in snapshot.telemetries:
        spec = item.resource.spec
        for i, tracing in enumerate(spec.tracing):
            for j, ref in enumerate(tracing.providers):
                if ref.name not in tracers:
                    out.append(
                        finding(
                            item,
                            ["spec", "tracing", i, "providers", j, "name"],
                            f"no zipkin or opentelemetry extensionProviders entry of the mesh "
                            f"config is named '{ref.name}': the workloads this Telemetry "
                            "covers are not traced",
                        )
                    )
        for i, logging in enumerate(spec.access_logging):
            names = [p.name for p in logging.providers]
            if names and not file_logs.intersection(names):
                out.append(
                    finding(
                        item,
                        ["spec", "accessLogging", i, "providers"],
                        f"none of {names} is 'envoy' or an envoyFileAccessLog extension "
                        "provider: plait writes access logs only to its file, so the "
                        "workloads this Telemetry covers write none",
                    )
                )
    return out


__all__ = ["telemetry_problems"]
