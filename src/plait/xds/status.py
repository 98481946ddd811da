"""What `plait status` shows about each proxy's xDS stream, the server's counters, and
the observer the server reports its timings to.

Values only: the server builds them from its live streams on demand (`AdsServer.statuses`).
Counters are plain numbers a metrics exporter reads when it is scraped; timings (push and
convergence time, response sizes) are events, so the server hands them to an
`XdsObserver` as they happen (`plait.controlplane.metrics` turns them into histograms).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from plait.model.proxy import Proxy
from plait.translate.typeurls import SHORT_NAMES
from plait.xds.typestate import SyncState


@dataclass(frozen=True)
class TypeStatus:
    """One xDS type of one proxy.

    `state` is SYNCED when the proxy has ACKed everything of the type its current
    configuration holds (so `acked_version` may trail `latest_version` when the latest
    change did not touch anything the proxy subscribes to), STALE while something is sent
    but not ACKed or not sent yet, NOT SENT before the first response, NACK while the
    latest response of the type stands rejected.
    """

    state: SyncState
    latest_version: str
    sent_version: str | None
    acked_version: str | None
    last_ack: datetime | None
    nack: str | None


@dataclass(frozen=True)
class ProxyStatus:
    """One proxy (by node id) as the ADS server last saw it."""

    proxy: Proxy
    connected: bool
    connected_since: datetime
    disconnected_at: datetime | None
    synced_generation: int | None  # newest source generation the proxy fully ACKed
    types: Mapping[str, TypeStatus]  # by short name: cds, eds, lds, rds
    nack: str | None  # Envoy's error text for the most recent standing NACK
    last_ack: datetime | None

    @property
    def sync(self) -> dict[str, str]:
        """The `sync` object of `plait status -o json`: short type name -> state."""
        return {name: t.state.value for name, t in self.types.items()}

    def to_json(self) -> dict[str, Any]:
        """The xDS part of one `proxies[]` entry of `plait status -o json`."""
        return {
            "name": self.proxy.id,
            "kind": self.proxy.kind.value,
            "workload": self.proxy.workload,
            "namespace": self.proxy.namespace,
            "serviceAccount": self.proxy.service_account,
            "labels": self.proxy.labels.as_dict(),
            "connected": self.connected,
            "generation": self.synced_generation,
            "sync": self.sync,
            "nack": self.nack,
        }


class PushReason(StrEnum):
    """Why a response was sent, as one stream can tell."""

    NEW_CONNECTION = "new_connection"  # the stream has not been in sync yet
    CONFIG = "config"  # a new generation changed more than endpoints for this proxy
    ENDPOINT = "endpoint"  # a new generation changed only this proxy's endpoints
    REQUEST = "request"  # a request (a new subscription) while the stream was in sync


@dataclass
class XdsCounters:
    """Plain counters, read by the metrics exporter when it is scraped."""

    pushes: Counter[str] = field(default_factory=Counter)  # responses sent, by short name
    pushes_by_reason: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, reason)
    resources_sent: Counter[str] = field(default_factory=Counter)  # resources in them, by type
    removals_sent: Counter[str] = field(default_factory=Counter)  # delta removed_resources
    nacks: Counter[str] = field(default_factory=Counter)  # NACKs received, by short name
    acks: int = 0
    stale_requests: int = 0
    streams_opened: int = 0
    streams_rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)  # refused streams

    def count_push(self, type_url: str, reason: PushReason) -> None:
        name = SHORT_NAMES.get(type_url, type_url)
        self.pushes[name] += 1
        self.pushes_by_reason[name, reason.value] += 1

    def count_resources(self, type_url: str, sent: int, removed: int = 0) -> None:
        name = SHORT_NAMES.get(type_url, type_url)
        self.resources_sent[name] += sent
        if removed:
            self.removals_sent[name] += removed

    def count_nack(self, type_url: str) -> None:
        self.nacks[SHORT_NAMES.get(type_url, type_url)] += 1

    def count_rejected(self, reason: str) -> None:
        self.streams_rejected += 1
        self.rejected_by_reason[reason] += 1


class XdsObserver(Protocol):
    """Receives the server's timings as they happen (durations in seconds)."""

    def pushed(self, type_name: str, size: int, seconds: float | None) -> None:
        """A response of `size` bytes was written; `seconds` since the generation it
        carries appeared, or None when no new generation caused it."""
        ...

    def converged(self, seconds: float) -> None:
        """A proxy ACKed everything of a generation change, `seconds` after it appeared."""
        ...


class NoObserver:
    """The default XdsObserver: ignores everything."""

    def pushed(self, type_name: str, size: int, seconds: float | None) -> None:
        pass

    def converged(self, seconds: float) -> None:
        pass
