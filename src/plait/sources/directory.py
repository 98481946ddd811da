"""The mesh directory: YAML files → validated resources, keeping the last good config.

A file that fails (YAML syntax, an invalid document) must not take valid config down:
for each file we remember the last resources that loaded cleanly. On reload, documents
that load are used; a resource that was good before and is now missing *because its file
has errors* keeps its last good version until the file is fixed or deleted. Messages
(errors and warnings) always describe the current files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from plait.api import Loaded, LoadResult, load_text
from plait.api.loader import SUFFIXES, yaml_files
from plait.errors import ConfigMessage, Severity

YAML_SUFFIXES = SUFFIXES


def is_config_path(path: str, root: Path) -> bool:
    """A YAML file below `root`, not inside one of its hidden directories (e.g. `.plait/`).

    Only the part below `root` counts: a mesh directory may itself sit in a hidden one.
    """
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        return False
    hidden = any(p.startswith(".") for p in rel.parts[:-1])
    return Path(path).suffix in YAML_SUFFIXES and not hidden


def _key(item: Loaded) -> tuple[str, str, str]:
    r = item.resource
    return (r.kind, r.metadata.namespace, r.metadata.name)


@dataclass(frozen=True)
class ConfigView:
    resources: tuple[Loaded, ...]
    messages: tuple[ConfigMessage, ...]
    kept: tuple[str, ...]  # "kind/ns/name (file)" served from the last good config


class DirectorySource:
    """Loads a mesh directory; not thread-safe, owned by one task."""

    def __init__(self, root: Path, check: Callable[[LoadResult], LoadResult] | None = None) -> None:
        """`check` vets each file's result (e.g. `plait.analysis.vet`): a resource it drops
        with an error counts as one that failed to load, so its last good version stays."""
        self.root = root
        self._check = check
        self._last_good: dict[str, dict[tuple[str, str, str], Loaded]] = {}
        # file → (its text, what loading that text gave): an edit re-parses one file only.
        self._parsed: dict[str, tuple[str, LoadResult]] = {}

    def _parse(self, file: str, text: str) -> LoadResult:
        cached = self._parsed.get(file)
        if cached is not None and cached[0] == text:
            return cached[1]
        result = load_text(text, file)
        if self._check is not None:
            result = self._check(result)
        self._parsed[file] = (text, result)
        return result

    def load(self) -> ConfigView:
        resources: list[Loaded] = []
        messages: list[ConfigMessage] = []
        kept: list[str] = []
        seen_files: set[str] = set()
        for path in [self.root] if self.root.is_file() else yaml_files(self.root):
            file = str(path)
            seen_files.add(file)
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                messages.append(ConfigMessage(file, 0, "", f"cannot read file: {exc}"))
                text = None
            if text is None:
                result_resources: tuple[Loaded, ...] = ()
                has_errors = True
            else:
                result = self._parse(file, text)
                result_resources = result.resources
                messages.extend(result.messages)
                has_errors = any(m.severity == Severity.ERROR for m in result.messages)
            current = {_key(r): r for r in result_resources}
            if has_errors:
                for key, old in self._last_good.get(file, {}).items():
                    if key not in current:
                        current[key] = old
                        kept.append(f"{key[0]}/{key[1]}/{key[2]} ({file})")
            self._last_good[file] = current
            resources.extend(current.values())
        resources = _drop_duplicates(resources, messages)
        for gone in set(self._last_good) - seen_files:
            del self._last_good[gone]
            self._parsed.pop(gone, None)
        return ConfigView(tuple(resources), tuple(messages), tuple(kept))


def _drop_duplicates(resources: list[Loaded], messages: list[ConfigMessage]) -> list[Loaded]:
    """The same kind/namespace/name in two files: the first file wins, the second is an error."""
    first: dict[tuple[str, str, str], Loaded] = {}
    for item in resources:
        key = _key(item)
        if key in first:
            prev = first[key].source
            messages.append(
                ConfigMessage(
                    item.source.file,
                    item.source.document,
                    "metadata.name",
                    f"{key[0]} {key[1]}/{key[2]} is already defined in {prev.file}"
                    f"[{prev.document}]; rename one of them",
                    kind=key[0],
                    name=key[2],
                )
            )
            continue
        first[key] = item
    return list(first.values())
