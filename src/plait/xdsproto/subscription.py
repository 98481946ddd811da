"""One resource type on one xDS stream: what the client subscribed to, and its ACKs/NACKs.

The subscription state machine shared by every xDS server plait runs: the control plane's
ADS (`typestate.TypeState` adds the resources sent per name on top) and the agent's SDS
server (`agent.sds`). Plain objects, no gRPC, no clock (callers pass `now`). The delta
(incremental) variant, `plait.xdsproto.delta.DeltaSubscription`, is this class with the
names changed by `resource_names_subscribe`/`_unsubscribe` (`set_names`) and ACK/NACK
kept per resource.

Rules (https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol, "ACK/NACK and
resource type instance version", "Resource updates", "How the client specifies what
resources to return"):

* A request without `response_nonce` is a subscription only (the first on a stream).
* A request whose nonce is the latest sent and not yet answered is an ACK, or a NACK when
  it carries `error_detail`. A NACKed version is remembered, so it is never sent again.
* A request whose nonce is not the latest sent is stale: it is neither an ACK nor a NACK,
  but its `resource_names` still update the subscription. A server must not drop a
  subscription change because its nonce is stale (envoyproxy/envoy#10363: Envoy sends new
  names with the nonce it last saw, which may already be outdated).
* A request repeating an answered nonce is a subscription only.
* For wildcard types (CDS, LDS) the names are ignored: the client gets the full set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class RequestKind(StrEnum):
    """How a DiscoveryRequest was understood."""

    SUBSCRIBE = "subscribe"  # no nonce, or a repeat of an answered nonce: subscription only
    ACK = "ack"
    NACK = "nack"
    STALE = "stale"  # nonce is not the latest sent for the type: only the names are used
    IGNORED = "ignored"  # a type this server does not serve


@dataclass(frozen=True)
class Request:
    """The parts of a DiscoveryRequest the state machine needs."""

    type_url: str
    version_info: str = ""
    response_nonce: str = ""
    resource_names: tuple[str, ...] = ()
    error: str | None = None  # error_detail.message when error_detail is set (a NACK)


_NAME_SETS: dict[tuple[str, ...], frozenset[str]] = {}
_NAME_SETS_MAX = 4096


def name_set(names: tuple[str, ...]) -> frozenset[str]:
    """The set of `names`, one object for every subscription that lists the same names
    (1,000 streams subscribed to the same 1,000 endpoint sets held 32 MiB of equal sets).
    Equal content, so sharing is safe where a subscription compares sets by identity.
    Bounded: when full, the table starts over."""
    found = _NAME_SETS.get(names)
    if found is None:
        if len(_NAME_SETS) >= _NAME_SETS_MAX:
            _NAME_SETS.clear()
        found = _NAME_SETS[names] = frozenset(names)
    return found


_SETS: dict[frozenset[str], frozenset[str]] = {}
_SHARED_FROM = 32  # names: smaller sets are cheap enough as they are


def shared_set(names: frozenset[str]) -> frozenset[str]:
    """`names` as the one frozenset every subscription to the same names holds (delta
    streams change their names by difference: 1,000 streams subscribed to the same 1,000
    endpoint sets held 31 MiB of equal sets). Bounded as `name_set`."""
    if len(names) < _SHARED_FROM:
        return names
    found = _SETS.get(names)
    if found is None:
        if len(_SETS) >= _NAME_SETS_MAX:
            _SETS.clear()
        found = _SETS[names] = names
    return found


@dataclass(frozen=True)
class Nack:
    """A rejected response: the version Envoy refused and why."""

    version: str
    nonce: str
    message: str
    kept_version: str  # the version the client still runs (its request's version_info)
    at: datetime


@dataclass(kw_only=True)
class Subscription:
    """One type on one stream (see the module docstring).

    `resubscribed` tells the caller, after each `on_request`, whether that request was the
    stream's first or changed the subscribed names: the server must then answer it, even
    when its nonce is stale.
    """

    wildcard: bool = False
    requested: bool = False
    subscribed: frozenset[str] = frozenset()
    resubscribed: bool = False
    sent_version: str | None = None
    sent_nonce: str | None = None
    answered: bool = True  # the latest nonce has been ACKed or NACKed
    acked_version: str | None = None
    acked_at: datetime | None = None
    nack: Nack | None = None
    nacked_versions: set[str] = field(default_factory=set)
    _names_seen: tuple[str, ...] = ()  # the latest request's names, as listed

    def on_request(self, req: Request, now: datetime) -> RequestKind:
        """Record one request; subscriptions are honoured even when its nonce is stale."""
        self.resubscribed = not self.requested
        if not self.wildcard and req.resource_names != self._names_seen:
            self._names_seen = req.resource_names  # (most requests repeat the last list)
            self.set_names(name_set(req.resource_names))
        if not self.requested:
            self.requested = True
            if req.version_info and self.acked_version is None:
                self.acked_version = req.version_info  # applied on an earlier stream
        if not req.response_nonce:
            return RequestKind.SUBSCRIBE
        if req.response_nonce != self.sent_nonce:
            return RequestKind.STALE
        if self.answered:
            return RequestKind.SUBSCRIBE
        self.answered = True
        if req.error is not None:
            assert self.sent_version is not None
            self.nack = Nack(
                self.sent_version, req.response_nonce, req.error, req.version_info, now
            )
            self.nacked_versions.add(self.sent_version)
            if req.version_info:
                self.acked_version = req.version_info
            return RequestKind.NACK
        self.acked_version = req.version_info
        self.acked_at = now
        self.nack = None
        self.on_acked()
        return RequestKind.ACK

    def set_names(self, names: frozenset[str]) -> None:
        """Subscribe to exactly `names` (a delta request's subscribe/unsubscribe applied)."""
        if names != self.subscribed:
            self.subscribed = names
            self.resubscribed = True
            self.on_names_changed(names)

    def record_sent(self, version: str, nonce: str) -> None:
        """A response with `version` and `nonce` is being written; it awaits an answer."""
        self.sent_version, self.sent_nonce, self.answered = version, nonce, False

    def on_names_changed(self, names: frozenset[str]) -> None:
        """Hook: the subscribed names became `names` (ADS forgets what it sent for others)."""

    def on_acked(self) -> None:
        """Hook: the latest response was ACKed."""
