"""What one ADS stream knows about one resource type: sent, ACKed, NACKed, subscribed.

Plain objects, no gRPC, no clock (callers pass `now`). `StreamState` in `stream.py`
combines the four types and decides what to send.

Protocol references (https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol):
"ACK/NACK and resource type instance version", "When to send an update",
"How the client specifies what resources to return", "Resource updates" (nonces).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from plait.translate.resource import ProxyConfig, Resource


class SyncState(StrEnum):
    """Per-type sync state shown by `plait status`."""

    SYNCED = "SYNCED"
    STALE = "STALE"
    NOT_SENT = "NOT SENT"
    NACK = "NACK"


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


@dataclass(frozen=True)
class Nack:
    """A rejected response: the version Envoy refused and why."""

    version: str
    nonce: str
    message: str
    kept_version: str  # the version the client still runs (its request's version_info)
    at: datetime


@dataclass(frozen=True)
class PlannedResponse:
    """One DiscoveryResponse to write; the state already counts it as sent."""

    type_url: str
    version: str
    nonce: str
    resources: tuple[Resource, ...]


@dataclass
class TypeState:
    """One type on one stream.

    `sent` holds, for wildcard types (CDS, LDS), the full set of the latest response; for
    named types (EDS, RDS), the latest resource sent per *currently subscribed* name, so a
    name that is unsubscribed and subscribed again is sent again, as the spec requires.
    """

    type_url: str
    wildcard: bool
    requested: bool = False
    subscribed: frozenset[str] = frozenset()
    sent: dict[str, Resource] = field(default_factory=dict)
    sent_version: str | None = None
    sent_nonce: str | None = None
    answered: bool = True  # the latest nonce has been ACKed or NACKed
    acked: dict[str, Resource] = field(default_factory=dict)  # wildcard: the ACKed set
    acked_version: str | None = None
    acked_at: datetime | None = None
    nack: Nack | None = None
    nacked_versions: set[str] = field(default_factory=set)

    def on_request(self, req: Request, now: datetime) -> RequestKind:
        """Record one request for this type; subscriptions are honoured even when stale."""
        if not self.wildcard:
            self._subscribe(frozenset(req.resource_names))
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
        if self.wildcard:
            self.acked = dict(self.sent)
        return RequestKind.ACK

    def _subscribe(self, names: frozenset[str]) -> None:
        if names != self.subscribed:
            self.subscribed = names
            self.sent = {n: r for n, r in self.sent.items() if n in names}

    def client_set(self) -> dict[str, Resource]:
        """Wildcard types: what the client runs (the last set sent, unless it was NACKed)."""
        return self.acked if self.nack is not None else self.sent

    def owed(self, config: ProxyConfig) -> list[Resource]:
        """Named types: subscribed resources whose latest form the client has not been sent."""
        have = config.resources(self.type_url)
        out = []
        for name in sorted(self.subscribed):
            r = have.get(name)
            s = self.sent.get(name)
            if r is not None and (s is None or s.digest != r.digest):
                out.append(r)
        return out

    def respond(self, version: str, nonce: str, resources: tuple[Resource, ...]) -> PlannedResponse:
        if self.wildcard:
            self.sent = {r.name: r for r in resources}
        else:
            self.sent.update((r.name, r) for r in resources)
        self.sent_version, self.sent_nonce, self.answered = version, nonce, False
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
        return have.keys() <= self.subscribed and not self.owed(config)

    def sync_state(self, config: ProxyConfig) -> SyncState:
        if self.nack is not None:
            return SyncState.NACK
        if self.sent_nonce is None:
            return SyncState.NOT_SENT
        return SyncState.SYNCED if self.settled(config) else SyncState.STALE
