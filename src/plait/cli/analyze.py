"""`plait analyze DIR`: load the directory as the control plane would, then analyze it.

The same steps as the control plane (load, `analysis.vet` per file, snapshot, then
`analysis.analyze`), so `plait analyze` reports exactly what a running mesh would refuse
(errors) or warn about. The workload registry is left empty: no check depends on it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from plait.analysis import analyze, vet
from plait.cli.render import Grid, messages_table
from plait.errors import ConfigMessage, Severity
from plait.model.snapshot import build_snapshot
from plait.sources.directory import DirectorySource


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
