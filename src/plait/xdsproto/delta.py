"""One resource type on one delta (incremental) xDS stream: names, per-resource versions,
ACK/NACK per response and per resource.

`DeltaSubscription` is `Subscription` (the state machine ADS and SDS share) read through
the incremental protocol. What differs from the State of the World
(https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol, "Incremental xDS"):

* Names change by difference: `resource_names_subscribe` adds, `_unsubscribe` removes;
  a request may carry both, or neither (a pure ACK). A name listed in `subscribe` must be
  sent again even when the server believes the client holds it ("the client may have
  forgotten"), unless the same request lists its version in `initial_resource_versions`.
  An unsubscribe of a name never subscribed is ignored.
* Changes are honoured whatever the nonce says: names are applied before the nonce is
  looked at, so a stale nonce never loses a subscription (envoyproxy/envoy#10363).
* Wildcard: CDS and LDS streams are always wildcard (Envoy subscribes to them with an
  empty list or `*`; after a reconnect it also lists the names it holds, which must not
  turn the stream into a named one: hashicorp/consul#12174). A `*` in `subscribe` makes
  any type wildcard.
* `initial_resource_versions` (first request of a type on a stream, after a reconnect):
  what the client already holds; only what differs is sent again, and a name it holds
  that the server no longer has is removed.
* Every response has its own nonce, and several may be in flight: each is ACKed or
  NACKed by its nonce. A nonce that is not in flight (answered, or never sent) is stale.
* A NACK rejects resources, not the whole type: Envoy applies the good clusters and
  listeners of a response and reports the bad ones in `error_detail`. The resources the
  message names (all of the response's when it names none) stand rejected at the version
  sent (a name counts as named when it stands as a word of its own, as Envoy writes
  "Error adding/updating cluster(s) NAME: ..."): the client is taken to hold what it
  held before, and that version is not sent again; the others count as applied. A rejection ends when a newer version of the
  resource is ACKed, or the resource is removed or unsubscribed. `nack` (what `plait
  status` shows) is the latest NACK while any rejection stands.

The server decides what to send (`plait.xds.delta`); this module only keeps the books:
`client` (name -> version the client holds, `Held`), `touched` (names whose books changed outside
a push: the planner must look at them again; none after a type's first request, as a
planner not yet in step looks at every name), `rejected`, the responses in flight.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from plait.xdsproto.subscription import Nack, RequestKind, Subscription, shared_set

WILDCARD = "*"
MAX_IN_FLIGHT = 64  # responses awaiting an answer; the oldest is then taken as stale


class Digested(Protocol):
    """A resource as the server holds it: `digest` is the version it is sent with."""

    @property
    def digest(self) -> str: ...


_SAID: list[Mapping[str, str]] = []  # the latest announcements, the newest first
_SAID_MAX = 4
_NEAR = 8  # an announcement within 1/_NEAR of a known one is kept as its differences


def shared_versions(
    versions: Mapping[str, str],
) -> tuple[Mapping[str, str], dict[str, str | None]]:
    """`initial_resource_versions` as a mapping many streams share and this stream's
    differences from it (None: a name of the shared mapping it does not hold). After a
    control-plane restart 1,000 proxies announce nearly the same ~2,000 names and
    versions (every proxy's own inbound cluster and listeners differ), and a copy per
    stream held ~90 MiB until its first push. The latest few announcements are tried;
    an announcement near none of them becomes one (its names and versions interned)."""
    if not versions:
        return {}, {}
    said = dict(versions)
    for i, known in enumerate(_SAID):
        if abs(len(known) - len(said)) * _NEAR > len(said):
            continue
        own: dict[str, str | None] = {n: v for n, v in said.items() if known.get(n) != v}
        if len(own) * _NEAR > len(said):
            continue
        if len(said) - len(own) != len(known):  # names of `known` this one lacks
            own.update((n, None) for n in known if n not in said)
        if i:
            _SAID.insert(0, _SAID.pop(i))
        return known, own
    interned = {sys.intern(n): sys.intern(v) for n, v in said.items()}
    _SAID.insert(0, interned)
    del _SAID[_SAID_MAX:]
    return interned, {}


class Held(MutableMapping[str, str]):
    """Name -> version a client holds: the digests of a mapping many streams share
    (`base`, for the names `wants` accepts), or, until the first push of a stream, the
    versions the client announced (`said`, shared by the streams that announce the same,
    also for the names `wants` accepts), under this stream's own differences (`own`;
    None: not held). A stream in step with the config costs a reference, not a copy of
    every name (`rebase`)."""

    __slots__ = ("_base", "_own", "_said", "_wants")

    def __init__(self, wants: Callable[[str], bool]) -> None:
        self._base: Mapping[str, Digested] = {}
        self._said: Mapping[str, str] = {}
        self._own: dict[str, str | None] = {}
        self._wants = wants

    @property
    def base(self) -> Mapping[str, Digested]:
        return self._base

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        if name in self._own:
            found = self._own[name]
            return default if found is None else found
        said = self._said.get(name)
        if said is not None:
            return said if self._wants(name) else default
        r = self._base.get(name)
        return default if r is None or not self._wants(name) else r.digest

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __getitem__(self, name: str) -> str:
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return found

    def __setitem__(self, name: str, version: str) -> None:
        self._own[name] = version

    def __delitem__(self, name: str) -> None:
        if self.get(name) is None:
            raise KeyError(name)
        self.discard(name)

    def discard(self, name: str) -> None:
        if name in self._base or name in self._said:
            self._own[name] = None
        else:
            self._own.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        own, said = self._own, self._said
        yield from (n for n, v in own.items() if v is not None)
        yield from (n for n in said if n not in own and self._wants(n))
        yield from (n for n in self._base if n not in own and n not in said and self._wants(n))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None

    def holds_only(self, base: Mapping[str, Digested]) -> bool:
        """Whether this already is `base` with no announcement under it (a `rebase`
        onto `base` keeping the own differences would change nothing)."""
        return self._base is base and not self._said

    def own_names(self) -> list[str]:
        return list(self._own)

    def said(self, name: str) -> str | None:
        """The version the client announced for `name` (None: it did not), or holds since."""
        if name in self._own:
            return self._own[name]
        return self._said.get(name)

    def announce(self, said: Mapping[str, str], own: Mapping[str, str | None]) -> None:
        """The client says it holds `said` (read-only, shared: see `shared_versions`),
        but for the `own` differences (None: not held)."""
        self._said = said
        self._own.update(own)

    def rebase(self, base: Mapping[str, Digested], keep: Iterable[str] = ()) -> None:
        """The client holds `base` (the names `wants` accepts), except the `keep` names,
        which hold what they hold now."""
        own = {n: self.get(n) for n in keep}
        self._base, self._said, self._own = base, {}, own


@dataclass(frozen=True)
class DeltaRequest:
    """The parts of a DeltaDiscoveryRequest the state machine needs."""

    type_url: str
    response_nonce: str = ""
    subscribe: tuple[str, ...] = ()
    unsubscribe: tuple[str, ...] = ()
    initial_versions: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None  # error_detail.message when error_detail is set (a NACK)


@dataclass(frozen=True)
class Rejected:
    """A resource version the client refused, and Envoy's message."""

    version: str
    message: str
    at: datetime


@dataclass(frozen=True)
class _InFlight:
    version: str  # the response's system_version_info
    upserts: Mapping[str, str]  # name -> version sent
    before: Mapping[str, str | None]  # name -> version the client held before it


@dataclass(kw_only=True)
class DeltaSubscription(Subscription):
    """One type on one delta stream (see the module docstring).

    `owes_reply` is True from a wildcard type's first request until a response is sent:
    Envoy's initial fetch of CDS/LDS waits for one, even when it carries nothing.
    """

    client: Held = field(init=False)
    touched: set[str] = field(default_factory=set)
    resend: set[str] = field(default_factory=set)  # sent next whatever the client holds
    rejected: dict[str, Rejected] = field(default_factory=dict)
    owes_reply: bool = False
    _in_flight: dict[str, _InFlight] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.client = Held(self.wants)

    def on_delta(self, req: DeltaRequest, now: datetime) -> RequestKind:
        """Record one request: names first (whatever the nonce), then its ACK or NACK."""
        first = not self.requested
        self.resubscribed = first
        self.requested = True
        subscribe = set(map(sys.intern, req.subscribe))  # (shared by the streams that list it)
        if WILDCARD in subscribe:
            subscribe.discard(WILDCARD)
            self.wildcard = True
        if first:
            self.client.announce(*shared_versions(req.initial_versions))
            self.owes_reply = self.wildcard
        if not self.wildcard or first:
            self._change_names(subscribe, set(req.unsubscribe) - {WILDCARD}, req)
        if first:  # nothing is in step on a new stream: every name gets a look anyway
            self.touched.clear()  # (1,000 reconnecting streams need not each keep a copy)
        if not req.response_nonce:
            return RequestKind.SUBSCRIBE
        sent = self._in_flight.pop(req.response_nonce, None)
        self.answered = not self._in_flight
        if sent is None:
            return RequestKind.STALE
        if req.error is not None:
            self._nacked(sent, req.response_nonce, req.error, now)
            return RequestKind.NACK
        for name in sent.upserts:
            self.rejected.pop(name, None)
        self.acked_version, self.acked_at = sent.version, now
        self._refresh_nack()
        return RequestKind.ACK

    def record_delta(
        self, version: str, nonce: str, upserts: Mapping[str, str], removed: Iterable[str]
    ) -> None:
        """A response is being written: the client is taken to hold what it carries."""
        before = {name: self.client.get(name) for name in upserts}
        self.client.update(upserts)
        self.resend.difference_update(upserts)
        for name in removed:
            self.client.discard(name)
            self.forget_rejection(name)
        self._in_flight[nonce] = _InFlight(version, upserts, before)
        if len(self._in_flight) > MAX_IN_FLIGHT:  # a client that does not answer
            del self._in_flight[next(iter(self._in_flight))]
        self.record_sent(version, nonce)
        self.owes_reply = False

    def wants(self, name: str) -> bool:
        return self.wildcard or name in self.subscribed

    def forget(self, name: str) -> None:
        """Send `name` again with the next response, whatever the client holds or says
        it holds (a later `initial_resource_versions` does not cancel this)."""
        self.client.discard(name)
        self.resend.add(name)
        self.touched.add(name)

    def forget_rejection(self, name: str) -> None:
        if self.rejected.pop(name, None) is not None:
            self._refresh_nack()

    def _holds(self, name: str, version: str) -> None:
        # (interned: 1,000 streams announcing the same names and versions share them)
        self.client[sys.intern(name)] = sys.intern(version)
        self.touched.add(name)

    def _change_names(self, subscribe: set[str], unsubscribe: set[str], req: DeltaRequest) -> None:
        for name in subscribe:
            version = req.initial_versions.get(name)
            if version is not None:
                if self.client.said(name) != version:  # (else: announced, shared)
                    self._holds(name, version)
            else:
                self.forget(name)  # "must still provide": the client may have forgotten it
        for name in unsubscribe & self.subscribed:
            self.client.discard(name)
            self.resend.discard(name)
            self.forget_rejection(name)
        if not self.wildcard and (subscribe or unsubscribe):  # (an ACK changes no names)
            self.set_names(shared_set((self.subscribed | subscribe) - unsubscribe))

    def _nacked(self, sent: _InFlight, nonce: str, error: str, now: datetime) -> None:
        suspects = [n for n in sent.upserts if _names(n, error)] or list(sent.upserts)
        for name in suspects:
            self.rejected[name] = Rejected(sent.upserts[name], error, now)
            if self.client.get(name) == sent.upserts[name]:  # not superseded since
                held = sent.before[name]
                if held is None:
                    self.client.discard(name)
                else:
                    self.client[name] = held
        self.nacked_versions.add(sent.version)
        self.nack = Nack(sent.version, nonce, error, self.acked_version or "", now)

    def _refresh_nack(self) -> None:
        if not self.rejected:
            self.nack = None


def _names(name: str, error: str) -> bool:
    """Whether Envoy's message names the resource: as a word of its own, as in "Error
    adding/updating cluster(s) NAME: ..., NAME2: ..." or "listener 'NAME'"."""
    return re.search(rf"(?:^|[\s'\",]){re.escape(name)}(?=$|[\s'\",:])", error) is not None
