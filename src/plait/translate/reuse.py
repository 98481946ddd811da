"""What the translation of a new snapshot may take over from the previous snapshot's.

A built resource is reused only when exactly the inputs it was built from are equal
(compared by value; pydantic models and frozen dataclasses compare field by field, and
equal objects short-circuit), as istiod's xDS cache keys each resource by what it depends
on. Each function here names the inputs of one kind of resource; they must list every
part of the snapshot the translation of that resource reads (the imports of the
modules it calls show which: `tests/unit/translate/test_translate_reuse.py` checks that
reused configs equal fresh ones for changes of each kind).

* A sidecar's own resources (its listeners, inbound cluster and route table, JWKS
  clusters) read the proxy, the services (application protocols, JWKS hosts, rate-limit
  services, authorization; cluster IPs for captured sidecars), the security policies, the
  gateways (authorization of gateway-bound policies), the mesh settings, the Telemetry
  resources and the JWKS URIs found by OpenID discovery, and for captured sidecars the
  VirtualServices' `tcp` and `tls` rules (`l4_routing`) and the endpoints of headless
  Services (their pods get listeners; `Translator._config_for` keys the sidecar's own
  resources on them) — not HTTP routing, no other endpoints. A captured sidecar's route
  tables and ORIGINAL_DST clusters for headless pods are made per snapshot.
* Route tables (the sidecars' outbound table, the gateways' tables) read the services,
  VirtualServices, DestinationRules, gateways and mesh settings — not endpoints.
* An outbound host's clusters and endpoint sets read that host's service, its merged
  DestinationRules and its endpoints, plus the mesh settings and PeerAuthentications
  (endpoint mTLS), which may select workloads through any service.
* A scoped sidecar's route table (`model.scope`) reads only its scope (the host ports it
  routes, the VirtualServices it sees, its outbound mode), those hosts' services and
  rules, the services and rules of its VirtualServices' destinations and delegates, plus
  the mesh settings and the `sourceLabels` selectors (`scoped_table_context`): so an
  edit outside the scope keeps the very same table. While the scopes and that context
  are the same, a table or a scope's clusters whose hosts and VirtualServices are not
  among those that changed (`changed_hosts`, `changed_virtual_services`) is kept without
  even comparing its inputs: a change costs the proxies it does not concern a few set
  lookups.
* Scopes themselves are made anew for each snapshot (from the Sidecars and what
  `ScopeInputs` holds); a captured sidecar's own listeners are kept only while its
  scope's host ports and outbound mode are the same (`Translator._config_for`).

Endpoints are read by nothing else (only `Translator.build_host`, and captured sidecars'
listeners for headless Services), so a snapshot that differs from the previous one in
its endpoints alone (`endpoint_change`) takes the fast path: only the affected hosts are
rebuilt and everything else is taken over as it is; unless a headless host's endpoints
changed while captured sidecars are served (their listeners name its pods).

A snapshot that differs in VirtualService routing and DestinationRules alone, by
identity (`config_change`, as `model.withconfig.with_config` makes it), takes the config
fast path: the proxies that read an edited host or VirtualService are translated again
(scoped ones found through `translate.dependents`; every unscoped sidecar and gateway;
captured sidecars too when headless Services exist) and every other config is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from plait.api import Loaded, VirtualService
from plait.model.policy import HostRules
from plait.model.scope import Scope
from plait.model.snapshot import MeshSnapshot
from plait.translate import vhosts

# What a snapshot may differ in and still be an endpoint-only change: translation reads
# neither its version nor its messages.
_MESSAGES = frozenset({"version", "messages", "rule_warnings", "orphan_messages"})
_NOT_READ = _MESSAGES | {"endpoints"}
_COMPARED = tuple(f.name for f in fields(MeshSnapshot) if f.name not in _NOT_READ)
# What a config-only change (`config_change`) may differ in: what VirtualServices and
# DestinationRules feed (`model.withconfig`), but not `orphan_hosts`.
_CONFIG = frozenset(
    {"virtual_services", "destination_rules", "rules_by_host", "restricted_rules", "routing"}
    | {"scope_inputs"}
)
_KEPT = tuple(f.name for f in fields(MeshSnapshot) if f.name not in _MESSAGES | _CONFIG)

Key = tuple[str, str]


def endpoint_change(old: MeshSnapshot, new: MeshSnapshot) -> frozenset[str] | None:
    """The hostnames whose endpoints differ, when every other input of translation is the
    very same object in both snapshots (as `model.snapshot.with_instances` makes them);
    None otherwise (then the caller compares inputs by value, `own_inputs` and the rest).

    Identity, not equality: a fully rebuilt snapshot never takes this path, so an
    endpoint event that came with any other change is translated in full.
    """
    if any(getattr(old, name) is not getattr(new, name) for name in _COMPARED):
        return None
    before, after = old.endpoints, new.endpoints
    if before.keys() != after.keys():
        return None
    return frozenset(
        key[0] for key, eps in after.items() if (was := before[key]) is not eps and was != eps
    )


def own_inputs(snapshot: MeshSnapshot) -> tuple[Any, ...]:
    """What a sidecar's own resources depend on, besides the proxy."""
    return (
        snapshot.services,
        snapshot.peer_authentications,
        snapshot.authorization_policies,
        snapshot.request_authentications,
        snapshot.rate_limits,
        snapshot.gateways,
        snapshot.mesh,
        snapshot.telemetries,
        snapshot.discovered_jwks_uris,
        l4_routing(snapshot),
    )


def l4_routing(snapshot: MeshSnapshot) -> tuple[Any, ...]:
    """The VirtualServices with `tcp` or `tls` rules (captured sidecars' listeners read
    them), each with what decides the hosts it answers for."""
    return tuple(
        (vs.metadata.namespace, vs.metadata.name, vs.spec.hosts, vs.spec.gateways)
        + (vs.spec.tcp, vs.spec.tls)
        for vs in (item.resource for item in snapshot.virtual_services)
        if vs.spec.tcp or vs.spec.tls
    )


def route_inputs(snapshot: MeshSnapshot) -> tuple[Any, ...]:
    """What route tables depend on, besides the caller's table key."""
    return (
        snapshot.services,
        snapshot.virtual_services,
        snapshot.destination_rules,
        snapshot.gateways,
        snapshot.mesh,
    )


def host_context(snapshot: MeshSnapshot) -> tuple[Any, ...]:
    """What every outbound host's resources depend on."""
    policies = snapshot.peer_authentications
    return (snapshot.mesh, policies, snapshot.services if policies else None)


def host_inputs(snapshot: MeshSnapshot, hostname: str) -> tuple[Any, ...]:
    """What one outbound host's clusters and endpoint sets depend on (with the context)."""
    service = snapshot.services[hostname]
    return (
        service,
        snapshot.host_rules(hostname),
        tuple(snapshot.endpoints_for(hostname, port.port) for port in service.ports),
    )


def scoped_table_context(snapshot: MeshSnapshot) -> tuple[Any, ...]:
    """What every scoped route table depends on besides its own inputs (`scoped_table`)."""
    return (snapshot.mesh, vhosts.source_selectors(snapshot))


def scoped_table(
    snapshot: MeshSnapshot,
    scope: Scope,
    rules_for: Callable[[str, str], tuple[HostRules | None, bool]],
) -> tuple[Any, ...]:
    """What one scoped route table depends on (with `scoped_table_context`)."""
    by_name = snapshot.routing.by_name
    routed = tuple(
        (h, snapshot.services.get(h), by_name.get(k), snapshot.host_rules(h))
        for h, k in ((h, scope.virtual_services.get(h, ("", ""))) for h in sorted(scope.clusters))
    )
    inputs = snapshot.scope_inputs
    related: list[Any] = []
    for key in dict.fromkeys(scope.virtual_services.values()):
        item = by_name.get(key)
        if item is None:
            continue
        vs = item.resource
        for dest in inputs.vs_destinations.get(key, ()) if inputs is not None else ():
            related.append((dest, snapshot.services.get(dest), snapshot.host_rules(dest)))
        for rule in vs.spec.http:
            if rule.delegate is not None:
                ns = rule.delegate.namespace or vs.metadata.namespace
                related.append(snapshot.routing.by_name.get((ns, rule.delegate.name)))
    return (scope.routes, scope.outbound_mode, routed, tuple(related))


def scope_context(snapshot: MeshSnapshot) -> tuple[Any, ...] | None:
    """What every scope is built from (`model.scope.build_scope`): the Sidecars, the
    services, and the hosts, destinations, visibility and order of the VirtualServices
    bound to `mesh`, not their rules (a scope names VirtualServices, it holds none)."""
    inputs = snapshot.scope_inputs
    if inputs is None:
        return None
    return (
        snapshot.sidecars,
        snapshot.mesh.root_namespace,
        inputs.services,
        inputs.vs_hosts,
        inputs.vs_destinations,
        tuple(
            (i.resource.metadata.namespace, i.resource.metadata.name, i.resource.spec.export_to)
            for i in inputs.virtual_services
        ),
        inputs.mesh_mode,
    )


def changed_hosts(old: MeshSnapshot, new: MeshSnapshot) -> frozenset[str]:
    """The hostnames whose service, endpoints or DestinationRules differ between two
    snapshots (what a scoped proxy's clusters and route table read of a host)."""
    out: set[str] = set()
    for h in old.services.keys() | new.services.keys():
        if old.services.get(h) != new.services.get(h):
            out.add(h)
    for h in old.rules_by_host.keys() | new.rules_by_host.keys():
        if old.rules_by_host.get(h) != new.rules_by_host.get(h):
            out.add(h)
    for h in old.restricted_rules.keys() | new.restricted_rules.keys():
        if old.restricted_rules.get(h) != new.restricted_rules.get(h):
            out.add(h)
    for key in old.endpoints.keys() | new.endpoints.keys():
        if old.endpoints.get(key) != new.endpoints.get(key):
            out.add(key[0])
    return frozenset(out)


def changed_virtual_services(old: MeshSnapshot, new: MeshSnapshot) -> frozenset[tuple[str, str]]:
    """The (namespace, name) of the VirtualServices that differ between two snapshots."""
    a, b = old.routing.by_name, new.routing.by_name
    return frozenset(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def table_dependencies(
    snapshot: MeshSnapshot, scope: Scope
) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """The hosts and VirtualServices a scoped route table reads (`scoped_table`'s)."""
    hosts = set(scope.clusters)
    names = set(scope.virtual_services.values())
    inputs = snapshot.scope_inputs
    for key in scope.virtual_services.values():
        hosts.update(inputs.vs_destinations.get(key, ()) if inputs is not None else ())
        item = snapshot.routing.by_name.get(key)
        for rule in item.resource.spec.http if item is not None else ():
            if rule.delegate is not None:
                names.add((rule.delegate.namespace or key[0], rule.delegate.name))
    return frozenset(hosts), frozenset(names)


@dataclass(frozen=True)
class ConfigChange:
    """What differs between two snapshots that differ in VirtualServices and
    DestinationRules only (`config_change`)."""

    hosts: frozenset[str]  # hostnames whose merged or restricted rules are other objects
    virtual_services: frozenset[Key]  # (namespace, name) of the edited VirtualServices


def config_change(old: MeshSnapshot, new: MeshSnapshot) -> ConfigChange | None:
    """The change, when every input of translation but what VirtualServices and
    DestinationRules feed is the very same object in both snapshots (as
    `model.withconfig.with_config` makes them), and each VirtualService that differs is
    an edit that keeps its name, hosts and gateways and is plain HTTP routing (`_plain`);
    None otherwise (then the caller compares inputs by value, as for any change).

    So, by identity and a look at the edited VirtualServices only: the captured
    sidecars' listeners (`l4_routing`), the `sourceLabels` selectors and so every table
    key, the orphans and delegates, and which VirtualService answers for each host are
    the same; what the edit may change is the route tables and the clusters of the hosts
    it names (`translate.scoped.Dependents` finds whose)."""
    if any(getattr(old, name) is not getattr(new, name) for name in _KEPT):
        return None
    before, after = old.routing.by_name, new.routing.by_name
    edited = _differing(before, after)
    for key in edited:
        was, now = before.get(key), after.get(key)
        if was is None or now is None or not (_plain(was) and _plain(now)):
            return None
        a, b = was.resource.spec, now.resource.spec
        if (a.hosts, a.gateways) != (b.hosts, b.gateways):
            return None
    hosts = _differing(old.rules_by_host, new.rules_by_host)
    hosts |= _differing(old.restricted_rules, new.restricted_rules)
    return ConfigChange(frozenset(hosts), frozenset(edited))


def _differing(a: Mapping[Any, Any], b: Mapping[Any, Any]) -> set[Any]:
    """The keys whose values are not the very same objects."""
    if a is b:
        return set()
    return {k for k in a.keys() | b.keys() if a.get(k) is not b.get(k)}


def _plain(item: Loaded[VirtualService]) -> bool:
    """HTTP routing with hosts, no delegate and no `sourceLabels` match."""
    spec = item.resource.spec
    return (
        bool(spec.hosts)
        and not spec.tcp
        and not spec.tls
        and all(
            rule.delegate is None and not any(m.source_labels for m in rule.match)
            for rule in spec.http
        )
    )


def scopes_kept(old: MeshSnapshot, new: MeshSnapshot, change: ConfigChange) -> bool:
    """Whether every scope is the same (`scope_context` equal) after `change`: the edited
    VirtualServices keep their resolved hosts and destinations and their exportTo (the
    rest of the scope inputs is made of what `config_change` found to be the same)."""
    a, b = old.scope_inputs, new.scope_inputs
    if a is b:
        return True
    if a is None or b is None or a.services is not b.services:
        return False
    if a.mesh_mode != b.mesh_mode or len(a.virtual_services) != len(b.virtual_services):
        return False
    for key in change.virtual_services:
        if a.vs_hosts.get(key) != b.vs_hosts.get(key):
            return False
        if a.vs_destinations.get(key) != b.vs_destinations.get(key):
            return False
        was, now = old.routing.by_name[key], new.routing.by_name[key]
        if was.resource.spec.export_to != now.resource.spec.export_to:
            return False
    return True
