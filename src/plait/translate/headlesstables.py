"""The route tables and ORIGINAL_DST clusters of the headless pods captured sidecars reach.

They are made per snapshot, not with a sidecar's own resources: they read routing,
DestinationRules and endpoints (`headless`). `HeadlessTables` memoizes them for one
snapshot's Translator, shared by the proxies with the same scope (and, for tables, the
same table key); nothing is taken over from the previous snapshot's. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from plait.model.labels import Labels
from plait.model.peerauth import PeerAuthentications
from plait.model.proxy import Proxy
from plait.model.scope import Scope
from plait.model.snapshot import MeshSnapshot
from plait.translate import headless, vhosts
from plait.translate.hostbuild import HostBuild
from plait.translate.resource import Resource


class Counts(Protocol):
    """Where the route tables built are counted (the Translator's `Built`)."""

    tables: int


class HeadlessTables:
    def __init__(
        self,
        snapshot: MeshSnapshot,
        host_for: Callable[[str, Scope | None], HostBuild],
        built: Counts,
    ) -> None:
        """`host_for(host, scope)`: the host build the proxy's scope sees."""
        self.snapshot = snapshot
        self._host_for = host_for
        self._built = built
        self._tables: dict[tuple[Any, ...], Resource] = {}  # (key, scope, host, port)
        self._clusters: dict[tuple[Any, ...], list[Resource]] = {}  # (scope, reached)

    def resources(
        self,
        proxy: Proxy,
        scope: Scope | None,
        pods: list[headless.PodAddress],
        selectors: tuple[Labels, ...],
        peer_auth: PeerAuthentications,
    ) -> list[Resource]:
        """The route tables and ORIGINAL_DST clusters of the headless host ports whose
        `pods` a captured sidecar reaches (`headless`)."""
        scope_key = None if scope is None else (scope.namespace, scope.sidecar)
        table_key = vhosts.table_key(proxy, selectors)
        out = []
        for host, port in headless.http_ports(pods):
            key = (table_key, scope_key, host, port)
            found = self._tables.get(key)
            if found is None:
                self._built.tables += 1
                table = vhosts.headless_routes(self.snapshot, host, port, proxy, scope)
                found = self._tables[key] = Resource.pack(table.name, table)
            out.append(found)
        reached = tuple(sorted({(p.host, p.service_port) for p in pods}))
        cds = self._clusters.get((scope_key, reached))
        if cds is None:
            cds = self._clusters[(scope_key, reached)] = self._pod_clusters(
                reached, scope, peer_auth
            )
        return [*out, *cds]

    def _pod_clusters(
        self,
        reached: tuple[tuple[str, int], ...],
        scope: Scope | None,
        peer_auth: PeerAuthentications,
    ) -> list[Resource]:
        """The ORIGINAL_DST twins of these host ports' clusters, from the host builds the
        proxy's scope sees."""
        out: list[Resource] = []
        for host in sorted({h for h, _ in reached}):
            built = self._host_for(host, scope)
            ports = frozenset(p for h, p in reached if h == host)
            out += headless.twin_clusters(self.snapshot, built, ports, peer_auth)
        return out
