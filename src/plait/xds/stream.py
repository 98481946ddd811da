"""Per-stream ADS state and the decision of what to send next (State of the World).

Plain objects, no gRPC, no clock: `server.py` feeds requests in and writes the planned
responses out. Everything runs on the event loop, so no locks; a plan marks its responses
as sent before they are written, so an ACK can never arrive for an unknown nonce.

Rules (xDS protocol, https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol):

* Every response has the type's version (`ProxyConfig.version`) and a fresh nonce.
* CDS and LDS are wildcard: each response carries the full set, sent whenever the set's
  version differs from the last one sent (names a client lists for them are ignored; Envoy
  always uses wildcard mode for them). EDS and RDS carry only subscribed names whose
  resource changed since it was last sent (SotW allows partial responses for them); a
  newly subscribed name is always sent, a name nothing provides yet is sent when it
  appears.
* Requests are read by `plait.xdsproto.subscription` (shared with the agent's SDS
  server): a request whose `response_nonce` is not the latest sent for its type is
  stale: it is neither an ACK nor a NACK, but its `resource_names` still update the
  subscription (envoyproxy/envoy#10363: a server must not lose subscription changes).
* A NACK (a request with `error_detail`) is recorded; the client keeps its last good
  config, and a version once NACKed on this stream is never sent again, so a bad config
  cannot loop. Only a new version (the config changed) is sent.
* Make before break: when clusters disappear, CDS first keeps them alongside the new ones;
  the CDS without them is sent only once LDS and RDS are settled (ACKed, nothing owed).
* A CDS response that adds or changes clusters makes EDS re-send those clusters' endpoints
  (Envoy's cluster warming waits for an EDS response). EDS resource names are cluster
  names.
* Order within one plan: PUSH_ORDER (CDS, EDS, LDS, RDS).

Incremental xDS (DeltaAggregatedResources) has its own state module, `delta.py`, as
go-control-plane keeps sotw/ and delta/ apart.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from datetime import datetime

from plait.translate.resource import ProxyConfig, Resource
from plait.translate.typeurls import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE, WILDCARD_TYPES
from plait.xds.typestate import (
    PlannedResponse,
    Request,
    RequestKind,
    TypeState,
    changed_names,
    removed_names,
)


def _keep_version(base: str, kept: Mapping[str, Resource]) -> str:
    """A version for a CDS set that still carries clusters removed from the config."""
    h = hashlib.blake2b(digest_size=8)
    for name in sorted(kept):
        h.update(name.encode())
        h.update(kept[name].digest.encode())
    return f"{base}+keep-{h.hexdigest()}"


class StreamState:
    """All served types of one stream, and the nonce counter they share."""

    def __init__(self) -> None:
        self.types: dict[str, TypeState] = {
            t: TypeState(t, wildcard=t in WILDCARD_TYPES) for t in PUSH_ORDER
        }
        self._nonces = itertools.count(1)

    def on_request(self, req: Request, now: datetime) -> RequestKind:
        state = self.types.get(req.type_url)
        if state is None:
            return RequestKind.IGNORED
        return state.on_request(req, now)

    def plan(self, config: ProxyConfig) -> list[PlannedResponse]:
        """The responses to send now, in push order; they are recorded as sent."""
        out: list[PlannedResponse] = []
        cds = self._plan_clusters(config)
        if cds is not None:
            out.append(cds)
        for type_url in (ENDPOINT, LISTENER, ROUTE):
            planned = self._plan_type(self.types[type_url], config)
            if planned is not None:
                out.append(planned)
        return out

    def settled(self, config: ProxyConfig) -> bool:
        """The client runs `config` in full and has ACKed it."""
        return all(s.settled(config) for s in self.types.values())

    def _nonce(self) -> str:
        return str(next(self._nonces))

    def _plan_clusters(self, config: ProxyConfig) -> PlannedResponse | None:
        state = self.types[CLUSTER]
        if not state.requested:
            return None
        version = config.version(CLUSTER)
        if version == state.sent_version:  # that very set was sent: nothing is removed
            return None
        have = config.resources(CLUSTER)
        before = state.client_set()
        desired: Mapping[str, Resource] = have  # (shared with every stream: not copied)
        gone = removed_names(before, have)  # (both mappings shared: computed once for all)
        if gone and not self._routes_settled(config):
            removed = {n: before[n] for n in gone}
            desired = {**have, **removed}
            version = _keep_version(version, removed)
        if version == state.sent_version or version in state.nacked_versions:
            return None
        endpoints = self.types[ENDPOINT]
        for name in changed_names(before, desired):
            endpoints.forget(name)  # re-send EDS so the cluster can warm
        return state.respond(version, self._nonce(), tuple(desired.values()), desired)

    def _plan_type(self, state: TypeState, config: ProxyConfig) -> PlannedResponse | None:
        if not state.requested:
            return None
        version = config.version(state.type_url)
        if state.wildcard:
            if version == state.sent_version or version in state.nacked_versions:
                return None
            held = config.resources(state.type_url)
            return state.respond(version, self._nonce(), tuple(held.values()), held)
        resources = tuple(state.owed(config))
        if not resources:
            return None
        return state.respond(version, self._nonce(), resources)

    def _routes_settled(self, config: ProxyConfig) -> bool:
        return self.types[LISTENER].settled(config) and self.types[ROUTE].settled(config)
