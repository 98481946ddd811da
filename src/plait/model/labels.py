"""An immutable, hashable label set with Kubernetes selector matching."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Labels(Mapping[str, str]):
    """Sorted key/value pairs; usable as a dict key and inside frozen dataclasses."""

    items_: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, mapping: Mapping[str, str] | None = None) -> Labels:
        return cls(tuple(sorted((mapping or {}).items())))

    def __getitem__(self, key: str) -> str:
        for k, v in self.items_:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self.items_)

    def __len__(self) -> int:
        return len(self.items_)

    def matches(self, selector: Mapping[str, str]) -> bool:
        """True when every selector pair is present here (an empty selector matches all)."""
        return all(self.get(k) == v for k, v in selector.items())

    def as_dict(self) -> dict[str, str]:
        return dict(self.items_)
