"""The control plane's inputs driven by hand: what its two sources emit on a change of
the paths given (each source reloads when a path it `wants` changed), applied to a store
and built by the control plane's `SnapshotBuilder`."""

from __future__ import annotations

from pathlib import Path

from plait.analysis import vet
from plait.controlplane.builder import SnapshotBuilder
from plait.controlplane.pipeline import Store
from plait.model.snapshot import MeshSnapshot
from plait.sources.events import ConfigChanged, WorkloadsChanged
from plait.sources.meshdir import MeshDirectorySource
from plait.sources.workloads import RegistrySource, load_registry


class Inputs:
    def __init__(self, root: Path) -> None:
        self.directory = MeshDirectorySource(root, check=vet)
        self.registry = RegistrySource(root)
        self.store = Store()
        self.builder = SnapshotBuilder()
        self._config()
        self._instances()

    def _config(self) -> None:
        self.store.apply(ConfigChanged(self.directory.name, self.directory.loader.load()))

    def _instances(self) -> None:
        instances = tuple(load_registry(self.registry.root))
        self.store.apply(WorkloadsChanged(self.registry.name, instances))

    def apply(self, changed: set[str]) -> bool:
        """Reload what the changed paths concern; True if any source reloaded."""
        config = any(self.directory.wants(p) for p in changed)
        registry = any(self.registry.wants(p) for p in changed)
        if config:
            self._config()
        if registry:
            self._instances()
        return config or registry

    def snapshot(self) -> MeshSnapshot:
        return self.builder(self.store)

    @property
    def kept(self) -> tuple[str, ...]:
        return self.builder.kept
