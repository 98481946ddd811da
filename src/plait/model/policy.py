"""DestinationRules per host: which apply, merged, and the policy in force for one cluster.

Istio semantics, with plait's documented choices:

- **Which rules.** plait picks rules per host, not per caller, so one set of clusters
  serves every proxy: the rules in the service's own namespace if any, else those in the
  mesh root namespace (`istio-system`), else those of the first namespace that has one.
  Rules with a `workloadSelector` (Istio: only for the selected callers) are left out.
  Only rules exported to the caller's namespace are candidates (`exportTo`, see
  `model.scope`): a host with a rule exported to some namespaces only gets a set per
  namespace.
- **Merging** several rules for one host in the chosen namespace (Istio merges them too):
  subsets are appended, the first rule (by name) wins a repeated subset name; top-level
  `trafficPolicy` fields are merged field by field (Istio keeps only the first rule's
  whole policy; plait keeps every field someone set, and the first rule wins a field two
  rules set, with a warning).
- **Effective policy** of one cluster (host, port, subset): the top-level policy, overlaid
  by its `portLevelSettings` entry for the port, then by the subset's policy, then by the
  subset's own port-level entry. Each overlay replaces whole top-level fields
  (`connectionPool`, `outlierDetection`, ...), as Istio's MergeTrafficPolicy does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from plait.api import DestinationRule, Loaded
from plait.api.destinationrule import PortTrafficPolicy, Subset, TrafficPolicy
from plait.errors import ConfigMessage

ROOT_NAMESPACE = "istio-system"

_PORT_FIELDS = ("load_balancer", "connection_pool", "outlier_detection", "tls")


@dataclass(frozen=True)
class HostRules:
    """The DestinationRules that apply to one host, merged."""

    host: str
    sources: tuple[Loaded[DestinationRule], ...]
    traffic_policy: TrafficPolicy | None
    subsets: tuple[Subset, ...]

    def subset(self, name: str) -> Subset | None:
        return next((s for s in self.subsets if s.name == name), None)

    def policy_for(self, port: int, subset: str = "") -> TrafficPolicy | None:
        """The effective policy of the cluster for this port and subset."""
        policy = _at_port(self.traffic_policy, port)
        found = self.subset(subset) if subset else None
        if found is not None and found.traffic_policy is not None:
            policy = overlay(policy, _at_port(found.traffic_policy, port))
        return policy


def overlay(base: TrafficPolicy | None, top: TrafficPolicy | None) -> TrafficPolicy | None:
    """`top`'s set top-level fields replace `base`'s."""
    if base is None or top is None:
        return top if base is None else base
    update = {name: getattr(top, name) for name in top.model_fields_set}
    if not update:
        return base
    return base.model_copy(update=update)


def _at_port(policy: TrafficPolicy | None, port: int) -> TrafficPolicy | None:
    if policy is None:
        return None
    level: PortTrafficPolicy | None = next(
        (p for p in policy.port_level_settings if p.port.number == port), None
    )
    if level is None:
        return policy
    update = {f: getattr(level, f) for f in _PORT_FIELDS if f in level.model_fields_set}
    return policy.model_copy(update=update) if update else policy


def choose(
    rules: Sequence[Loaded[DestinationRule]], service_namespace: str | None
) -> list[Loaded[DestinationRule]]:
    """The rules for one host that apply (see the module docstring), in name order."""
    usable = [r for r in rules if r.resource.spec.workload_selector is None]
    by_ns: dict[str, list[Loaded[DestinationRule]]] = {}
    for r in usable:
        by_ns.setdefault(r.resource.metadata.namespace, []).append(r)
    for ns in (service_namespace, ROOT_NAMESPACE):
        if ns is not None and ns in by_ns:
            return by_ns[ns]
    return by_ns[min(by_ns)] if by_ns else []


def merge(
    host: str, rules: Iterable[Loaded[DestinationRule]]
) -> tuple[HostRules, list[ConfigMessage]]:
    """Merge rules (already chosen, in order) into one HostRules, with conflict warnings."""
    sources = tuple(rules)
    messages: list[ConfigMessage] = []
    subsets: dict[str, Subset] = {}
    fields: dict[str, object] = {}
    owner: dict[str, Loaded[DestinationRule]] = {}
    for item in sources:
        spec = item.resource.spec
        for i, s in enumerate(spec.subsets):
            if s.name in subsets:
                messages.append(
                    item.message(
                        f"spec.subsets[{i}].name",
                        f"subset '{s.name}' of host '{host}' is already defined by "
                        f"DestinationRule {_key(owner['subset:' + s.name])}; this one is ignored",
                    )
                )
                continue
            subsets[s.name] = s
            owner["subset:" + s.name] = item
        policy = spec.traffic_policy
        if policy is None:
            continue
        for name in policy.model_fields_set:
            alias = type(policy).model_fields[name].alias or name
            if name in fields:
                messages.append(
                    item.message(
                        f"spec.trafficPolicy.{alias}",
                        f"'{alias}' for host '{host}' is already set by DestinationRule "
                        f"{_key(owner[name])}; this one is ignored",
                    )
                )
                continue
            fields[name] = getattr(policy, name)
            owner[name] = item
    # the values are validated models already; construct keeps exactly these fields "set"
    merged = TrafficPolicy.model_construct(_fields_set=set(fields), **fields) if fields else None
    return HostRules(host, sources, merged, tuple(subsets.values())), messages


def _key(item: Loaded) -> str:
    return f"{item.resource.metadata.namespace}/{item.resource.metadata.name}"
