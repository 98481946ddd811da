"""What `plait status` shows about each proxy's xDS stream, and the server's counters.

Values only: the server builds them from its live streams on demand (`AdsServer.statuses`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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


@dataclass
class XdsCounters:
    """Plain counters (Prometheus export comes later)."""

    pushes: Counter[str] = field(default_factory=Counter)  # responses sent, by short name
    nacks: Counter[str] = field(default_factory=Counter)  # NACKs received, by short name
    acks: int = 0
    stale_requests: int = 0
    streams_opened: int = 0
    streams_rejected: int = 0

    def count_push(self, type_url: str) -> None:
        self.pushes[SHORT_NAMES.get(type_url, type_url)] += 1

    def count_nack(self, type_url: str) -> None:
        self.nacks[SHORT_NAMES.get(type_url, type_url)] += 1
