"""A snapshot's DestinationRules by host: grouped, chosen and merged (`RuleIndexes`).

Each host's rules are made from the DestinationRules that resolve to it
(`group_rules`, `host_rule_set`): those everyone sees, merged, and every rule of the host
when one is exported to some namespaces only. `build_snapshot` makes them for every host
(`rules_by_host`), `model.withconfig.with_config` for the hosts a change touches. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from plait.api import DestinationRule, Loaded
from plait.errors import ConfigMessage
from plait.model.policy import HostRules, choose, merge
from plait.model.registry import Service, resolve_host
from plait.model.scope import restricted


def group_rules(
    services: Mapping[str, Service], drs: Sequence[Loaded[DestinationRule]]
) -> dict[str, list[Loaded[DestinationRule]]]:
    """The DestinationRules by the hostname they resolve to, in snapshot order."""
    by_host: dict[str, list[Loaded[DestinationRule]]] = {}
    for item in drs:
        dr = item.resource
        host = resolve_host(services, dr.spec.host, dr.metadata.namespace)
        by_host.setdefault(host, []).append(item)
    return by_host


@dataclass(frozen=True)
class HostRuleSet:
    """One host's rules: those everyone sees, merged (None: none applies), every rule of
    the host if one is exported to some namespaces only (else None), merge warnings."""

    rules: HostRules | None
    restricted: tuple[Loaded[DestinationRule], ...] | None
    warnings: tuple[ConfigMessage, ...]


def host_rule_set(
    services: Mapping[str, Service], host: str, items: Sequence[Loaded[DestinationRule]]
) -> HostRuleSet:
    """The rules of one host from its DestinationRules (`group_rules`)."""
    restricted_items = None
    if any(restricted(i.resource.spec.export_to) for i in items):
        restricted_items = tuple(items)
        items = [i for i in items if not restricted(i.resource.spec.export_to)]
    service = services.get(host)
    chosen = choose(items, service.namespace if service is not None else None)
    if not chosen:
        return HostRuleSet(None, restricted_items, ())
    rules, warnings = merge(host, chosen)
    return HostRuleSet(rules, restricted_items, tuple(warnings))


@dataclass(frozen=True)
class RuleIndexes:
    """`MeshSnapshot.rules_by_host`, `restricted_rules` and `rule_warnings`, together."""

    rules_by_host: dict[str, HostRules]
    restricted_rules: dict[str, tuple[Loaded[DestinationRule], ...]]
    rule_warnings: dict[str, tuple[ConfigMessage, ...]]

    @staticmethod
    def of(sets: Iterable[tuple[str, HostRuleSet]]) -> RuleIndexes:
        """From each host's rule set, in host order."""
        out = RuleIndexes({}, {}, {})
        for host, found in sets:
            if found.restricted is not None:
                out.restricted_rules[host] = found.restricted
            if found.rules is not None:
                out.rules_by_host[host] = found.rules
            if found.warnings:
                out.rule_warnings[host] = found.warnings
        return out


def rules_by_host(
    services: Mapping[str, Service], drs: Sequence[Loaded[DestinationRule]]
) -> RuleIndexes:
    """The rules for each host that everyone sees, merged; and every rule of the hosts
    that have one exported to some namespaces only (`MeshSnapshot.restricted_rules`)."""
    return RuleIndexes.of(
        (host, host_rule_set(services, host, items))
        for host, items in group_rules(services, drs).items()
    )
