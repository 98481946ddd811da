"""An immutable, hashable label set with Kubernetes selector matching."""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Labels(Mapping[str, str]):
    """Sorted key/value pairs; usable as a dict key and inside frozen dataclasses."""

    items_: tuple[tuple[str, str], ...] = ()
    _lookup: dict[str, str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lookup", dict(self.items_))

    @classmethod
    def of(cls, mapping: Mapping[str, str] | None = None) -> Labels:
        return cls(tuple(sorted((mapping or {}).items())))

    def __getitem__(self, key: str) -> str:
        return self._lookup[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup)

    def items(self) -> ItemsView[str, str]:
        """The pairs (the dict's view: Mapping's generic one is several times slower)."""
        return self._lookup.items()

    def __len__(self) -> int:
        return len(self.items_)

    def matches(self, selector: Mapping[str, str]) -> bool:
        """True when every selector pair is present here (an empty selector matches all)."""
        lookup = self._lookup
        return all(lookup.get(k) == v for k, v in selector.items())

    def as_dict(self) -> dict[str, str]:
        return dict(self._lookup)
