"""What sources tell the pipeline, and the interface every source implements.

A source watches one place — the mesh directory, the local workload registry, later the
Kubernetes API — and turns it into typed inputs. Its events are *level* events: each
carries the whole current state of what it describes, under a `key`, so a newer event
for a key replaces an older one the pipeline has not taken yet. The pipeline's pending
set is therefore bounded by the number of keys, and a slow build never makes it grow.

`run(emit, ready)` emits the initial state, sets `ready`, then emits on every change
until it is cancelled (cancellation is the shutdown path). A failure to read is reported
with a `SourceError` event while the source keeps its last good state; an exception out
of `run` is a bug, which the pipeline logs, shows in status and retries with backoff.

The Kubernetes source (`sources.kube`) implements the same protocol, emitting
`ConfigChanged` for the CRDs and Services it watches and `WorkloadsChanged` for Pods and
EndpointSlices.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from plait.model.registry import WorkloadInstance
from plait.sources.directory import ConfigView


@dataclass(frozen=True)
class ConfigChanged:
    """The resources in force now (with messages and resources kept from last good)."""

    source: str
    view: ConfigView

    @property
    def key(self) -> tuple[str, str]:
        return ("config", self.source)


@dataclass(frozen=True)
class WorkloadsChanged:
    """Every workload instance the source knows of now, and the cluster IPs (hostname,
    IP) the platform gave services (local transparent mode; empty otherwise)."""

    source: str
    instances: tuple[WorkloadInstance, ...]
    cluster_ips: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return ("workloads", self.source)


@dataclass(frozen=True)
class JwksUrisDiscovered:
    """The `jwks_uri` of each issuer whose OpenID discovery document was read (issuer →
    URI), for RequestAuthentication rules that give neither `jwks` nor `jwksUri`."""

    source: str
    jwks_uris: Mapping[str, str]

    @property
    def key(self) -> tuple[str, str]:
        return ("discovery", self.source)


@dataclass(frozen=True)
class SourceError:
    """The source cannot read its input (`message`), or can again (`None`); its last
    good state stays in force meanwhile."""

    source: str
    message: str | None

    @property
    def key(self) -> tuple[str, str]:
        return ("error", self.source)


SourceEvent = ConfigChanged | WorkloadsChanged | JwksUrisDiscovered | SourceError
Emit = Callable[[SourceEvent], None]


class Source(Protocol):
    """A stream of level events; see the module docstring for the contract."""

    @property
    def name(self) -> str: ...

    async def run(self, emit: Emit, ready: asyncio.Event) -> None: ...
