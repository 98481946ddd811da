"""What one ADS stream knows about one resource type: sent, ACKed, NACKed, subscribed.

Plain objects, no gRPC, no clock (callers pass `now`). The subscription, nonce and
ACK/NACK rules are `plait.xdsproto.subscription`'s, shared with the agent's SDS server;
this module adds the resources sent. `StreamState` in `stream.py` combines the four types and
decides what to send.

Protocol references (https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol):
"ACK/NACK and resource type instance version", "When to send an update",
"How the client specifies what resources to return", "Resource updates" (nonces).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from plait.translate.resource import ProxyConfig, Resource
from plait.xds import framing
from plait.xds.sent import SentNames
from plait.xdsproto.subscription import Nack, Request, RequestKind, Subscription

__all__ = [
    "Nack",
    "PlannedResponse",
    "Request",
    "RequestKind",
    "Subscription",
    "SyncState",
    "TypeState",
]


class SyncState(StrEnum):
    """Per-type sync state shown by `plait status`."""

    SYNCED = "SYNCED"
    STALE = "STALE"
    NOT_SENT = "NOT SENT"
    NACK = "NACK"


@dataclass(frozen=True)
class PlannedResponse:
    """One DiscoveryResponse to write; the state already counts it as sent."""

    type_url: str
    version: str
    nonce: str
    resources: tuple[Resource, ...]

    def frame(self, control_plane: bytes) -> bytes:
        """The serialized DiscoveryResponse."""
        return framing.encode_response(
            self.version, self.type_url, self.nonce, self.resources, control_plane
        )


_DIFFS: OrderedDict[
    tuple[int, int], tuple[Mapping[str, Resource], Mapping[str, Resource], frozenset[str]]
] = OrderedDict()


_REMEMBER_FROM = 64  # entries: smaller mappings (a proxy's own) are not remembered


def changed_names(old: Mapping[str, Resource], new: Mapping[str, Resource]) -> frozenset[str]:
    """Names whose resource in `new` is not the one in `old` (added or changed).

    Every stream of a snapshot holds the same mapping objects, so the newest few pairs
    are remembered (by identity, the mappings kept alive with them): one walk per change,
    not one per stream.
    """
    if len(new) < _REMEMBER_FROM:  # a proxy's own small mapping: cheaper to redo
        return _diff(old, new)
    key = (id(old), id(new))
    found = _DIFFS.get(key)
    if found is not None and found[0] is old and found[1] is new:
        return found[2]
    names = _diff(old, new)
    _DIFFS[key] = (old, new, names)
    while len(_DIFFS) > 16:
        _DIFFS.popitem(last=False)
    return names


_GONE: OrderedDict[
    tuple[int, int], tuple[Mapping[str, Resource], Mapping[str, Resource], frozenset[str]]
] = OrderedDict()


def removed_names(old: Mapping[str, Resource], new: Mapping[str, Resource]) -> frozenset[str]:
    """Names in `old` that `new` no longer has; remembered like `changed_names`."""
    if len(old) < _REMEMBER_FROM:
        return frozenset(n for n in old if n not in new)
    key = (id(old), id(new))
    found = _GONE.get(key)
    if found is not None and found[0] is old and found[1] is new:
        return found[2]
    names = frozenset(n for n in old if n not in new)
    _GONE[key] = (old, new, names)
    while len(_GONE) > 16:
        _GONE.popitem(last=False)
    return names


def _diff(old: Mapping[str, Resource], new: Mapping[str, Resource]) -> frozenset[str]:
    return frozenset(
        n
        for n, r in new.items()
        if (o := old.get(n)) is None or (o is not r and o.digest != r.digest)
    )


@dataclass
class TypeState(Subscription):
    """One type on one stream: its `Subscription` and the resources sent.

    `sent` holds, for wildcard types (CDS, LDS), the full set of the latest response;
    `named`, for named types (EDS, RDS), the latest resource sent per *currently
    subscribed* name, so a name that is unsubscribed and subscribed again is sent again,
    as the spec requires (a `SentNames`: the config's own mapping once the client is owed
    nothing, `xds/sent.py`).
    """

    type_url: str
    # Wildcard types: the latest set sent (replaced, never changed in place: often the
    # config's own mapping, shared by every stream of a snapshot), and the set ACKed.
    sent: Mapping[str, Resource] = field(default_factory=dict)
    acked: Mapping[str, Resource] = field(default_factory=dict)
    named: SentNames = field(default_factory=SentNames)  # named types
    # Named types: the resources of a config (the mapping object, shared by every proxy
    # of a snapshot) and the names subscribed when the client was last owed nothing, and
    # the names forgotten since; from there only the names that differ between that
    # mapping and a newer one need a look (`changed_names`, computed once for all streams).
    _clean: tuple[Mapping[str, Resource], frozenset[str]] | None = None
    _dirty: set[str] = field(default_factory=set)
    _owing: tuple[Mapping[str, Resource], frozenset[str], list[Resource]] | None = None
    _covered: tuple[Mapping[str, Resource], frozenset[str]] | None = None

    def on_names_changed(self, names: frozenset[str]) -> None:
        if self.wildcard:
            self.sent = {n: r for n, r in self.sent.items() if n in names}
        else:
            self.named.keep_only(names)
        self._clean = None

    def forget(self, name: str) -> None:
        """Named types: send `name` again with the next response (cluster warming)."""
        self.named.forget(name)
        self._dirty.add(name)

    def on_acked(self) -> None:
        if self.wildcard:
            self.acked = self.sent  # (a wildcard `sent` is replaced, never changed in place)

    def client_set(self) -> Mapping[str, Resource]:
        """Wildcard types: what the client runs (the last set sent, unless it was NACKed)."""
        return self.acked if self.nack is not None else self.sent

    def owed(self, config: ProxyConfig) -> list[Resource]:
        """Named types: subscribed resources whose latest form the client has not been sent."""
        have = config.resources(self.type_url)
        clean = self._clean
        if clean is not None and clean[1] is self.subscribed:
            if clean[0] is have and not self._dirty:
                return []
            names: Iterable[str] = changed_names(clean[0], have) | self._dirty
        else:
            names = self.subscribed
        out = []
        sent = self.named
        for name in names:
            r = have.get(name)
            if r is None or name not in self.subscribed:
                continue
            s = sent.get(name)
            if s is None or (s is not r and s.digest != r.digest):
                out.append(r)
        out.sort(key=lambda r: r.name)
        if not out:
            self._owed_nothing(have, self.subscribed)
        self._owing = (have, self.subscribed, out)
        return out

    def _owed_nothing(self, have: Mapping[str, Resource], names: frozenset[str]) -> None:
        """Named types: the client has been sent `have` for every name in `names`."""
        self._clean, self._dirty = (have, names), set()
        self.named.rebase(have, names)

    def respond(
        self,
        version: str,
        nonce: str,
        resources: tuple[Resource, ...],
        held: Mapping[str, Resource] | None = None,
    ) -> PlannedResponse:
        """Record `resources` as sent; `held` (wildcard types): a mapping of exactly those
        resources by name, kept as `sent` rather than a copy (1,000 SotW streams of 1,000
        clusters each held ~40 MiB of equal dicts)."""
        if self.wildcard:
            self.sent = held if held is not None else {r.name: r for r in resources}
        else:
            self.named.add(resources)
            owing = self._owing
            if owing is not None and owing[1] is self.subscribed and list(resources) == owing[2]:
                self._owed_nothing(owing[0], owing[1])  # all owed: sent
            self._owing = None
        self.record_sent(version, nonce)
        return PlannedResponse(self.type_url, version, nonce, resources)

    def settled(self, config: ProxyConfig) -> bool:
        """True when the client runs everything of this type it should, and has said so.

        For named types this includes having subscribed to every name in `config`: a
        ClusterLoadAssignment or RouteConfiguration that nothing names keeps a type unsettled
        (ProxyConfig must be consistent, as in go-control-plane's `Consistent()`).
        """
        have = config.resources(self.type_url)
        if not self.requested:
            return not have
        if self.nack is not None or not self.answered:
            return False
        if self.wildcard:
            return self.sent_version == config.version(self.type_url)
        covered = self._covered  # a mapping whose names were all subscribed
        if covered is None or covered[1] is not self.subscribed:
            if not have.keys() <= self.subscribed:
                return False
        elif covered[0] is not have and not changed_names(covered[0], have) <= self.subscribed:
            return False  # (only names added since `covered` can be unsubscribed)
        self._covered = (have, self.subscribed)
        return not self.owed(config)

    def sync_state(self, config: ProxyConfig) -> SyncState:
        if self.nack is not None:
            return SyncState.NACK
        if self.sent_nonce is None:
            return SyncState.NOT_SENT
        return SyncState.SYNCED if self.settled(config) else SyncState.STALE
