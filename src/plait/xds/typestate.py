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

from dataclasses import dataclass, field
from enum import StrEnum

from plait.translate.resource import ProxyConfig, Resource
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


@dataclass
class TypeState(Subscription):
    """One type on one stream: its `Subscription` and the resources sent.

    `sent` holds, for wildcard types (CDS, LDS), the full set of the latest response; for
    named types (EDS, RDS), the latest resource sent per *currently subscribed* name, so a
    name that is unsubscribed and subscribed again is sent again, as the spec requires.
    """

    type_url: str
    sent: dict[str, Resource] = field(default_factory=dict)
    acked: dict[str, Resource] = field(default_factory=dict)  # wildcard: the ACKed set
    # Named types: (config version, subscribed names) for which nothing was owed, while
    # `sent` has not changed since; spares comparing every name on every wake.
    _nothing_owed: tuple[str, frozenset[str]] | None = None

    def on_names_changed(self, names: frozenset[str]) -> None:
        self.sent = {n: r for n, r in self.sent.items() if n in names}
        self._nothing_owed = None

    def forget(self, name: str) -> None:
        """Named types: send `name` again with the next response (cluster warming)."""
        if self.sent.pop(name, None) is not None:
            self._nothing_owed = None

    def on_acked(self) -> None:
        if self.wildcard:
            self.acked = dict(self.sent)

    def client_set(self) -> dict[str, Resource]:
        """Wildcard types: what the client runs (the last set sent, unless it was NACKed)."""
        return self.acked if self.nack is not None else self.sent

    def owed(self, config: ProxyConfig) -> list[Resource]:
        """Named types: subscribed resources whose latest form the client has not been sent."""
        key = (config.version(self.type_url), self.subscribed)
        if key == self._nothing_owed:
            return []
        have = config.resources(self.type_url)
        out = []
        for name in self.subscribed:
            r = have.get(name)
            s = self.sent.get(name)
            if r is not None and (s is None or (s is not r and s.digest != r.digest)):
                out.append(r)
        if not out:
            self._nothing_owed = key
        out.sort(key=lambda r: r.name)
        return out

    def respond(self, version: str, nonce: str, resources: tuple[Resource, ...]) -> PlannedResponse:
        if self.wildcard:
            self.sent = {r.name: r for r in resources}
        else:
            self.sent.update((r.name, r) for r in resources)
            self._nothing_owed = None
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
        return have.keys() <= self.subscribed and not self.owed(config)

    def sync_state(self, config: ProxyConfig) -> SyncState:
        if self.nack is not None:
            return SyncState.NACK
        if self.sent_nonce is None:
            return SyncState.NOT_SENT
        return SyncState.SYNCED if self.settled(config) else SyncState.STALE
