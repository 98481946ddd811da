"""Every error plait raises or reports, in one place.

    PlaitError                  base of everything plait raises
    ├── ConfigError             a configuration file is unusable (carries ConfigMessages)
    ├── EnvoyError              the Envoy binary is missing or would not start
    ├── MeshStateError          no running mesh where one was expected (status, down)
    └── StartupError            `plait up` could not bring the mesh to a ready state

ConfigMessage is not an exception: loading and validation collect them so that one bad
document is reported while every other document keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How bad a configuration message is."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class ConfigMessage:
    """One finding about one place in the configuration: file, document index, field path."""

    file: str
    document: int
    path: str
    message: str
    severity: Severity = Severity.ERROR
    kind: str = ""
    name: str = ""

    def __str__(self) -> str:
        where = f"{self.file}[{self.document}]"
        if self.kind:
            where += f" {self.kind}/{self.name}" if self.name else f" {self.kind}"
        field = f" {self.path}:" if self.path else ":"
        return f"{self.severity.value}: {where}{field} {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "document": self.document,
            "path": self.path,
            "message": self.message,
            "severity": self.severity.value,
            "kind": self.kind,
            "name": self.name,
        }


class PlaitError(Exception):
    """Base of every error plait raises."""


class ConfigError(PlaitError):
    """A configuration file could not be used; `messages` says where and why."""

    def __init__(self, messages: list[ConfigMessage]) -> None:
        self.messages = messages
        super().__init__("\n".join(str(m) for m in messages))


class EnvoyError(PlaitError):
    """The Envoy binary is missing, or an Envoy process could not be started."""


class MeshStateError(PlaitError):
    """There is no running mesh for a directory, or its state file is unreadable."""


class StartupError(PlaitError):
    """`plait up` could not bring every process to a ready state."""
