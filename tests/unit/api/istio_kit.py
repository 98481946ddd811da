"""What `plait analyze` says about YAML text: the errors and warnings of the whole pipeline.

The same steps as `cli.analyze.analyze_directory` (load, vet, snapshot, analyze) on text,
so a test states a verdict the way a user would see it.
"""

from __future__ import annotations

from plait.analysis import analyze, vet
from plait.api import load_text
from plait.errors import ConfigMessage, Severity
from plait.model.snapshot import build_snapshot


def messages(text: str) -> list[ConfigMessage]:
    """Every message `plait analyze` reports for `text` (one file)."""
    view = vet(load_text(text, "test.yaml"))
    snapshot = build_snapshot(view.resources, (), 0, view.messages)
    return [*snapshot.messages, *analyze(snapshot, view.resources)]


def errors(text: str) -> list[ConfigMessage]:
    return [m for m in messages(text) if m.severity is Severity.ERROR]


def error_texts(text: str) -> list[str]:
    return [f"{m.path}: {m.message}" for m in errors(text)]
