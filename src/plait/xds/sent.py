"""What a State-of-the-World stream has sent of a named type (EDS, RDS), sharing the
config's mapping instead of copying it.

A SotW stream must know, per subscribed name, the latest resource it sent, to send only
what changed. Kept as a dict, that is one entry per name per stream: at 1,000 services x
1,000 proxies, 1,000 EDS entries on each of 1,000 streams, ~50 MiB in all
(`docs/benchmarks.md`). Yet once a stream has been sent everything it is owed, what it
holds is exactly the config's own mapping (one object, shared by every proxy of a
snapshot) for the names it subscribes to. `SentNames` keeps that mapping and those names
as its base, and only what was sent since (or forgotten since) as the stream's own.

Delta streams do the same with `xdsproto.delta.Held` (versions a client announced or
holds). That one reads its base through the *current* subscription; a SotW stream must
not: a name subscribed after the rebase was never sent, so the base here counts only for
the names subscribed when it was set.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from plait.translate.resource import Resource


class SentNames(Mapping[str, Resource]):
    """The latest resource sent per name: this stream's own entries over `base` (the
    entries of `base` named in `names`), less the names forgotten since the base was set."""

    __slots__ = ("_base", "_gone", "_names", "_own")

    def __init__(self) -> None:
        self._base: Mapping[str, Resource] = {}
        self._names: frozenset[str] = frozenset()
        self._own: dict[str, Resource] = {}
        self._gone: set[str] = set()

    def get(self, name: str, default: Resource | None = None) -> Resource | None:  # type: ignore[override]
        found = self._own.get(name)
        if found is not None:
            return found
        if name in self._names and not (self._gone and name in self._gone):
            return self._base.get(name, default)
        return default

    def __getitem__(self, name: str) -> Resource:
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return found

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        yield from self._own
        for name in self._names:
            if name not in self._own and name not in self._gone and name in self._base:
                yield name

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def holds_only(self, base: Mapping[str, Resource]) -> bool:
        """Whether this is `base` (the very mapping) with nothing of the stream's own."""
        return self._base is base and not self._own and not self._gone

    def add(self, resources: Iterable[Resource]) -> None:
        """`resources` were sent."""
        for r in resources:
            self._own[r.name] = r

    def forget(self, name: str) -> None:
        """Whatever was sent for `name` no longer counts (it must be sent again)."""
        self._own.pop(name, None)
        if name in self._names:
            self._gone.add(name)

    def keep_only(self, names: frozenset[str]) -> None:
        """The subscription became `names`: what was sent for any other name is dropped."""
        self._own = {n: r for n, r in self._own.items() if n in names}
        if not self._names <= names:
            self._names = self._names & names
        self._gone &= names

    def rebase(self, base: Mapping[str, Resource], names: frozenset[str]) -> None:
        """The client has been sent, for every name in `names` that `base` has, that
        resource (or one with its digest): `base` and `names` are held as they are (not
        copied), and the stream's own entries collapse into them. Own entries for names
        `base` lacks stay (a resource removed from the config the client still holds)."""
        self._own = {n: r for n, r in self._own.items() if n not in base} if self._own else {}
        self._base, self._names, self._gone = base, names, set()
