"""The control plane's snapshot build: the pipeline's store → a versioned MeshSnapshot.

Semantic validation (`plait.analysis.vet`) happens in the directory source, before
anything is translated: a resource with an error is dropped as its file loads (its last
good version, if any, stays in force, as for a YAML error). The cross-resource warnings
(`plait.analysis.analyze`) are computed here once per config view: a registry change
reuses them, as they do not depend on the registry.

Runs in the pipeline's worker thread, one build at a time; `local_collector` is set by
the owner before the first build and when the status server's port becomes known.
"""

from __future__ import annotations

import dataclasses

from plait.analysis import analyze
from plait.controlplane.pipeline import Store
from plait.errors import ConfigMessage
from plait.model.meshsettings import with_local_collector
from plait.model.snapshot import MeshSnapshot, build_snapshot
from plait.sources.directory import ConfigView


class SnapshotBuilder:
    def __init__(self) -> None:
        self.version = 0
        # the status server's address, where its trace store takes spans (tracestore.py)
        self.local_collector: tuple[str, int] | None = None
        self.kept: tuple[str, ...] = ()  # resources served from last good, at the last build
        self.instance_names: list[str] = []  # registered replicas in the last build
        self._warnings: tuple[ConfigView, tuple[ConfigMessage, ...]] | None = None

    def __call__(self, store: Store) -> MeshSnapshot:
        view, instances = store.config, store.instances
        self.version += 1
        snapshot = build_snapshot(
            view.resources,
            instances,
            self.version,
            view.messages,
            store.jwks_uris,
            store.cluster_ips,
        )
        if self._warnings is None or self._warnings[0] is not view:
            self._warnings = (view, tuple(analyze(snapshot, view.resources)))
        mesh = snapshot.mesh
        if self.local_collector is not None:
            mesh = with_local_collector(mesh, *self.local_collector)
        self.kept = view.kept
        self.instance_names = sorted(i.name for i in instances)
        messages = (*snapshot.messages, *self._warnings[1])
        return dataclasses.replace(snapshot, messages=messages, mesh=mesh)
