"""The control plane's snapshot build: the pipeline's store → a versioned MeshSnapshot.

Semantic validation (`plait.analysis.vet`) happens in the directory source, before
anything is translated: a resource with an error is dropped as its file loads (its last
good version, if any, stays in force, as for a YAML error). The cross-resource warnings
(`plait.analysis.analyze`) are computed here once per config view: a registry change
reuses them, as they do not depend on the registry.

Endpoint fast path: when the only input that changed since the last build is the set of
workload instances (a replica came or went, an EndpointSlice changed) the new snapshot is
the last one with the endpoints of the affected hosts recomputed
(`model.snapshot.with_instances`): no re-indexing, no analysis, every other field the
same object, which is how the Translator knows to rebuild nothing but those hosts'
endpoint sets (`translate.reuse.endpoint_change`). Anything else that changed with it (a
config view, a cluster IP, a discovered JWKS URI, the local collector) means a full
build. `full_builds` and `endpoint_builds` count each kind.

Config fast path: when only the config views changed and the change is VirtualServices
and DestinationRules only (the same objects otherwise: the sources keep an unchanged
resource's `Loaded`), the snapshot is the last one with what those objects feed re-made
(`model.withconfig.with_config`), so the Translator finds by identity the few hosts and
VirtualServices that changed (`translate.reuse.config_change`); the analysis warnings are
computed again for the new view. `config_builds` counts these.

Runs in the pipeline's worker thread, one build at a time; `local_collector` is set by
the owner before the first build and when the status server's port becomes known.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from plait.analysis import analyze
from plait.controlplane.pipeline import Store
from plait.errors import ConfigMessage
from plait.model.meshsettings import with_local_collector
from plait.model.registry import WorkloadInstance
from plait.model.snapshot import MeshSnapshot, build_snapshot, with_instances
from plait.model.withconfig import with_config
from plait.sources.directory import ConfigView


@dataclasses.dataclass(frozen=True)
class _Inputs:
    """What a build read besides the instances; the views are compared by identity (a
    source emits a new view on every change), the rest by value."""

    views: tuple[ConfigView, ...]
    cluster_ips: Mapping[str, str]
    jwks_uris: Mapping[str, str]
    local_collector: tuple[str, int] | None

    def same(self, other: _Inputs) -> bool:
        return (
            len(self.views) == len(other.views)
            and all(a is b for a, b in zip(self.views, other.views, strict=True))
            and self.same_but_views(other)
        )

    def same_but_views(self, other: _Inputs) -> bool:
        return (self.cluster_ips, self.jwks_uris, self.local_collector) == (
            other.cluster_ips,
            other.jwks_uris,
            other.local_collector,
        )


class SnapshotBuilder:
    def __init__(self) -> None:
        self.version = 0
        # the status server's address, where its trace store takes spans (tracestore.py)
        self.local_collector: tuple[str, int] | None = None
        self.kept: tuple[str, ...] = ()  # resources served from last good, at the last build
        self.instance_names: list[str] = []  # registered replicas in the last build
        self.full_builds = 0
        self.endpoint_builds = 0
        self.config_builds = 0
        self._warnings: tuple[ConfigView, tuple[ConfigMessage, ...]] | None = None
        self._last: tuple[_Inputs, tuple[WorkloadInstance, ...], MeshSnapshot] | None = None
        self._view: ConfigView | None = None  # the merged config view of the last build

    def __call__(self, store: Store) -> MeshSnapshot:
        inputs = _Inputs(
            tuple(store.configs.values()),
            store.cluster_ips,
            store.jwks_uris,
            self.local_collector,
        )
        instances = store.instances
        self.version += 1
        view = store.config
        snapshot = None
        if self._last is not None and self._last[0].same(inputs):
            snapshot = self._endpoints(store, instances)
        elif (
            self._last is not None
            and self._last[0].same_but_views(inputs)
            and self._last[1] == instances
        ):
            snapshot = self._config(view)
        if snapshot is None:
            snapshot = self._full(store, instances)
        self.instance_names = sorted(i.name for i in instances)
        self._last = (inputs, instances, snapshot)
        self._view = view
        return snapshot

    def _config(self, view: ConfigView) -> MeshSnapshot | None:
        """The config fast path (see the module docstring), or None when it does not apply."""
        assert self._last is not None and self._view is not None
        last = self._last[2]
        snapshot = with_config(
            last, self._view.resources, view.resources, self.version, view.messages
        )
        if snapshot is None:
            return None
        self.kept = view.kept
        self.config_builds += 1
        return dataclasses.replace(
            snapshot, messages=(*snapshot.messages, *self._analyzed(view, snapshot))
        )

    def _analyzed(self, view: ConfigView, snapshot: MeshSnapshot) -> tuple[ConfigMessage, ...]:
        """The cross-resource warnings of `view` (computed once per view)."""
        if self._warnings is None or self._warnings[0] is not view:
            self._warnings = (view, tuple(analyze(snapshot, view.resources)))
        return self._warnings[1]

    def _endpoints(self, store: Store, instances: tuple[WorkloadInstance, ...]) -> MeshSnapshot:
        assert self._last is not None
        _, before, last = self._last
        snapshot, _ = with_instances(last, store.config.resources, before, instances, self.version)
        self.endpoint_builds += 1
        return snapshot

    def _full(self, store: Store, instances: tuple[WorkloadInstance, ...]) -> MeshSnapshot:
        view = store.config
        snapshot = build_snapshot(
            view.resources,
            instances,
            self.version,
            view.messages,
            store.jwks_uris,
            store.cluster_ips,
        )
        warnings = self._analyzed(view, snapshot)
        mesh = snapshot.mesh
        if self.local_collector is not None:
            mesh = with_local_collector(mesh, *self.local_collector)
        self.kept = view.kept
        self.full_builds += 1
        return dataclasses.replace(snapshot, messages=(*snapshot.messages, *warnings), mesh=mesh)
