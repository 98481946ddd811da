"""MeshSnapshot: one immutable, indexed view of all config and the registry.

Built once per change (`build_snapshot`, the one place its indexes are made), read by
every translator; it holds no locks, no metrics and no status (those live with the
server). Istio resources stay as their validated, frozen pydantic models, one typed
collection per kind (`Loaded[VirtualService]`, ...): re-declaring the whole Istio API as
dataclasses would double it without making translation safer; the registry is converted
to domain values. The indexes (`model.indexes`) answer the per-proxy questions without
scanning every resource: VirtualServices by gateway, host and name; DestinationRules by
host (merged, `rules_by_host`); policies by namespace and selector; the Services that
select a workload; endpoints by (hostname, port).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from typing_extensions import TypeVar

from plait.api import (
    DestinationRule,
    Gateway,
    KubeService,
    Loaded,
    ServiceEntry,
    VirtualService,
    of_kind,
)
from plait.api.common import WorkloadSelector
from plait.api.kinds import Resource
from plait.api.meshconfig import ConfigMap
from plait.api.ratelimit import RateLimit
from plait.api.security import AuthorizationPolicy, PeerAuthentication, RequestAuthentication
from plait.api.sidecar import Sidecar
from plait.api.telemetry import Telemetry
from plait.errors import ConfigMessage
from plait.model.indexes import (
    MESH_GATEWAY,
    PolicyIndex,
    ServiceSelectorIndex,
    SidecarIndex,
    VirtualServiceIndex,
    gateways_of,
)
from plait.model.labels import Labels
from plait.model.meshsettings import MeshSettings, mesh_settings
from plait.model.orphans import orphan_hosts
from plait.model.policy import HostRules
from plait.model.registry import (
    Endpoint,
    Protocol,
    Service,
    WorkloadInstance,
    resolve_host,
)
from plait.model.registrybuild import (
    InstanceIndex,
    build_registry,
    entry_endpoints,
    entry_services,
    port_endpoints,
)
from plait.model.ruleindexes import rules_by_host
from plait.model.scope import ScopeInputs, destinations, restricted

K = TypeVar("K", bound=Resource)


@dataclass(frozen=True)
class PolicyIndexes:
    """The security policies of a snapshot by namespace and selector (`PolicyIndex`)."""

    authorization: PolicyIndex[AuthorizationPolicy] = field(default_factory=PolicyIndex)
    request_authentication: PolicyIndex[RequestAuthentication] = field(default_factory=PolicyIndex)
    peer_authentication: PolicyIndex[PeerAuthentication] = field(default_factory=PolicyIndex)
    rate_limit: PolicyIndex[RateLimit] = field(default_factory=PolicyIndex)


@dataclass(frozen=True)
class MeshSnapshot:
    version: int
    services: Mapping[str, Service]
    endpoints: Mapping[tuple[str, int], tuple[Endpoint, ...]]  # by (hostname, service port)
    virtual_services: tuple[Loaded[VirtualService], ...] = ()
    destination_rules: tuple[Loaded[DestinationRule], ...] = ()
    gateways: tuple[Loaded[Gateway], ...] = ()
    rate_limits: tuple[Loaded[RateLimit], ...] = ()
    peer_authentications: tuple[Loaded[PeerAuthentication], ...] = ()
    authorization_policies: tuple[Loaded[AuthorizationPolicy], ...] = ()
    request_authentications: tuple[Loaded[RequestAuthentication], ...] = ()
    telemetries: tuple[Loaded[Telemetry], ...] = ()  # by namespace, name (model.telemetry)
    sidecars: tuple[Loaded[Sidecar], ...] = ()
    messages: tuple[ConfigMessage, ...] = ()
    mesh: MeshSettings = field(default_factory=MeshSettings)  # the mesh ConfigMap's settings
    # issuer → jwks_uri found by OpenID discovery (sources.oidc), for issuer-only jwtRules
    discovered_jwks_uris: Mapping[str, str] = field(default_factory=dict)
    # indexes, derived in build_snapshot
    rules_by_host: Mapping[str, HostRules] = field(default_factory=dict)
    rule_warnings: Mapping[str, tuple[ConfigMessage, ...]] = field(default_factory=dict)
    orphan_hosts: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    orphan_messages: tuple[ConfigMessage, ...] = ()  # (the snapshot's derived messages are
    # the input's, then `rule_warnings` by host, then these: `model.withconfig` re-makes them)
    routing: VirtualServiceIndex = field(default_factory=VirtualServiceIndex)
    policies: PolicyIndexes = field(default_factory=PolicyIndexes)
    service_selectors: ServiceSelectorIndex = field(default_factory=ServiceSelectorIndex)
    sidecar_index: SidecarIndex = field(default_factory=SidecarIndex)
    # scoping (model.scope): None when no Sidecar and no exportTo hides anything, so every
    # sidecar sees everything; `restricted_rules`: every DestinationRule of a host that
    # has one not exported everywhere (`rules_by_host` then holds the exported ones')
    scope_inputs: ScopeInputs | None = None
    restricted_rules: Mapping[str, tuple[Loaded[DestinationRule], ...]] = field(
        default_factory=dict
    )

    def vs_hosts(self, vs: VirtualService) -> tuple[str, ...]:
        """The hosts a VirtualService applies to: its own, or an orphan's destination hosts
        (see `model.orphans`)."""
        if vs.spec.hosts:
            return tuple(vs.spec.hosts)
        return self.orphan_hosts.get((vs.metadata.namespace, vs.metadata.name), ())

    def service(self, hostname: str) -> Service | None:
        return self.services.get(hostname)

    def endpoints_for(self, hostname: str, port: int) -> tuple[Endpoint, ...]:
        return self.endpoints.get((hostname, port), ())

    def resolve_host(self, host: str, namespace: str) -> str:
        """Istio short-name resolution: `reviews` in namespace ns → `reviews.ns.svc.cluster.local`.

        Beyond Istio, `reviews.ns` and `reviews.ns.svc` also resolve when such a service exists.
        """
        return resolve_host(self.services, host, namespace)

    def host_rules(self, hostname: str) -> HostRules | None:
        """The merged DestinationRules for a host (see `model.policy`), if any."""
        return self.rules_by_host.get(hostname)


def order_key(item: Loaded) -> tuple[str, str]:
    """A snapshot collection's order: namespace, then name (Istio orders by creation time)."""
    return item.resource.metadata.namespace, item.resource.metadata.name


def _by_name(items: Iterable[Loaded[K]]) -> tuple[Loaded[K], ...]:
    """Deterministic order (`order_key`)."""
    return tuple(sorted(items, key=order_key))


class _ByKind:
    """The config grouped by model class in one pass; `of(Kind)` is typed."""

    def __init__(self, config: Iterable[Loaded]) -> None:
        self._groups: dict[type, list[Loaded]] = {}
        for item in config:
            self._groups.setdefault(type(item.resource), []).append(item)

    def of(self, model: type[K]) -> list[Loaded[K]]:
        return of_kind(self._groups.get(model, ()), model)


def derived_messages(
    rule_warnings: Mapping[str, tuple[ConfigMessage, ...]],
    orphan_messages: Sequence[ConfigMessage],
) -> tuple[ConfigMessage, ...]:
    """What a snapshot adds to its input's messages: merge warnings, then orphans'."""
    return (*(m for found in rule_warnings.values() for m in found), *orphan_messages)


def _selector(
    resource: AuthorizationPolicy | RequestAuthentication | PeerAuthentication | RateLimit,
) -> WorkloadSelector | None:
    return resource.spec.selector


def _has_targets(resource: AuthorizationPolicy | RequestAuthentication | RateLimit) -> bool:
    if isinstance(resource, RateLimit):
        return resource.spec.target_ref is not None
    return bool(resource.spec.target_refs) or resource.spec.target_ref is not None


def hosts_of(
    services: Mapping[str, Service], orphans: Mapping[tuple[str, str], tuple[str, ...]]
) -> Callable[[VirtualService], list[str]]:
    """The resolved hosts a VirtualService applies to: its own, or an orphan's."""

    def vs_hosts(vs: VirtualService) -> list[str]:
        own = vs.spec.hosts or orphans.get((vs.metadata.namespace, vs.metadata.name), ())
        return [resolve_host(services, h, vs.metadata.namespace) for h in own]

    return vs_hosts


def is_scoped(
    services: Mapping[str, Service],
    virtual_services: Sequence[Loaded[VirtualService]],
    sidecars: Sequence[Loaded[Sidecar]],
    restricted_rules: Mapping[str, object],
) -> bool:
    """Whether anything hides something from some sidecar (`MeshSnapshot.scope_inputs`)."""
    return bool(sidecars or restricted_rules) or any(
        restricted(export_to)
        for export_to in (
            *(s.export_to for s in services.values()),
            *(item.resource.spec.export_to for item in virtual_services),
        )
    )


def scope_inputs_of(
    services: Mapping[str, Service],
    virtual_services: Sequence[Loaded[VirtualService]],
    vs_hosts: Callable[[VirtualService], list[str]],
    mesh: MeshSettings,
) -> ScopeInputs:
    bound = tuple(i for i in virtual_services if MESH_GATEWAY in gateways_of(i.resource))
    keys = [(i.resource.metadata.namespace, i.resource.metadata.name) for i in bound]
    return ScopeInputs.build(
        services,
        bound,
        {k: tuple(vs_hosts(i.resource)) for k, i in zip(keys, bound, strict=True)},
        {
            k: tuple(resolve_host(services, h, k[0]) for h in destinations(i.resource))
            for k, i in zip(keys, bound, strict=True)
        },
        mesh.outbound_mode,
    )


def build_snapshot(
    config: Sequence[Loaded],
    instances: Sequence[WorkloadInstance],
    version: int,
    messages: Sequence[ConfigMessage] = (),
    discovered_jwks_uris: Mapping[str, str] | None = None,
    cluster_ips: Mapping[str, str] | None = None,
) -> MeshSnapshot:
    """Index validated config and the running instances into one snapshot
    (`discovered_jwks_uris`: what OpenID discovery found, issuer → jwks_uri).

    `cluster_ips` (hostname → IP) are the virtual IPs a platform gave services (local
    transparent mode's pod network); they win over a Service's own `spec.clusterIP`."""
    kinds = _ByKind(config)
    services, endpoints = build_registry(
        kinds.of(KubeService), kinds.of(ServiceEntry), InstanceIndex(instances)
    )
    for host, ip in (cluster_ips or {}).items():
        if host in services:
            services[host] = replace(services[host], cluster_ip=ip)
    virtual_services = _by_name(kinds.of(VirtualService))
    drs = _by_name(kinds.of(DestinationRule))
    authz = _by_name(kinds.of(AuthorizationPolicy))
    authn = _by_name(kinds.of(RequestAuthentication))
    peer = _by_name(kinds.of(PeerAuthentication))
    rate_limits = _by_name(kinds.of(RateLimit))
    rule_indexes = rules_by_host(services, drs)
    orphans, orphan_messages = orphan_hosts(virtual_services)
    vs_hosts = hosts_of(services, orphans)
    sidecars = _by_name(kinds.of(Sidecar))
    mesh = mesh_settings(kinds.of(ConfigMap))
    scoping = is_scoped(services, virtual_services, sidecars, rule_indexes.restricted_rules)
    return MeshSnapshot(
        version=version,
        services=services,
        endpoints=endpoints,
        virtual_services=virtual_services,
        destination_rules=drs,
        gateways=_by_name(kinds.of(Gateway)),
        rate_limits=rate_limits,
        peer_authentications=peer,
        authorization_policies=authz,
        request_authentications=authn,
        telemetries=_by_name(kinds.of(Telemetry)),
        sidecars=sidecars,
        messages=(*messages, *derived_messages(rule_indexes.rule_warnings, orphan_messages)),
        mesh=mesh,
        discovered_jwks_uris=dict(discovered_jwks_uris or {}),
        rules_by_host=rule_indexes.rules_by_host,
        rule_warnings=rule_indexes.rule_warnings,
        orphan_hosts=orphans,
        orphan_messages=tuple(orphan_messages),
        routing=VirtualServiceIndex.build(virtual_services, vs_hosts),
        service_selectors=ServiceSelectorIndex.build(services.values()),
        sidecar_index=SidecarIndex.build(sidecars),
        scope_inputs=(
            scope_inputs_of(services, virtual_services, vs_hosts, mesh) if scoping else None
        ),
        restricted_rules=rule_indexes.restricted_rules,
        policies=PolicyIndexes(
            authorization=PolicyIndex.build(authz, _selector, _has_targets),
            request_authentication=PolicyIndex.build(authn, _selector, _has_targets),
            peer_authentication=PolicyIndex.build(peer, _selector),
            rate_limit=PolicyIndex.build(rate_limits, _selector, _has_targets),
        ),
    )


def with_instances(
    snapshot: MeshSnapshot,
    config: Sequence[Loaded],
    before: Sequence[WorkloadInstance],
    after: Sequence[WorkloadInstance],
    version: int,
) -> tuple[MeshSnapshot, frozenset[str]]:
    """`snapshot` (built from `config` and the instances `before`) for the instances
    `after`, and the hostnames whose endpoints changed: an endpoint-only change.

    Only the endpoints of the hosts that select an instance that came, went or changed
    are recomputed (Kubernetes Services through `service_selectors`, ServiceEntries with a
    `workloadSelector`); every other field, and every unchanged endpoint tuple, is the
    very object of `snapshot`, so that translation can tell by identity what did not
    change (`translate.reuse.endpoint_change`). Equal to `build_snapshot(config, after,
    ...)` in everything but the version (`tests/unit/model/test_model_with_instances.py`).
    """
    changed = set(before).symmetric_difference(after)
    hosts = {
        svc.hostname
        for i in changed
        for svc in snapshot.service_selectors.selecting(i.namespace, i.labels)
    }
    index = InstanceIndex(after)
    endpoints = dict(snapshot.endpoints)
    for host in hosts:
        svc = snapshot.services[host]
        selected = index.select(svc.namespace, svc.selector)
        for port in svc.ports:
            endpoints[(host, port.port)] = port_endpoints(selected, port)
    owners: set[str] = set()  # hosts whose first ServiceEntry has been seen
    for item in _ByKind(config).of(ServiceEntry):
        entry = item.resource
        selector = entry.spec.workload_selector
        selects = selector is not None and any(
            i.namespace == entry.metadata.namespace and i.labels.matches(Labels.of(selector.labels))
            for i in changed
        )
        for svc, eps in entry_services(entry):
            served = snapshot.services.get(svc.hostname)
            if svc.hostname in owners or served is None or served.name != svc.hostname:
                continue  # an earlier entry or a Kubernetes Service won (see `build_registry`)
            owners.add(svc.hostname)
            if selects:
                for port in svc.ports:
                    key = (svc.hostname, port.port)
                    endpoints[key] = entry_endpoints(entry, eps, port, index)
                hosts.add(svc.hostname)
    moved = set()
    for host in hosts:
        for port in snapshot.services[host].ports:
            key = (host, port.port)
            if endpoints[key] == snapshot.endpoints.get(key):
                endpoints[key] = snapshot.endpoints[key]  # the same object: unchanged
            else:
                moved.add(host)
    if not moved:
        return replace(snapshot, version=version), frozenset()
    return replace(snapshot, version=version, endpoints=endpoints), frozenset(moved)


__all__ = [
    "MESH_GATEWAY",
    "MeshSnapshot",
    "PolicyIndexes",
    "Protocol",
    "build_snapshot",
    "with_instances",
]
