"""The record of what a pod network made, written before each thing is made.

Write-ahead: `record` saves the entry (atomically: temp file + rename) *before* the
caller creates the thing, so a crash at any point leaves a state file that names
everything that may exist. Teardown walks it backwards and tolerates things that never
got made. The file is JSON:

    {"version": 1, "run": "a1b2c3", "made": [{"kind": "netns", "name": "..."}, ...]}

Kinds: `bridge` (a link), `link` (a veth end on the host), `route` (a host route),
`netns` (a named network namespace), `etc` (an /etc/netns/NAME directory, removed with
its files), `dir` (a directory the run created, removed only if empty: /etc/netns).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plait.errors import PodNetworkError

VERSION = 1
KINDS = ("bridge", "link", "route", "netns", "etc", "dir")


@dataclass
class StateFile:
    path: Path
    run: str
    made: list[dict[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self, kind: str, **attrs: str) -> None:
        """Note that `kind` is about to be made, and save."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        self.made.append({"kind": kind, **attrs})
        self.save()

    def save(self) -> None:
        data = {"version": VERSION, "run": self.run, "made": self.made, **self.extra}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> StateFile:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PodNetworkError(f"{path}: cannot read the pod network state: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise PodNetworkError(f"{path}: not a version {VERSION} pod network state file")
        made = data.pop("made", [])
        run = str(data.pop("run", ""))
        data.pop("version")
        return cls(path=path, run=run, made=list(made), extra=data)
