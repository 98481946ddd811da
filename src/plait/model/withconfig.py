"""with_config: the snapshot after a change of VirtualServices and DestinationRules only.

The config-change analogue of `model.snapshot.with_instances`. Editing one
VirtualService of a 1,000-service mesh need not re-make 1,000 services, their endpoints
and every index: the new snapshot is the previous one with only what depends on the
changed objects re-made, every other field (and every unchanged entry of a re-made
mapping) the very same object, so that translation tells by identity what did not change
(`translate.reuse.config_change`).

* VirtualServices: the sorted collection is spliced (the unchanged items stay in place);
  an edit that keeps each changed VirtualService's name and gateways updates the
  routing index (`by_name`, the winner of each `mesh_by_host` host it names, before or
  after) and the scope inputs (its hosts and destinations) for that VirtualService
  alone; an addition, a removal, a new gateway binding or anything that may change which
  VirtualServices are orphans (`model.orphans`: one without hosts, or with a delegate)
  re-indexes the VirtualServices (still not the registry).
* DestinationRules: the collection is spliced and the merged rules re-made for the hosts
  the changed rules name, before or after.

Anything else (a Service, a ServiceEntry, a Sidecar, a policy, the mesh ConfigMap...)
returns None: the caller builds in full. Equal to `build_snapshot` of the new config in
every field but the version (`tests/unit/model/test_model_with_config.py`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from itertools import compress
from typing import Any

from typing_extensions import TypeVar

from plait.api import DestinationRule, Loaded, VirtualService, of_kind
from plait.api.kinds import Resource
from plait.errors import ConfigMessage
from plait.model.indexes import MESH_GATEWAY, VirtualServiceIndex, gateways_of
from plait.model.orphans import orphan_hosts
from plait.model.registry import Service, resolve_host
from plait.model.ruleindexes import RuleIndexes, group_rules, host_rule_set
from plait.model.scope import ScopeInputs, destinations
from plait.model.snapshot import (
    MeshSnapshot,
    derived_messages,
    hosts_of,
    is_scoped,
    order_key,
    scope_inputs_of,
)

K = TypeVar("K", bound=Resource)

INCREMENTAL = (VirtualService, DestinationRule)
"""The kinds a change may consist of for `with_config` to apply."""


def with_config(
    snapshot: MeshSnapshot,
    before: Sequence[Loaded],
    after: Sequence[Loaded],
    version: int,
    messages: Sequence[ConfigMessage] = (),
) -> MeshSnapshot | None:
    """`snapshot` (built from the config `before`) for the config `after` with the input
    `messages`, or None when the change is not VirtualServices and DestinationRules only.

    Resources are compared by identity, as the sources keep an unchanged resource's
    `Loaded` object from one view to the next (see the module docstring)."""
    added, removed = _differing(before, after)
    if any(not isinstance(i.resource, INCREMENTAL) for i in (*added, *removed)):
        return None
    added, removed = _unequal(added, removed)
    changes: dict[str, Any] = {}
    if any(isinstance(i.resource, VirtualService) for i in (*added, *removed)):
        found = _virtual_services(
            snapshot, of_kind(removed, VirtualService), of_kind(added, VirtualService)
        )
        if found is None:
            return None
        changes |= found
    if any(isinstance(i.resource, DestinationRule) for i in (*added, *removed)):
        found = _destination_rules(
            snapshot, of_kind(removed, DestinationRule), of_kind(added, DestinationRule)
        )
        if found is None:
            return None
        changes |= found
    new = replace(snapshot, version=version, **changes)
    scoping = is_scoped(new.services, new.virtual_services, new.sidecars, new.restricted_rules)
    inputs = new.scope_inputs
    if not scoping:
        inputs = None
    elif inputs is None or (inputs is snapshot.scope_inputs and "routing" in changes):
        vs_hosts = hosts_of(new.services, new.orphan_hosts)  # (re-indexed VirtualServices)
        inputs = scope_inputs_of(new.services, new.virtual_services, vs_hosts, new.mesh)
    messages = (*messages, *derived_messages(new.rule_warnings, new.orphan_messages))
    return replace(new, scope_inputs=inputs, messages=messages)


def _differing(
    before: Sequence[Loaded], after: Sequence[Loaded]
) -> tuple[list[Loaded], list[Loaded]]:
    """(added, removed) by identity (in C: this looks at every resource of the mesh)."""
    kept, now = set(map(id, before)), set(map(id, after))
    new, gone = now - kept, kept - now
    return (
        list(compress(after, map(new.__contains__, map(id, after)))),
        list(compress(before, map(gone.__contains__, map(id, before)))),
    )


def _unequal(added: list[Loaded], removed: list[Loaded]) -> tuple[list[Loaded], list[Loaded]]:
    """Without the resources re-loaded equal (a file is parsed again as a whole: its
    other resources come back as new, equal objects); the snapshot keeps the old ones,
    found by key when they change later."""
    old = {(type(i.resource), order_key(i)): i for i in removed}
    same = [i for i in added if old.get((type(i.resource), order_key(i))) == i]
    if not same:
        return added, removed
    keys = {(type(i.resource), order_key(i)) for i in same}
    return (
        [i for i in added if (type(i.resource), order_key(i)) not in keys],
        [i for i in removed if (type(i.resource), order_key(i)) not in keys],
    )


def _spliced(
    items: tuple[Loaded[K], ...], removed: Sequence[Loaded[K]], added: Sequence[Loaded[K]]
) -> tuple[Loaded[K], ...] | None:
    """`items` (in `order_key` order) without `removed` (by key: see `_unequal`) and with
    `added` in place; None when two items would share a key (a full build keeps their
    config order)."""
    gone = {order_key(i) for i in removed}
    out = [i for i in items if order_key(i) not in gone] if gone else list(items)
    if len(items) - len(out) != len(removed):
        return None  # a removed one was not there, or its key was there twice
    keys = [order_key(i) for i in out] if added else []
    for item in added:
        key = order_key(item)
        at = bisect.bisect_left(keys, key)
        if at < len(keys) and keys[at] == key:
            return None
        keys.insert(at, key)
        out.insert(at, item)
    return tuple(out)


def _may_orphan(vs: VirtualService) -> bool:
    """Whether a VirtualService may be an orphan or make one stop being one."""
    return not vs.spec.hosts or any(rule.delegate is not None for rule in vs.spec.http)


def _pairs(
    removed: Sequence[Loaded[VirtualService]], added: Sequence[Loaded[VirtualService]]
) -> list[tuple[Loaded[VirtualService], Loaded[VirtualService]]] | None:
    """(old, new) per edited VirtualService, when the change is edits only, each keeping
    its name and gateways."""
    old = {order_key(i): i for i in removed}
    if len(old) != len(removed) or len(added) != len(removed):
        return None
    pairs = []
    for item in added:
        was = old.get(order_key(item))
        if was is None or gateways_of(was.resource) != gateways_of(item.resource):
            return None
        pairs.append((was, item))
    return pairs


def _virtual_services(
    snapshot: MeshSnapshot,
    removed: Sequence[Loaded[VirtualService]],
    added: Sequence[Loaded[VirtualService]],
) -> dict[str, Any] | None:
    items = _spliced(snapshot.virtual_services, removed, added)
    if items is None:
        return None
    out: dict[str, Any] = {"virtual_services": items}
    services = snapshot.services
    pairs = _pairs(removed, added)
    if pairs is None or any(_may_orphan(i.resource) for i in (*removed, *added)):
        orphans, orphan_messages = orphan_hosts(items)
        vs_hosts = hosts_of(services, orphans)
        out |= {
            "orphan_hosts": orphans,
            "orphan_messages": tuple(orphan_messages),
            "routing": VirtualServiceIndex.build(items, vs_hosts),
        }
        return out
    vs_hosts = hosts_of(services, snapshot.orphan_hosts)  # orphans unchanged
    out["routing"] = _routing(snapshot.routing, items, pairs, vs_hosts)
    inputs = snapshot.scope_inputs
    if inputs is not None:
        out["scope_inputs"] = _scope_inputs(inputs, pairs, vs_hosts, services)
    return out


def _routing(
    index: VirtualServiceIndex,
    items: tuple[Loaded[VirtualService], ...],
    pairs: Sequence[tuple[Loaded[VirtualService], Loaded[VirtualService]]],
    vs_hosts: Callable[[VirtualService], list[str]],
) -> VirtualServiceIndex:
    """The index after in-place edits (positions and gateways unchanged): `by_gateway`
    is the same; each host an edited VirtualService bound to `mesh` names gets its
    winner again (the first by position)."""
    by_name = dict(index.by_name)
    mesh_by_host = dict(index.mesh_by_host)
    for was, item in pairs:
        key = order_key(item)
        by_name[key] = item
        if MESH_GATEWAY not in gateways_of(item.resource):
            continue
        claims = set(vs_hosts(item.resource))
        for host in dict.fromkeys([*vs_hosts(was.resource), *claims]):
            current = mesh_by_host.get(host)
            if host in claims:
                if current is None or order_key(current) >= key:
                    mesh_by_host[host] = item
            elif current is not None and order_key(current) == key:
                winner = _first_claiming(items, host, vs_hosts, after=key)
                if winner is None:
                    del mesh_by_host[host]
                else:
                    mesh_by_host[host] = winner
    return VirtualServiceIndex(index.by_gateway, mesh_by_host, by_name)


def _first_claiming(
    items: Sequence[Loaded[VirtualService]],
    host: str,
    vs_hosts: Callable[[VirtualService], list[str]],
    after: tuple[str, str],
) -> Loaded[VirtualService] | None:
    """The first VirtualService bound to `mesh` after `after` that names `host`."""
    start = bisect.bisect_right(items, after, key=order_key)
    for item in items[start:]:
        if MESH_GATEWAY in gateways_of(item.resource) and host in vs_hosts(item.resource):
            return item
    return None


def _scope_inputs(
    inputs: ScopeInputs,
    pairs: Sequence[tuple[Loaded[VirtualService], Loaded[VirtualService]]],
    vs_hosts: Callable[[VirtualService], list[str]],
    services: Mapping[str, Service],
) -> ScopeInputs:
    """The scope inputs after in-place edits: the edited VirtualServices (bound to
    `mesh`) replaced at their positions, with their hosts and destinations."""
    bound = list(inputs.virtual_services)
    hosts = dict(inputs.vs_hosts)
    dests = dict(inputs.vs_destinations)
    by_host = dict(inputs.vs_by_host)
    for _, item in pairs:
        if MESH_GATEWAY not in gateways_of(item.resource):
            continue
        key = order_key(item)
        position = bisect.bisect_left(bound, key, key=order_key)
        bound[position] = item
        ns = key[0]
        old_hosts = hosts.get(key, ())
        hosts[key] = tuple(vs_hosts(item.resource))
        dests[key] = tuple(resolve_host(services, h, ns) for h in destinations(item.resource))
        for host in set(old_hosts) - set(hosts[key]):
            left = tuple(p for p in by_host[host] if p != position)
            if left:
                by_host[host] = left
            else:
                del by_host[host]
        for host in set(hosts[key]) - set(old_hosts):
            by_host[host] = tuple(sorted((*by_host.get(host, ()), position)))
    return replace(
        inputs,
        virtual_services=tuple(bound),
        vs_hosts=hosts,
        vs_destinations=dests,
        vs_by_host=by_host,
    )


def _destination_rules(
    snapshot: MeshSnapshot,
    removed: Sequence[Loaded[DestinationRule]],
    added: Sequence[Loaded[DestinationRule]],
) -> dict[str, Any] | None:
    items = _spliced(snapshot.destination_rules, removed, added)
    if items is None:
        return None
    services = snapshot.services
    touched = {
        resolve_host(services, i.resource.spec.host, i.resource.metadata.namespace)
        for i in (*removed, *added)
    }
    groups = group_rules(services, items)
    indexes = RuleIndexes.of(
        (host, host_rule_set(services, host, groups[host])) for host in groups if host in touched
    )
    rules = _merged(snapshot.rules_by_host, indexes.rules_by_host, touched, groups)
    restricted_rules = _merged(snapshot.restricted_rules, indexes.restricted_rules, touched, groups)
    warnings = _merged(snapshot.rule_warnings, indexes.rule_warnings, touched, groups)
    return {
        "destination_rules": items,
        "rules_by_host": rules,
        "restricted_rules": restricted_rules,
        "rule_warnings": warnings,
    }


V = TypeVar("V")


def _merged(
    old: Mapping[str, V], new: Mapping[str, V], touched: set[str], order: Iterable[str]
) -> dict[str, V]:
    """`old` with the `touched` hosts' entries from `new`, in host `order` (a full
    build's: the order of the hosts' first rules)."""
    out: dict[str, V] = {}
    for host in order:
        found = new.get(host) if host in touched else old.get(host)
        if found is not None:
            out[host] = found
    return out
