"""What loading returns: typed resources with their source, and every message found."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic

from typing_extensions import TypeIs, TypeVar

from plait.api.kinds import Resource
from plait.errors import ConfigMessage, Severity

R = TypeVar("R", bound=Resource, default=Resource, covariant=True)
K = TypeVar("K", bound=Resource)


@dataclass(frozen=True)
class Source:
    """Where a resource came from: a file and the index of its YAML document (from 0)."""

    file: str
    document: int


@dataclass(frozen=True)
class Loaded(Generic[R]):
    """One valid resource and its source; `Loaded[VirtualService]` holds a VirtualService
    (a bare `Loaded` holds any kind: narrow it with `is_kind`/`of_kind`, never a cast)."""

    resource: R
    source: Source

    def __hash__(self) -> int:
        # Models hold dicts (labels, maps) and are not hashable; the source identifies one.
        return hash(self.source)

    def message(self, path: str, text: str, severity: Severity = Severity.WARNING) -> ConfigMessage:
        """A message about this resource at a field path (`spec.http[0].route`)."""
        return ConfigMessage(
            file=self.source.file,
            document=self.source.document,
            path=path,
            message=text,
            severity=severity,
            kind=self.resource.kind,
            name=self.resource.metadata.name,
        )


def is_kind(item: Loaded, model: type[K]) -> TypeIs[Loaded[K]]:
    """True (and so typed) when `item` holds a `model`."""
    return isinstance(item.resource, model)


def of_kind(items: Iterable[Loaded], model: type[K]) -> list[Loaded[K]]:
    """The items holding a `model`, in order."""
    return [i for i in items if is_kind(i, model)]


@dataclass(frozen=True)
class LoadResult:
    """The resources that loaded, in file and document order, and all messages."""

    resources: tuple[Loaded, ...]
    messages: tuple[ConfigMessage, ...]

    @property
    def errors(self) -> tuple[ConfigMessage, ...]:
        return tuple(m for m in self.messages if m.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[ConfigMessage, ...]:
        return tuple(m for m in self.messages if m.severity is Severity.WARNING)
