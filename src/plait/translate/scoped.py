"""Scoped sidecars' resources (`model.scope`: Sidecar, exportTo), shared and kept.

A scoped sidecar gets, instead of the mesh-wide clusters and route table, the clusters
and endpoint sets of the host ports its scope reaches and a route table of those.
Proxies of one namespace under one Sidecar share one `Scope`, and so the very same
resources. `Scoping` holds them for one snapshot's Translator and takes over from the
previous one's:

* scopes, while everything they are built from is the same (`reuse.scope_context`);
* a scope's clusters and endpoint sets, a scoped route table and a proxy's assembled
  config, while none of the hosts and VirtualServices they read changed
  (`reuse.changed_hosts`, `reuse.changed_virtual_services`): a change then costs the
  proxies it does not concern a few set lookups, and gives them nothing new to push;
* otherwise each is rebuilt only if its inputs differ (`reuse.scoped_table`, the very
  same host builds).

On the config fast path (`take_over_config`: VirtualServices or DestinationRules edited,
the scopes the same), everything is taken over as it is but the scopes' clusters, the
tables and the configs that read the edited hosts and VirtualServices, found through
`Dependents`; the Translator translates for those proxies only.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any, Protocol, TypeVar

from plait.api import Loaded
from plait.api.sidecar import Sidecar
from plait.errors import InconsistentConfigError
from plait.model.labels import Labels
from plait.model.policy import HostRules, choose, merge
from plait.model.proxy import Proxy, ProxyKind
from plait.model.scope import Scope, build_scope, visible_rules
from plait.model.snapshot import MeshSnapshot
from plait.translate import consistency, names, reuse, vhosts
from plait.translate.dependents import Dependents, ScopeKey
from plait.translate.hostbuild import HostBuild
from plait.translate.resource import ProxyConfig, Resource

T = TypeVar("T")

Deps = tuple[frozenset[str], frozenset[tuple[str, str]]]
"""Hostnames and VirtualService (namespace, name) keys."""


class Hosts(Protocol):
    """What scoping needs of the Translator: its host builds and common clusters."""

    def host(self, hostname: str) -> HostBuild: ...

    def build_host(self, hostname: str, rules: HostRules | None) -> HostBuild: ...

    def common_clusters(self) -> list[Resource]: ...

    def source_selectors(self) -> tuple[Labels, ...]: ...


class Scoping:
    def __init__(self, snapshot: MeshSnapshot, hosts: Hosts) -> None:
        """Then `take_over` or `take_over_config` from the previous snapshot's, if any."""
        self.snapshot = snapshot
        self._hosts = hosts
        self._scopes: dict[ScopeKey, Scope] = {}
        # a scope's clusters and endpoint sets, with the host builds they were made of
        self._shared: dict[ScopeKey, tuple[tuple[HostBuild, ...], ProxyConfig]] = {}
        self._earlier_shared: dict[ScopeKey, tuple[tuple[HostBuild, ...], ProxyConfig]] = {}
        # a route table by table key: the inputs it was built from, the table, what it reads
        self._tables: dict[Any, tuple[tuple[Any, ...], Resource, Deps]] = {}
        self._earlier_tables: dict[Any, tuple[tuple[Any, ...], Resource, Deps]] = {}
        # proxies' configs with the parts they were assembled from
        self._assembled: dict[str, tuple[Proxy, tuple[Any, ...], ProxyConfig]] = {}
        self._earlier_assembled: dict[str, tuple[Proxy, tuple[Any, ...], ProxyConfig]] = {}
        self.route_memo: vhosts.RouteMemo = {}  # for this snapshot only (ids of its items)
        self._rule_variants: dict[tuple[str, str], HostRules | None] = {}
        self._variant_hosts: dict[tuple[str, tuple[str, ...]], HostBuild] = {}
        # what changed since the previous snapshot, when the scopes and everything else a
        # scoped resource reads are the same (None: compare inputs instead)
        self._changed: Deps | None = None
        # each scoped proxy's scope and table key (carried from snapshot to snapshot)
        self._uses: dict[str, tuple[ScopeKey, Any]] = {}
        self._dependents: Dependents | None = None  # made when needed (`dependents`)

    @cached_property
    def _context(self) -> tuple[Any, ...] | None:
        return reuse.scope_context(self.snapshot)

    @cached_property
    def _table_context(self) -> tuple[Any, ...]:
        return reuse.scoped_table_context(self.snapshot)

    def take_over(self, previous: Scoping) -> None:
        """Keep what is valid for this snapshot too (see the module docstring). (The
        contexts are computed once per snapshot: as `previous`, they are reused.)"""
        old, new = previous.snapshot, self.snapshot
        self._uses = dict(previous._uses)
        if new.scope_inputs is None:
            return  # nothing is scoped: nothing to keep
        self._earlier_assembled = previous._assembled
        if self._context is not None and previous._context == self._context:
            self._scopes = dict(previous._scopes)
            self._earlier_shared = previous._shared
        same_tables = previous._table_context == self._table_context
        if same_tables:  # each is checked before it is used again
            self._earlier_tables = previous._tables
        same_hosts = reuse.host_context(old) == reuse.host_context(new)
        if self._scopes and same_tables and same_hosts:
            self._changed = (
                reuse.changed_hosts(old, new),
                reuse.changed_virtual_services(old, new),
            )

    def take_over_config(self, previous: Scoping, change: reuse.ConfigChange) -> set[str]:
        """Take everything over from `previous` but what reads the hosts and
        VirtualServices of `change` (which must keep every scope: `reuse.scopes_kept`), and
        return the scoped proxies whose configs must be made again."""
        for name in ("_context", "_table_context"):  # equal: see `reuse.config_change`
            if name in previous.__dict__:
                self.__dict__[name] = previous.__dict__[name]
        self._scopes = dict(previous._scopes)
        self._earlier_shared = previous._shared
        self._earlier_tables = previous._tables
        self._earlier_assembled = previous._assembled
        self._changed = (change.hosts, change.virtual_services)
        self._dependents = deps = previous.dependents()
        scopes, tables, proxies = deps.affected(change.hosts, change.virtual_services)
        self._shared = _without(previous._shared, scopes)
        self._tables = _without(previous._tables, tables)
        self._assembled = _without(previous._assembled, proxies)
        self._uses = dict(previous._uses)
        return proxies

    def dependents(self) -> Dependents:
        """Which proxies read which hosts and VirtualServices (made once, then kept up)."""
        if self._dependents is None:
            tables = {key: found[2] for key, found in self._tables.items()}
            self._dependents = Dependents.of(self._uses, self._scopes, tables)
        return self._dependents

    def scope_of(self, proxy: Proxy) -> Scope | None:
        """The proxy's scope (`scope_for`), one per (namespace, Sidecar)."""
        found = _sidecar_of(self.snapshot, proxy)
        if found is None:
            return None
        key, sidecar = found
        scope = self._scopes.get(key)
        if scope is None:
            inputs = self.snapshot.scope_inputs
            assert inputs is not None  # _sidecar_of says so
            scope = self._scopes[key] = build_scope(inputs, proxy.namespace, sidecar)
            if self._dependents is not None:
                self._dependents.add_scope(key, scope)
        return scope

    def rules_for(self, hostname: str, namespace: str) -> tuple[HostRules | None, bool]:
        """The rules a proxy in `namespace` sees for a host, and whether they may differ
        from everyone's (some rule of the host is exported to some namespaces only)."""
        every = self.snapshot.restricted_rules.get(hostname)
        if every is None:
            return self.snapshot.host_rules(hostname), False
        key = (hostname, namespace)
        if key not in self._rule_variants:
            service = self.snapshot.services.get(hostname)
            chosen = choose(visible_rules(every, namespace), service.namespace if service else None)
            self._rule_variants[key] = merge(hostname, chosen)[0] if chosen else None
        return self._rule_variants[key], True

    def host_for(self, hostname: str, namespace: str) -> HostBuild:
        """The host's build with the rules a proxy in `namespace` sees."""
        return self._host(hostname, namespace)

    def _host(self, hostname: str, namespace: str) -> HostBuild:
        rules, variant = self.rules_for(hostname, namespace)
        if not variant:
            return self._hosts.host(hostname)
        key = (hostname, tuple(s.resource.metadata.name for s in (rules.sources if rules else ())))
        found = self._variant_hosts.get(key)
        if found is None:
            found = self._variant_hosts[key] = self._hosts.build_host(hostname, rules)
        return found

    def shared(self, scope: Scope) -> ProxyConfig:
        """What every proxy under `scope` gets: the clusters and endpoint sets of the host
        ports it reaches, and the clusters every proxy has."""
        key: ScopeKey = (scope.namespace, scope.sidecar)
        found = self._shared.get(key)
        if found is not None:
            return found[1]
        earlier = self._earlier_shared.get(key)  # only while the scopes are the same
        changed = self._changed
        if earlier is not None and changed is not None and changed[0].isdisjoint(scope.clusters):
            self._shared[key] = earlier  # none of its hosts changed
            return earlier[1]
        builds = tuple(
            self._host(hostname, scope.namespace)
            for hostname in sorted(scope.clusters)
            if hostname in self.snapshot.services
        )
        if earlier is not None and _same(earlier[0], builds):
            self._shared[key] = earlier
            return earlier[1]
        resources: list[Resource] = []
        for built in builds:
            resources += built.at(scope.clusters[built.hostname])
        config = ProxyConfig.of([*resources, *self._hosts.common_clusters()])
        check(consistency.dangling(config), f"scope {key}")
        self._shared[key] = (builds, config)
        return config

    def config(
        self,
        proxy: Proxy,
        scope: Scope,
        own: list[Resource],
        routed: bool,
        pods: list[Resource],
        assemble: Callable[[list[Resource]], ProxyConfig],
    ) -> ProxyConfig:
        """A scoped proxy's config: its `own` resources, its route table if `routed`, the
        resources of the headless pods it reaches (`pods`, made per snapshot), and its
        scope's shared resources (`assemble(own + table + pods)` lays them over those)."""
        table_key = self._table_key(proxy, scope) if routed else None
        table = self.routes(proxy, scope) if routed else None
        resources = [*own, *([] if table is None else [table]), *pods]
        parts = (own, table, self.shared(scope), *pods)
        scope_key: ScopeKey = (scope.namespace, scope.sidecar)
        if self._uses.get(proxy.id) != (scope_key, table_key):
            self._uses[proxy.id] = (scope_key, table_key)
            if self._dependents is not None:
                self._dependents.add_use(proxy.id, scope_key, table_key)
        return self.assembled(proxy, parts, lambda: assemble(resources))

    def _table_key(self, proxy: Proxy, scope: Scope) -> Any:
        return (scope.sidecar, vhosts.table_key(proxy, self._hosts.source_selectors()))

    def routes(self, proxy: Proxy, scope: Scope) -> Resource:
        """The outbound table of a scoped proxy, shared by the proxies with the same scope
        and `vhosts.table_key`."""
        key = self._table_key(proxy, scope)
        found = self._tables.get(key)
        if found is not None:
            return found[1]
        found = self._earlier_tables.get(key)
        changed = self._changed
        if (
            found is not None
            and changed is not None
            and found[2][0].isdisjoint(changed[0])
            and found[2][1].isdisjoint(changed[1])
        ):
            self._tables[key] = found
            return found[1]  # the scope is the same and nothing it reads changed
        inputs = reuse.scoped_table(self.snapshot, scope, self.rules_for)
        if found is not None and found[0] == inputs:
            self._tables[key] = found
            return found[1]
        table = vhosts.sidecar_routes(self.snapshot, proxy.namespace, proxy, scope, self.route_memo)
        resource = Resource.pack(names.OUTBOUND_ROUTE, table)
        deps = reuse.table_dependencies(self.snapshot, scope)
        self._tables[key] = (inputs, resource, deps)
        if self._dependents is not None:
            self._dependents.add_table(key, deps)
        return resource

    def assembled(
        self,
        proxy: Proxy,
        parts: tuple[Any, ...],
        assemble: Callable[[], ProxyConfig],
    ) -> ProxyConfig:
        """The proxy's config: the previous snapshot's if it was assembled from the very
        same `parts` (own resources, route table, scope's shared config), else `assemble()`."""
        earlier = self._earlier_assembled.get(proxy.id)
        if earlier is not None and earlier[0] == proxy and _same(earlier[1], parts):
            self._assembled[proxy.id] = earlier
            return earlier[2]
        config = assemble()
        self._assembled[proxy.id] = (proxy, parts, config)
        return config


def scope_for(snapshot: MeshSnapshot, proxy: Proxy) -> Scope | None:
    """The proxy's scope; None when it sees everything (a gateway, or a mesh with no
    Sidecar and no exportTo that hides anything)."""
    found = _sidecar_of(snapshot, proxy)
    if found is None or snapshot.scope_inputs is None:
        return None
    return build_scope(snapshot.scope_inputs, proxy.namespace, found[1])


def _sidecar_of(
    snapshot: MeshSnapshot, proxy: Proxy
) -> tuple[ScopeKey, Loaded[Sidecar] | None] | None:
    """The scope key and the Sidecar in force, or None when the proxy is not scoped."""
    if snapshot.scope_inputs is None or proxy.kind != ProxyKind.SIDECAR:
        return None
    sidecar = snapshot.sidecar_index.for_workload(
        proxy.namespace, proxy.labels, snapshot.mesh.root_namespace
    )
    if sidecar is None:
        return (proxy.namespace, None), None
    meta = sidecar.resource.metadata
    return (proxy.namespace, (meta.namespace, meta.name)), sidecar


def _without(items: dict[Any, T], keys: set[Any]) -> dict[Any, T]:
    """A copy of `items` without `keys` (a copy and a few deletions: `items` is large)."""
    out = dict(items)
    for key in keys:
        out.pop(key, None)
    return out


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """The very same objects, in order (a rebuilt resource is a new object)."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def check(problems: list[str], whose: str) -> None:
    """Raise `InconsistentConfigError` for a config that names what it lacks."""
    if problems:
        raise InconsistentConfigError(f"config for {whose} is inconsistent: {'; '.join(problems)}")
