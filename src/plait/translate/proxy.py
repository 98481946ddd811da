"""Translator: everything one proxy should have, for one snapshot.

A Translator lives exactly as long as its snapshot. Resources that do not depend on the
proxy (outbound clusters, endpoints, the outbound route table per namespace, gateway
tables) are built and serialized once and the same Resource objects are handed to every
proxy; only the few per-proxy resources (its listeners, its inbound cluster) are made per
call. Pure: no I/O, no clock.

Every config it hands out is consistent (`consistency`): the shared resources are checked
once per snapshot, each proxy's own ones when its config is assembled; a config naming
an endpoint set or route table it lacks raises `InconsistentConfigError` (a translator
bug; the cache keeps that proxy's last good config) instead of leaving Envoy warming.

Built from the `previous` snapshot's Translator, it takes over whatever was built from
inputs that did not change (`reuse`): an outbound host's clusters and endpoints, the route
tables, each sidecar's own resources. So an endpoint change rebuilds the clusters and
endpoint sets of the hosts it touches and nothing else, a VirtualService edit rebuilds the
route tables, and the unchanged resources are the very same `Resource` objects as before.
Only one generation is kept: nothing refers to the previous Translator afterwards.

An endpoint-only snapshot (`reuse.endpoint_change`: nothing but endpoints differs, by
identity) takes a fast path: the affected hosts are rebuilt, and if their clusters came
out byte for byte the same, the new endpoint sets replace the old ones in the shared EDS
mapping and in each known proxy's config, whose other types stay the very same objects
(so the streams find only EDS changed); a scoped proxy whose endpoint sets include none
of the hosts' keeps its config as it was, one that includes some has it assembled again;
nothing else is compared or assembled again. A host whose clusters changed too (a new
service account changes the SANs) falls back to the take-over above, and so does a
change of a headless Service's pods while captured sidecars are served: their listeners
name the pods (`headless`), so they change too.
`built` counts what each Translator made (the tests read it).

A config-only snapshot (`reuse.config_change`: VirtualServices edited in their routing
only, DestinationRules changed, everything else the very same object, as
`model.withconfig.with_config` makes it) takes another fast path when the scopes stay
the same: every config is taken over as it is but those of the proxies that read an
edited host or VirtualService: the scoped proxies found through `Scoping`'s
`Dependents` (with each proxy scoped to 10 services, an edit concerns ~10 of 1,000),
and every unscoped sidecar and gateway (their tables read every VirtualService);
`warm` translates for those only. `changed` then tells which proxies' configs are not
the previous Translator's very objects (what the server needs to wake).

Scoping (`model.scope`: Sidecar resources, exportTo): a sidecar under a scope gets the
clusters and endpoint sets of the host ports its scope reaches, and a route table of
those, instead of the mesh-wide ones; proxies of one namespace under one Sidecar share
both. The same built host resources serve every scope, so a change outside a scope
leaves that scope's resources, their bytes and their versions as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from plait.model.labels import Labels
from plait.model.peerauth import PeerAuthentications
from plait.model.policy import HostRules
from plait.model.proxy import Proxy, ProxyKind, Traffic
from plait.model.registry import Service
from plait.model.scope import Scope
from plait.model.snapshot import MeshSnapshot
from plait.translate import (
    capturedsidecar,
    consistency,
    egress,
    gateway,
    headless,
    hostbuild,
    names,
    proxyown,
    reuse,
    tracing,
    vhosts,
)
from plait.translate.appprotocol import AppProtocols
from plait.translate.headlesstables import HeadlessTables
from plait.translate.hostbuild import HostBuild
from plait.translate.resource import ProxyConfig, Resource
from plait.translate.scoped import Scoping, check
from plait.translate.typeurls import ENDPOINT, ROUTE

_OUTBOUND_TABLE = (ROUTE, names.OUTBOUND_ROUTE)  # named by a captured sidecar's HTTP chains
_ENDPOINT_DERIVED = frozenset({"_outbound", "_shared", "_headless_endpoints"})  # read endpoints


@dataclass
class Built:
    """What one Translator made itself (rather than took over)."""

    hosts: int = 0  # outbound hosts whose clusters and endpoint sets were built
    own: int = 0  # proxies whose own resources (listeners, inbound cluster...) were built
    tables: int = 0  # route tables built (sidecars' outbound tables, gateway tables)
    configs: int = 0  # proxy configs assembled from their parts
    eds_swaps: int = 0  # proxy configs taken over with only their endpoint sets replaced
    eds_untouched: int = 0  # scoped proxies' configs taken over as they were (no host in scope)
    endpoint_hosts: frozenset[str] = field(default_factory=frozenset)  # fast path: rebuilt
    # config fast path: the proxies whose configs were made again (the others taken over
    # without a look); -1 when it was not taken
    config_affected: int = -1


class Translator:
    def __init__(self, snapshot: MeshSnapshot, previous: Translator | None = None) -> None:
        self.snapshot = snapshot
        self.built = Built()
        self._sidecar_tables: dict[tuple[str, tuple[bool, ...]], Resource] = {}
        # by node id, with the Proxy they were made for (hashing a Proxy is slow)
        # sidecars' own resources, with the scope they were made for (captured ones')
        self._own: dict[str, tuple[Proxy, Any, list[Resource]]] = {}
        self._configs: dict[str, tuple[Proxy, ProxyConfig]] = {}
        self._hosts: dict[str, HostBuild] = {}
        self._earlier_hosts: dict[str, HostBuild] = {}
        self._known: list[Proxy] = []  # the proxies the previous Translator served
        # node ids of the unscoped sidecars, the captured ones and the gateways served
        # (carried forward, so they may name more: the config fast path translates those
        # again; captured ones when the mesh has headless Services, whose tables and
        # clusters for the pods are made per snapshot)
        self._unscoped: set[str] = set()
        self._captured_ids: set[str] = set()
        self._gateways: set[str] = set()
        self.scoping: Scoping = Scoping(snapshot, self)
        self._headless_tables = HeadlessTables(snapshot, self._host_for, self.built)
        # proxies whose configs are not the previous Translator's objects after `warm`
        # (a config made again with the same versions is replaced by the previous one)
        # (None: no previous one, or not warmed yet)
        self.changed: frozenset[str] | None = None
        self._before: tuple[dict[str, tuple[Proxy, ProxyConfig]], set[str] | None] | None = None
        if previous is not None:
            self._unscoped = set(previous._unscoped)
            self._captured_ids = set(previous._captured_ids)
            self._gateways = set(previous._gateways)
            self._known = [proxy for proxy, _ in previous._configs.values()]
            self._before = (previous._configs, None)
            hosts = reuse.endpoint_change(previous.snapshot, snapshot)
            if hosts is not None and self._endpoints_only(previous, hosts):
                self.scoping.take_over(previous.scoping)
            elif not self._config_only(previous):  # (which narrows what `warm` does)
                self.scoping.take_over(previous.scoping)
                self._take_over(previous)

    def warm(self) -> None:
        """Translate, ahead of their requests, for every proxy the previous snapshot's
        Translator served (the caller runs this in a worker thread before publishing, so
        a large rebuild never stalls the streams). A proxy whose translation fails is
        left for `config_for` to fail on, where the failure is handled."""
        for proxy in self._known:
            try:
                self.config_for(proxy)
            except Exception:  # noqa: BLE001, S112 - reported when the stream asks
                continue
        if self._before is not None:
            before, ids = self._before
            self._before = None  # nothing refers to the previous Translator afterwards
            changed = []
            for node_id in self._configs if ids is None else ids:
                now, was = self._configs.get(node_id), before.get(node_id)
                if now is None or (was is not None and was[1] is now[1]):
                    continue
                if was is not None and was[0] == now[0] and was[1].versions == now[1].versions:
                    self._configs[node_id] = was  # made again, the same: keep the old one
                    continue
                changed.append(node_id)
            self.changed = frozenset(changed)

    def _config_only(self, previous: Translator) -> bool:
        """The config fast path (see the module docstring); False when it does not apply
        (then nothing has been taken)."""
        old, new = previous.snapshot, self.snapshot
        change = reuse.config_change(old, new)
        if change is None or not reuse.scopes_kept(old, new, change):
            return False
        affected = self.scoping.take_over_config(previous.scoping, change)
        anything = bool(change.hosts or change.virtual_services)
        dropped = {"_gateway_routes"} if anything else set()
        if change.hosts:
            dropped |= {"_outbound", "_shared"}  # the hosts' clusters
        for name, value in previous.__dict__.items():
            if name not in dropped and isinstance(getattr(Translator, name, None), cached_property):
                self.__dict__[name] = value  # none of these reads what changed
        if anything:  # every unscoped table reads every VirtualService; gateways' too
            affected |= self._unscoped | self._gateways
            if self._headless_services:  # pods' tables and clusters: made per snapshot
                affected |= self._captured_ids
        self._hosts = dict(previous._hosts)
        for host in change.hosts:
            self._hosts.pop(host, None)
        self._earlier_hosts = previous._earlier_hosts
        self._own = dict(previous._own)
        self._sidecar_tables = {} if anything else dict(previous._sidecar_tables)
        self._configs = dict(previous._configs)
        known = []
        for node_id in affected:
            found = self._configs.pop(node_id, None)
            if found is not None:
                known.append(found[0])
        self._known = known
        self._before = (previous._configs, affected)
        self.built.config_affected = len(affected)
        return True

    def _take_over(self, previous: Translator) -> None:
        """Keep what `previous` built from inputs that are still the same."""
        old, new = previous.snapshot, self.snapshot
        if reuse.own_inputs(old) == reuse.own_inputs(new):
            self._own = dict(previous._own)
        if reuse.route_inputs(old) == reuse.route_inputs(new):
            self._sidecar_tables = dict(previous._sidecar_tables)
            for name in ("_source_selectors", "_gateway_routes"):
                if name in previous.__dict__:  # computed there (cached_property)
                    self.__dict__[name] = previous.__dict__[name]
        if reuse.host_context(old) == reuse.host_context(new):
            # a scoped mesh builds only the hosts scopes reach: keep the older builds too,
            # those of hosts that still exist
            merged = {**previous._earlier_hosts, **previous._hosts}
            self._earlier_hosts = {h: b for h, b in merged.items() if h in new.services}

    def _endpoints_only(self, previous: Translator, hosts: frozenset[str]) -> bool:
        """The fast path (see the module docstring); False when it does not apply (then
        only what holds for the new snapshot as well has been taken: the cached properties
        endpoints do not decide)."""
        if not previous._configs:
            return False  # the previous one served no proxy: nothing to take over
        shared = previous.__dict__.get("_shared")  # (None: every proxy it served is scoped)
        for name, value in previous.__dict__.items():
            if name not in _ENDPOINT_DERIVED and isinstance(
                getattr(Translator, name, None), cached_property
            ):
                self.__dict__[name] = value  # none of these reads endpoints
        if any(p.traffic is Traffic.CAPTURED for p in self._known) and any(
            headless.is_headless(self.snapshot, host) for host in hosts
        ):
            return False  # captured sidecars' listeners name its pods (`headless`)
        rebuilt = {host: self.host(host) for host in hosts}
        for host, new in rebuilt.items():
            old = previous._hosts.get(host)
            if old is None or [(c.name, c.digest) for c in old.clusters] != [
                (c.name, c.digest) for c in new.clusters
            ]:
                return False  # (the hosts just built are built again: rare, and correct)
            if [r.name for r in old.endpoints] != [r.name for r in new.endpoints]:
                return False
        self._hosts = {**previous._hosts, **rebuilt}
        self._earlier_hosts = {**previous._earlier_hosts, **self._hosts}
        self._own = dict(previous._own)
        self._sidecar_tables = dict(previous._sidecar_tables)
        changed = {r.name: r for new in rebuilt.values() for r in new.endpoints}
        old_eds: Mapping[str, Resource] | None = None
        if shared is not None:
            old_eds = shared.resources(ENDPOINT)
            eds = {**old_eds, **changed}
            new_shared = self.__dict__["_shared"] = shared.replacing(ENDPOINT, eds)
            version = new_shared.version(ENDPOINT)
        for node_id, (proxy, config) in previous._configs.items():
            own_eds = config.by_type.get(ENDPOINT)
            if own_eds is not None and own_eds is old_eds:
                self._configs[node_id] = (proxy, config.replacing(ENDPOINT, eds, version))
                self.built.eds_swaps += 1
            elif own_eds is not None and own_eds.keys().isdisjoint(changed):
                self._configs[node_id] = (proxy, config)  # scoped away from every host
                self.built.eds_untouched += 1
            # (else: a scoped proxy that reaches one of them: assembled when asked)
        self.built.endpoint_hosts = hosts
        return True

    def host(self, hostname: str) -> HostBuild:
        """The host's resources with the rules everyone sees (built once per snapshot)."""
        found = self._hosts.get(hostname)
        if found is None:
            found = self._hosts[hostname] = self.build_host(
                hostname, self.snapshot.host_rules(hostname)
            )
        return found

    def build_host(self, hostname: str, rules: HostRules | None) -> HostBuild:
        """The host's resources with `rules`, or the previous snapshot's if built from the
        same inputs."""
        inputs = (*reuse.host_inputs(self.snapshot, hostname), rules)
        earlier = self._earlier_hosts.get(hostname)
        if earlier is not None and earlier.inputs == inputs:
            return earlier
        self.built.hosts += 1
        return hostbuild.build(self.snapshot, hostname, rules, self._peer_auth, inputs)

    def scope_of(self, proxy: Proxy) -> Scope | None:
        """The proxy's scope (`model.scope`); None when it sees everything."""
        return self.scoping.scope_of(proxy)

    @cached_property
    def _peer_auth(self) -> PeerAuthentications:
        return PeerAuthentications(self.snapshot)

    @cached_property
    def _outbound(self) -> tuple[list[Resource], list[Resource]]:
        """(clusters, load assignments) for every service port and subset in the mesh."""
        cds: list[Resource] = []
        eds: list[Resource] = []
        for hostname in sorted(self.snapshot.services):
            built = self.host(hostname)
            cds += built.clusters
            eds += built.endpoints
        self._earlier_hosts = {}  # taken over or rebuilt: the previous ones can go
        return cds, eds

    @cached_property
    def _source_selectors(self) -> tuple[Labels, ...]:
        return vhosts.source_selectors(self.snapshot)

    def source_selectors(self) -> tuple[Labels, ...]:
        """Every `sourceLabels` selector of the snapshot (`vhosts.table_key`)."""
        return self._source_selectors

    def common_clusters(self) -> list[Resource]:
        """Clusters every proxy has whatever it reaches (passthrough, trace collector)."""
        return self._common_clusters

    @cached_property
    def _common_clusters(self) -> list[Resource]:
        extra = [egress.passthrough_cluster()]
        collector = tracing.collector_cluster(self.snapshot.mesh.tracing)
        if collector is not None:
            extra.append(collector)
        return [Resource.pack(c.name, c) for c in extra]

    def _sidecar_routes(self, proxy: Proxy) -> Resource:
        """The outbound table, shared by every proxy with the same `vhosts.table_key`."""
        key = vhosts.table_key(proxy, self._source_selectors)
        found = self._sidecar_tables.get(key)
        if found is None:
            self.built.tables += 1
            table = vhosts.sidecar_routes(
                self.snapshot, proxy.namespace, proxy, memo=self.scoping.route_memo
            )
            found = self._sidecar_tables[key] = Resource.pack(names.OUTBOUND_ROUTE, table)
        return found

    @cached_property
    def _gateway_routes(self) -> dict[int, tuple[gateway.GatewayPort, list[Resource]]]:
        """Per served Gateway port: its servers and the route tables its listener names."""
        self.built.tables += 1
        return {
            port.number: (
                port,
                [Resource.pack(t.name, t) for t in gateway.route_tables(self.snapshot, port)],
            )
            for port in gateway.gateway_port_plans(self.snapshot)
        }

    @cached_property
    def _app_protocols(self) -> AppProtocols:
        return AppProtocols(self.snapshot)

    @cached_property
    def _shared(self) -> ProxyConfig:
        """What every proxy gets: outbound clusters and their endpoints."""
        cds, eds = self._outbound
        shared = ProxyConfig.of([*cds, *self._common_clusters, *eds])
        check(consistency.dangling(shared), "every proxy")
        return shared

    def _assemble(
        self, proxy: Proxy, own: list[Resource], scope: Scope | None = None
    ) -> ProxyConfig:
        base = self._shared if scope is None else self.scoping.shared(scope)
        config = ProxyConfig.layered(base, own)
        check(consistency.dangling(config, own), proxy.id)
        return config

    def config_for(self, proxy: Proxy) -> ProxyConfig:
        """Everything `proxy` should have (memoized per proxy)."""
        found = self._configs.get(proxy.id)
        if found is not None and found[0] == proxy:
            return found[1]
        config = self._config_for(proxy)
        self._configs[proxy.id] = (proxy, config)
        self.built.configs += 1
        return config

    def _config_for(self, proxy: Proxy) -> ProxyConfig:
        if proxy.kind == ProxyKind.GATEWAY:
            return self._gateway_config(proxy)
        scope = self.scope_of(proxy)
        # a captured sidecar's listeners list the services its scope reaches, and the
        # pods of headless ones
        captured_ = proxy.traffic is Traffic.CAPTURED
        scoped_by = (
            (
                (scope.clusters, scope.outbound_mode) if scope is not None else None,
                self._headless_endpoints,
            )
            if captured_
            else None
        )
        if scope is None:
            self._unscoped.add(proxy.id)
        found = self._own.get(proxy.id)
        if found is not None and found[0] == proxy and found[1] == scoped_by:
            own = found[2]
        else:
            own = self._sidecar_own(proxy)
            self._own[proxy.id] = (proxy, scoped_by, own)
        routed = proxy.outbound_port is not None or (
            captured_ and any(_OUTBOUND_TABLE in r.refs for r in own)
        )
        pods = self._headless_resources(proxy, scope) if captured_ else []
        if captured_:
            self._captured_ids.add(proxy.id)
        if scope is not None:
            return self.scoping.config(
                proxy,
                scope,
                own,
                routed,
                pods,
                lambda resources: self._assemble(proxy, resources, scope),
            )
        table = [self._sidecar_routes(proxy)] if routed else []
        return self._assemble(proxy, [*own, *table, *pods])

    def _gateway_config(self, proxy: Proxy) -> ProxyConfig:
        self._gateways.add(proxy.id)
        self.built.own += 1
        return self._assemble(
            proxy, proxyown.gateway_own(self.snapshot, proxy, self._gateway_routes)
        )

    def _sidecar_own(self, proxy: Proxy) -> list[Resource]:
        """A sidecar's resources other than its outbound route table."""
        self.built.own += 1
        if proxy.traffic is not Traffic.CAPTURED:
            return proxyown.sidecar_own(self.snapshot, proxy, self._peer_auth, self._app_protocols)
        scope = self.scope_of(proxy)
        return capturedsidecar.captured_own(
            capturedsidecar.CapturedInputs(
                self.snapshot,
                proxy,
                scope,
                self._cluster_ips,
                headless.reached_pods(self.snapshot, self._headless_services, proxy.address, scope),
                self._peer_auth,
                self._app_protocols,
            )
        )

    @cached_property
    def _headless_services(self) -> tuple[Service, ...]:
        return headless.headless_services(self.snapshot)

    @cached_property
    def _headless_endpoints(self) -> tuple[Any, ...]:
        """The endpoints of headless services: captured sidecars' listeners name them."""
        return headless.headless_endpoints(self.snapshot, self._headless_services)

    def _headless_resources(self, proxy: Proxy, scope: Scope | None) -> list[Resource]:
        """The route tables and ORIGINAL_DST clusters of the headless host ports whose
        pods a captured sidecar reaches (`headlesstables`)."""
        pods = headless.reached_pods(self.snapshot, self._headless_services, proxy.address, scope)
        if not pods:
            return []
        return self._headless_tables.resources(
            proxy, scope, pods, self._source_selectors, self._peer_auth
        )

    def _host_for(self, hostname: str, scope: Scope | None) -> HostBuild:
        """The host's build as a proxy with this scope sees it."""
        if scope is None:
            return self.host(hostname)
        return self.scoping.host_for(hostname, scope.namespace)

    @cached_property
    def _cluster_ips(self) -> dict[str, str]:
        return {
            host: svc.cluster_ip
            for host, svc in self.snapshot.services.items()
            if svc.cluster_ip is not None
        }
