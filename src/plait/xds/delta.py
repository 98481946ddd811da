"""Per-stream ADS state for delta (incremental) xDS, and what to send next.

The delta counterpart of `stream.py` (as go-control-plane keeps sotw/ and delta/ apart):
plain objects, no gRPC, no clock. The subscription and per-resource ACK/NACK books are
`plait.xdsproto.delta.DeltaSubscription`'s; this module compares them with a
`ProxyConfig` and plans responses that carry only what differs.

Rules (https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol, "Incremental
xDS"; the SotW rules of `stream.py` that are not about the wire hold here too):

* A resource's version is `Resource.digest`, the hash of the serialized bytes every
  proxy shares; a resource is sent when the client does not hold that version (and that
  version does not stand rejected), a removal when the client holds a name the config no
  longer has for it. `system_version_info` is the type's version, as in SotW.
* Only the names that can differ are looked at: those that changed between the config
  the type was last in step with and the current one (`changed_names`/`removed_names`,
  computed once for all streams of a snapshot) and those the books touched since
  (subscriptions, `initial_resource_versions`, rejections). A new stream looks at all.
* The first request of CDS and LDS is always answered, even with nothing: Envoy's
  initial fetch waits for a response.
* Make before break: cluster removals wait until LDS and RDS are settled, and the
  removal of a cluster's endpoints waits for the cluster's; a cluster that is added or
  changed makes EDS send its endpoints again (cluster warming).
* Order within one plan: PUSH_ORDER (CDS, EDS, LDS, RDS).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from plait.translate.resource import ProxyConfig, Resource
from plait.translate.typeurls import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE, WILDCARD_TYPES
from plait.xds import framing
from plait.xds.typestate import SyncState, changed_names, removed_names
from plait.xdsproto.delta import DeltaRequest, DeltaSubscription
from plait.xdsproto.subscription import RequestKind


@dataclass(frozen=True)
class PlannedDelta:
    """One DeltaDiscoveryResponse to write; the state already counts it as sent."""

    type_url: str
    version: str
    nonce: str
    resources: tuple[Resource, ...]
    removed: tuple[str, ...]

    def frame(self, control_plane: bytes) -> bytes:
        """The serialized DeltaDiscoveryResponse (`control_plane`: its field 7)."""
        return framing.encode_delta_response(
            self.version, self.type_url, self.nonce, self.resources, self.removed, control_plane
        )


@dataclass(kw_only=True)
class DeltaTypeState(DeltaSubscription):
    """One type on one delta stream: its books, and the config it was last in step with."""

    type_url: str
    _in_step: Mapping[str, Resource] | None = None
    _in_step_version: str | None = None
    _covered: tuple[Mapping[str, Resource], frozenset[str]] | None = None

    def diff(self, have: Mapping[str, Resource], version: str) -> tuple[list[Resource], list[str]]:
        """What the client lacks of `have` (upserts) and holds beyond it (removals);
        `version` is `have`'s (the same version: the same names and digests)."""
        if not self.requested:
            return [], []
        before = self._in_step
        if not self.touched and (before is have or version == self._in_step_version):
            if self.client.base is before and not self.client.holds_only(have):
                self.client.rebase(have, self.client.own_names())  # the same content
            self._in_step = have
            return [], []
        if before is None and not self.client and not self.rejected:  # a new stream
            upserts = [r for n, r in have.items() if self.wants(n)]
            self._in_step, self._in_step_version, self.touched = have, version, set()
            return upserts, []
        names = (
            set(have) | set(self.client)
            if before is None
            else changed_names(before, have) | removed_names(before, have) | self.touched
        )
        upserts, removed = [], []
        for name in names:
            r = have.get(name)
            held = self.client.get(name)
            if r is None or not self.wants(name):
                self.forget_rejection(name)
                if held is not None and r is None:
                    removed.append(name)
                continue
            rejected = self.rejected.get(name)
            if name not in self.resend:
                if held == r.digest:  # (back to what the client kept: nothing stands refused)
                    self.forget_rejection(name)
                    continue
                if rejected is not None and rejected.version == r.digest:
                    continue  # refused: not sent again until it changes
            upserts.append(r)
        self._in_step, self._in_step_version, self.touched = have, version, set()
        if not upserts and not removed:  # the client holds `have` (a reconnect, say)
            self.client.rebase(have, self.rejected)
        upserts.sort(key=lambda r: r.name)
        removed.sort()
        return upserts, removed

    def quiet(self, have: Mapping[str, Resource]) -> bool:
        """Whether `diff(have, …)` would send nothing and change nothing, and no reply is
        owed: unrequested, or in step with `have` itself with nothing touched and no
        announcement left under the client's books (`diff`'s first two returns)."""
        if self.owes_reply:
            return False
        if not self.requested:
            return True
        return not self.touched and self._in_step is have and self.client.holds_only(have)

    def respond(
        self, version: str, nonce: str, upserts: list[Resource], removed: list[str]
    ) -> PlannedDelta:
        versions = {r.name: r.digest for r in upserts}
        self.record_delta(version, nonce, versions, frozenset(removed))
        if not self.touched and self._in_step is not None:  # the client holds the config
            self.client.rebase(self._in_step, self.rejected)
        return PlannedDelta(self.type_url, version, nonce, tuple(upserts), tuple(removed))

    def settled(self, config: ProxyConfig) -> bool:
        """The client holds all of `config` for this type, ACKed, nothing rejected; named
        types have subscribed to every name the config has (as in SotW)."""
        have = config.resources(self.type_url)
        if not self.requested:
            return not have
        if self._in_step is not have or self.touched or not self.answered or self.rejected:
            return False
        if not self.wildcard:
            covered = self._covered  # a mapping whose names were all subscribed
            if covered is None or covered[1] is not self.subscribed:
                if not have.keys() <= self.subscribed:
                    return False
            elif covered[0] is not have and not changed_names(covered[0], have) <= self.subscribed:
                return False  # (only names added since `covered` can be unsubscribed)
            self._covered = (have, self.subscribed)
        return True

    def sync_state(self, config: ProxyConfig) -> SyncState:
        if self.nack is not None:
            return SyncState.NACK
        if self.settled(config):
            return SyncState.SYNCED
        return SyncState.NOT_SENT if self.sent_nonce is None else SyncState.STALE


@dataclass
class DeltaStreamState:
    """All served types of one delta stream, and the nonce counter they share."""

    types: dict[str, DeltaTypeState] = field(
        default_factory=lambda: {
            t: DeltaTypeState(type_url=t, wildcard=t in WILDCARD_TYPES) for t in PUSH_ORDER
        }
    )
    _nonces: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def on_request(self, req: DeltaRequest, now: datetime) -> RequestKind:
        state = self.types.get(req.type_url)
        if state is None:
            return RequestKind.IGNORED
        return state.on_delta(req, now)

    def plan(self, config: ProxyConfig) -> list[PlannedDelta]:
        """The responses to send now, in push order; they are recorded as sent."""
        cds, eds = self.types[CLUSTER], self.types[ENDPOINT]
        diffs = {t: self._diff(t, config) for t in (LISTENER, ROUTE)}
        upserts, removed = self._diff(CLUSTER, config)
        if removed and not self._routes_settled(config, diffs):
            cds.touched.update(removed)  # make before break: removed once routes settle
            removed = []
        diffs[CLUSTER] = upserts, removed
        for r in upserts:
            eds.forget(r.name)  # cluster warming waits for its endpoints
        upserts, removed = self._diff(ENDPOINT, config)
        clusters_removed = set(diffs[CLUSTER][1])
        kept = {n for n in removed if n not in clusters_removed and n in cds.client}
        eds.touched.update(kept)  # a cluster still held keeps its endpoints
        diffs[ENDPOINT] = upserts, [n for n in removed if n not in kept]
        out = []
        for type_url in PUSH_ORDER:
            state = self.types[type_url]
            upserts, removed = diffs[type_url]
            if upserts or removed or state.owes_reply:
                version = config.version(type_url)
                out.append(state.respond(version, str(next(self._nonces)), upserts, removed))
        return out

    def quiet(self, config: ProxyConfig) -> bool:
        """`plan(config)` would return nothing and change nothing; cheaper to ask than to
        plan. An ACK usually leaves a stream here: at 1,000 x 1,000 an endpoint change's
        ACK took 16.6-16.8 µs of the event loop's CPU instead of 20.0-21.0 µs
        (`docs/benchmarks.md`)."""
        return all(s.quiet(config.resources(t)) for t, s in self.types.items())

    def _routes_settled(
        self, config: ProxyConfig, diffs: Mapping[str, tuple[list[Resource], list[str]]]
    ) -> bool:
        """LDS and RDS send nothing now and the client holds them, ACKed."""
        return not any(u or r for u, r in diffs.values()) and all(
            self.types[t].settled(config) for t in (LISTENER, ROUTE)
        )

    def settled(self, config: ProxyConfig) -> bool:
        """The client runs `config` in full and has ACKed it."""
        return all(s.settled(config) for s in self.types.values())

    def _diff(self, type_url: str, config: ProxyConfig) -> tuple[list[Resource], list[str]]:
        return self.types[type_url].diff(config.resources(type_url), config.version(type_url))
