"""Which scoped proxies read which hosts and VirtualServices: the config fast path's index.

A scoped sidecar's config is its own resources (which a config-only change leaves as they
are, `reuse.config_change`), its scope's clusters and endpoint sets (which read the
hosts of the scope) and its route table (which reads the hosts and VirtualServices of
`reuse.table_dependencies`). Indexed the other way round, an edit of one VirtualService
or of one host's DestinationRules finds the scopes, tables and proxies it concerns in a
few dictionary lookups instead of a look at every proxy: with each proxy scoped to 10
services, an edit touches ~10 proxies of 1,000, and translation costs that much.

The index only grows while it is carried from one Translator to the next (a proxy
re-assembled under another scope or table keeps its old entries too), so it may name a
proxy the change does not concern (it is translated again, to the same config): never
the reverse. It is carried only while the scopes and the tables' dependencies stay the
same (`Scoping.take_over_config`); otherwise it is made again from the uses, scopes and
tables recorded for a snapshot.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

from plait.model.scope import Scope

ScopeKey = tuple[str, tuple[str, str] | None]
"""(proxy namespace, the Sidecar in force): proxies with the same key share a scope."""

Key = tuple[str, str]
"""(namespace, name) of a VirtualService."""


@dataclass
class Dependents:
    scopes_by_host: dict[str, set[ScopeKey]] = field(default_factory=dict)
    tables_by_host: dict[str, set[Hashable]] = field(default_factory=dict)
    tables_by_vs: dict[Key, set[Hashable]] = field(default_factory=dict)
    proxies_by_scope: dict[ScopeKey, set[str]] = field(default_factory=dict)
    proxies_by_table: dict[Hashable, set[str]] = field(default_factory=dict)

    @staticmethod
    def of(
        uses: Mapping[str, tuple[ScopeKey, Hashable | None]],
        scopes: Mapping[ScopeKey, Scope],
        tables: Mapping[Hashable, tuple[frozenset[str], frozenset[Key]]],
    ) -> Dependents:
        """From each proxy's scope and table key, each scope, and each table's dependencies."""
        out = Dependents()
        for proxy_id, (scope, table) in uses.items():
            out.add_use(proxy_id, scope, table)
        for key, scope_value in scopes.items():
            out.add_scope(key, scope_value)
        for table_key, deps in tables.items():
            out.add_table(table_key, deps)
        return out

    def add_use(self, proxy_id: str, scope: ScopeKey, table: Hashable | None) -> None:
        self.proxies_by_scope.setdefault(scope, set()).add(proxy_id)
        if table is not None:
            self.proxies_by_table.setdefault(table, set()).add(proxy_id)

    def add_scope(self, key: ScopeKey, scope: Scope) -> None:
        for host in scope.clusters:
            self.scopes_by_host.setdefault(host, set()).add(key)

    def add_table(self, key: Hashable, deps: tuple[frozenset[str], frozenset[Key]]) -> None:
        for host in deps[0]:
            self.tables_by_host.setdefault(host, set()).add(key)
        for name in deps[1]:
            self.tables_by_vs.setdefault(name, set()).add(key)

    def affected(
        self, hosts: Iterable[str], virtual_services: Iterable[Key]
    ) -> tuple[set[ScopeKey], set[Hashable], set[str]]:
        """The scopes whose clusters read `hosts`' rules, the tables that read `hosts`
        or `virtual_services`, and the proxies that use any of them."""
        hosts = list(hosts)
        scopes = {s for h in hosts for s in self.scopes_by_host.get(h, ())}
        tables = {t for h in hosts for t in self.tables_by_host.get(h, ())}
        tables |= {t for v in virtual_services for t in self.tables_by_vs.get(v, ())}
        proxies = {p for s in scopes for p in self.proxies_by_scope.get(s, ())}
        proxies |= {p for t in tables for p in self.proxies_by_table.get(t, ())}
        return scopes, tables, proxies
