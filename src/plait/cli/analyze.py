"""`plait analyze DIR`: load the directory as the control plane would, then analyze it
(`--kubeconfig`: the cluster's resources as `plait discovery` reads them, and files).

The same steps as the control plane (load, `analysis.vet` per file, snapshot, then
`analysis.analyze`), so `plait analyze` reports exactly what a running mesh would refuse
(errors) or warn about. The workload registry is left empty: no check depends on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from lightkube.config.kubeconfig import SingleConfig

from plait.analysis import analyze, vet
from plait.api.kinds import resource_key
from plait.cli.render import Grid, messages_table
from plait.errors import ConfigMessage, KubeApiError, Severity
from plait.kube import config as kubeconfig
from plait.kube.objects import source_of
from plait.model.snapshot import build_snapshot
from plait.sources.directory import ConfigView, DirectorySource
from plait.sources.events import ConfigChanged, SourceError, SourceEvent
from plait.sources.kube import KubernetesSource


@dataclass(frozen=True)
class Report:
    """Every message, sorted by file, document, errors first, then field path."""

    messages: tuple[ConfigMessage, ...]
    resources: int

    @property
    def errors(self) -> int:
        return sum(m.severity is Severity.ERROR for m in self.messages)

    @property
    def warnings(self) -> int:
        return len(self.messages) - self.errors


def analyze_directory(directory: Path) -> Report:
    view = DirectorySource(directory, check=vet).load()
    snapshot = build_snapshot(view.resources, (), 0, view.messages)
    messages = [*snapshot.messages, *analyze(snapshot, view.resources)]
    messages.sort(key=lambda m: (m.file, m.document, m.severity is not Severity.ERROR, m.path))
    return Report(tuple(messages), len(view.resources))


def relative_to(directory: Path, messages: tuple[ConfigMessage, ...]) -> list[ConfigMessage]:
    """Messages with file names relative to `directory`, for a narrower table."""
    root = os.path.abspath(directory)
    out = []
    for m in messages:
        path = os.path.abspath(m.file)
        if path == root or path.startswith(root + os.sep):
            m = dataclasses.replace(m, file=os.path.relpath(path, root) if path != root else ".")
        out.append(m)
    return out


def report_grid(directory: Path, messages: tuple[ConfigMessage, ...], wide: bool = False) -> Grid:
    """One line per message, files named relative to `directory`."""
    return messages_table(relative_to(directory, messages), wide, title="")


def analyze_cluster(config: SingleConfig, files: list[Path]) -> Report:
    """`plait analyze --kubeconfig`: the cluster's mesh resources as `plait discovery`
    reads them, with `files` in place of the cluster's resources of the same kind,
    namespace and name (istioctl analyze -f: check an edit before applying it)."""
    cluster = cluster_view(config)
    loaded = [DirectorySource(f, check=vet).load() for f in files]
    local = [r for view in loaded for r in view.resources]
    replaced = {resource_key(r.resource) for r in local}
    resources = (
        *(r for r in cluster.resources if resource_key(r.resource) not in replaced),
        *local,
    )
    file_messages = tuple(m for view in loaded for m in view.messages)
    gone = {source_of(*key) for key in replaced}
    kept = tuple(m for m in cluster.messages if m.file not in gone)  # the files speak for them
    snapshot = build_snapshot(resources, (), 0, (*kept, *file_messages))
    messages = [*snapshot.messages, *analyze(snapshot, resources)]
    messages.sort(key=lambda m: (m.file, m.document, m.severity is not Severity.ERROR, m.path))
    return Report(tuple(messages), len(resources))


def cluster_view(config: SingleConfig) -> ConfigView:
    """The cluster's mesh resources as `plait discovery` reads them (one list of each
    kind); raises KubeError."""
    return asyncio.run(_cluster_view(config))


async def _cluster_view(config: SingleConfig) -> ConfigView:
    """One list of every kind `plait discovery` reads (then the watches are cancelled)."""
    http = kubeconfig.http_client(config)
    try:
        source = KubernetesSource(http, check=vet)
        views: list[ConfigView] = []
        errors: list[str] = []

        def take(event: SourceEvent) -> None:
            if isinstance(event, ConfigChanged):
                views.append(event.view)
            elif isinstance(event, SourceError) and event.message:
                errors.append(event.message)

        ready = asyncio.Event()
        task = asyncio.create_task(source.run(take, ready))
        try:
            async with asyncio.timeout(30):
                while not ready.is_set():
                    if errors and "not served" not in errors[-1]:
                        raise KubeApiError(errors[-1])
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return views[-1]
    finally:
        await http.aclose()
