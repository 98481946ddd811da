"""Config as a mesh directory's files: name → YAML text, loaded as the sources load them
(an unchanged file gives the very same `Loaded` objects, a changed one new objects), for
tests of what the snapshot and translation derive from the previous config by identity."""

from __future__ import annotations

from plait.api import Loaded, load_text

_parsed: dict[tuple[str, str], list[Loaded]] = {}


def config(files: dict[str, str]) -> list[Loaded]:
    """The files' resources, in file-name order; a file's text is loaded once."""
    out: list[Loaded] = []
    for name in sorted(files):
        key = (name, files[name])
        if key not in _parsed:
            result = load_text(files[name], f"{name}.yaml")
            assert not result.errors, [str(m) for m in result.errors]
            _parsed[key] = list(result.resources)
        out += _parsed[key]
    return out
