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

Scoping (`model.scope`: Sidecar resources, exportTo): a sidecar under a scope gets the
clusters and endpoint sets of the host ports its scope reaches, and a route table of
those, instead of the mesh-wide ones; proxies of one namespace under one Sidecar share
both. The same built host resources serve every scope, so a change outside a scope
leaves that scope's resources, their bytes and their versions as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from plait.errors import InconsistentConfigError
from plait.model.labels import Labels
from plait.model.peerauth import PeerAuthentications, inbound_mode
from plait.model.policy import HostRules, choose, merge
from plait.model.proxy import Proxy, ProxyKind, Traffic
from plait.model.registry import Protocol
from plait.model.scope import Scope, build_scope, visible_rules
from plait.model.snapshot import MeshSnapshot
from plait.model.telemetry import ProxyTelemetry, Side, telemetry_for
from plait.translate import (
    accesslog,
    captured,
    capturedin,
    capturedout,
    clusters,
    consistency,
    egress,
    endpoints,
    gateway,
    gatewaylisteners,
    inbound,
    listeners,
    metrics,
    mtls,
    names,
    peer,
    reuse,
    tcpmetrics,
    tcproutes,
    telemetryapi,
    tracing,
    vhosts,
)
from plait.translate.appprotocol import AppProtocols
from plait.translate.authfilters import (
    security_clusters,
    security_filters,
    tcp_security_filters,
)
from plait.translate.listeners import SecurityFilters
from plait.translate.ratelimit import limits_for
from plait.translate.resource import ProxyConfig, Resource


@dataclass(frozen=True)
class _HostBuild:
    """One outbound host's clusters and endpoint sets, and the inputs they came from
    (`ports`: the service port of each cluster, then of each endpoint set)."""

    hostname: str
    inputs: tuple[Any, ...]
    clusters: list[Resource]
    endpoints: list[Resource]
    cluster_ports: tuple[int, ...] = ()
    endpoint_ports: tuple[int, ...] = ()

    def at(self, ports: frozenset[int]) -> list[Resource]:
        """The clusters and endpoint sets of these service ports."""
        return [
            *(c for c, p in zip(self.clusters, self.cluster_ports, strict=True) if p in ports),
            *(e for e, p in zip(self.endpoints, self.endpoint_ports, strict=True) if p in ports),
        ]


_Deps = tuple[frozenset[str], frozenset[tuple[str, str]]]
"""Hostnames and VirtualService (namespace, name) keys."""

ScopeKey = tuple[str, tuple[str, str] | None]
"""(proxy namespace, the Sidecar in force): proxies with the same key share a scope."""


class Translator:
    def __init__(self, snapshot: MeshSnapshot, previous: Translator | None = None) -> None:
        self.snapshot = snapshot
        self._sidecar_tables: dict[tuple[str, tuple[bool, ...]], Resource] = {}
        # by node id, with the Proxy they were made for (hashing a Proxy is slow)
        # sidecars' own resources, with the scope they were made for (captured ones')
        self._own: dict[str, tuple[Proxy, Any, list[Resource]]] = {}
        self._configs: dict[str, tuple[Proxy, ProxyConfig]] = {}
        self._hosts: dict[str, _HostBuild] = {}
        self._earlier_hosts: dict[str, _HostBuild] = {}
        self._known: list[Proxy] = []  # the proxies the previous Translator served
        self._scopes: dict[ScopeKey, Scope] = {}
        # a scope's clusters and endpoint sets, with the host builds they were made of
        self._scoped: dict[ScopeKey, tuple[tuple[_HostBuild, ...], ProxyConfig]] = {}
        self._earlier_scoped: dict[ScopeKey, tuple[tuple[_HostBuild, ...], ProxyConfig]] = {}
        # a scope's route table by table key: the inputs it was built from, the table, and
        # the hosts and VirtualServices it reads
        self._scoped_tables: dict[Any, tuple[tuple[Any, ...], Resource, _Deps]] = {}
        # what changed since the previous snapshot, when scopes and everything else a
        # scoped resource reads are the same (None: compare inputs instead)
        self._changed: _Deps | None = None
        self._rule_variants: dict[tuple[str, str], HostRules | None] = {}
        # scoped sidecars' configs with the parts they were assembled from
        self._assembled: dict[str, tuple[Proxy, tuple[Any, ...], ProxyConfig]] = {}
        self._earlier_assembled: dict[str, tuple[Proxy, tuple[Any, ...], ProxyConfig]] = {}
        self._variant_hosts: dict[tuple[str, tuple[Any, ...]], _HostBuild] = {}
        if previous is not None:
            self._known = [proxy for proxy, _ in previous._configs.values()]
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

    def _take_over(self, previous: Translator) -> None:
        """Keep what `previous` built from inputs that are still the same."""
        old, new = previous.snapshot, self.snapshot
        if reuse.own_inputs(old) == reuse.own_inputs(new):
            self._own = dict(previous._own)
        self._earlier_assembled = previous._assembled
        context = reuse.scope_context(new)
        if context is not None and reuse.scope_context(old) == context:
            self._scopes = dict(previous._scopes)
            self._earlier_scoped = previous._scoped
        same_tables = reuse.scoped_table_context(old) == reuse.scoped_table_context(new)
        if same_tables:
            self._scoped_tables = dict(previous._scoped_tables)  # each checks its inputs
        same_hosts = reuse.host_context(old) == reuse.host_context(new)
        if self._scopes and same_tables and same_hosts:
            self._changed = (
                reuse.changed_hosts(old, new),
                reuse.changed_virtual_services(old, new),
            )
        if reuse.route_inputs(old) == reuse.route_inputs(new):
            self._sidecar_tables = dict(previous._sidecar_tables)
            for name in ("_source_selectors", "_gateway_routes"):
                if name in previous.__dict__:  # computed there (cached_property)
                    self.__dict__[name] = previous.__dict__[name]
        if same_hosts:
            self._earlier_hosts = {**previous._earlier_hosts, **previous._hosts}

    def _host(self, hostname: str) -> _HostBuild:
        """The host's resources with the rules everyone sees (built once per snapshot)."""
        found = self._hosts.get(hostname)
        if found is None:
            found = self._hosts[hostname] = self._build_host(
                hostname, self.snapshot.host_rules(hostname)
            )
        return found

    def _build_host(self, hostname: str, rules: HostRules | None) -> _HostBuild:
        inputs = (*reuse.host_inputs(self.snapshot, hostname), rules)
        earlier = self._earlier_hosts.get(hostname)
        if earlier is not None and earlier.inputs == inputs:
            return earlier
        cds: list[Resource] = []
        eds: list[Resource] = []
        cds_ports: list[int] = []
        eds_ports: list[int] = []
        service = self.snapshot.services[hostname]
        trust_domain = self.snapshot.mesh.trust_domain
        subsets: list[tuple[str, dict[str, str]]] = [
            ("", {}),
            *((s.name, dict(s.labels)) for s in (rules.subsets if rules is not None else ())),
        ]
        for port in service.ports:
            eps = self.snapshot.endpoints_for(hostname, port.port)
            peers = mtls.identities(eps, trust_domain)
            for subset, labels in subsets:
                policy = rules.policy_for(port.port, subset) if rules is not None else None
                cluster = clusters.outbound_cluster(service, port, subset, policy, peers)
                egress.finish_cluster(cluster, service, eps, labels)
                metrics.tag_cluster(cluster, service)
                cds.append(Resource.pack(cluster.name, cluster))
                cds_ports.append(port.port)
                if cluster.HasField("eds_cluster_config"):
                    tls = policy.tls if policy is not None else None
                    speaks_mtls = mtls.endpoint_mtls(self._peer_auth, port, tls)
                    cla = endpoints.load_assignment(cluster.name, eps, labels, speaks_mtls)
                    eds.append(Resource.pack(cluster.name, cla))
                    eds_ports.append(port.port)
        return _HostBuild(hostname, inputs, cds, eds, tuple(cds_ports), tuple(eds_ports))

    # -- scoping (model.scope) -------------------------------------------------------------

    def scope_of(self, proxy: Proxy) -> Scope | None:
        """The proxy's scope; None when it sees everything (a gateway, or a mesh with no
        Sidecar and no exportTo that hides anything)."""
        inputs = self.snapshot.scope_inputs
        if inputs is None or proxy.kind != ProxyKind.SIDECAR:
            return None
        sidecar = self.snapshot.sidecar_index.for_workload(
            proxy.namespace, proxy.labels, self.snapshot.mesh.root_namespace
        )
        key: ScopeKey = (
            proxy.namespace,
            None
            if sidecar is None
            else (sidecar.resource.metadata.namespace, sidecar.resource.metadata.name),
        )
        found = self._scopes.get(key)
        if found is None:
            found = self._scopes[key] = build_scope(inputs, proxy.namespace, sidecar)
        return found

    def _rules_for(self, hostname: str, namespace: str) -> tuple[HostRules | None, bool]:
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

    def _scoped_host(self, hostname: str, namespace: str) -> _HostBuild:
        rules, variant = self._rules_for(hostname, namespace)
        if not variant:
            return self._host(hostname)
        key = (hostname, tuple(s.resource.metadata.name for s in (rules.sources if rules else ())))
        found = self._variant_hosts.get(key)
        if found is None:
            found = self._variant_hosts[key] = self._build_host(hostname, rules)
        return found

    def _scoped_shared(self, scope: Scope) -> ProxyConfig:
        """What every proxy under `scope` gets: the clusters and endpoint sets of the host
        ports it reaches, and the clusters every proxy has."""
        key: ScopeKey = (scope.namespace, scope.sidecar)
        found = self._scoped.get(key)
        if found is not None:
            return found[1]
        earlier = self._earlier_scoped.get(key)  # only while the scopes are the same
        if (
            earlier is not None
            and self._changed is not None
            and self._changed[0].isdisjoint(scope.clusters)
        ):
            self._scoped[key] = earlier  # none of its hosts changed
            return earlier[1]
        builds = tuple(
            self._scoped_host(hostname, scope.namespace)
            for hostname in sorted(scope.clusters)
            if hostname in self.snapshot.services
        )
        if earlier is not None and _same(earlier[0], builds):
            self._scoped[key] = earlier
            return earlier[1]
        resources: list[Resource] = []
        for built in builds:
            resources += built.at(scope.clusters[built.hostname])
        config = ProxyConfig.of([*resources, *self._common_clusters])
        _check(consistency.dangling(config), f"scope {key}")
        self._scoped[key] = (builds, config)
        return config

    @cached_property
    def _common_clusters(self) -> list[Resource]:
        """Clusters every proxy has whatever it reaches (passthrough, trace collector)."""
        extra = [egress.passthrough_cluster()]
        collector = tracing.collector_cluster(self.snapshot.mesh.tracing)
        if collector is not None:
            extra.append(collector)
        return [Resource.pack(c.name, c) for c in extra]

    def _scoped_routes(self, proxy: Proxy, scope: Scope) -> Resource:
        """The outbound table of a scoped proxy, shared like `_sidecar_routes` and kept
        from the previous snapshot while what it reads is equal (`reuse.scoped_table`)."""
        key = (scope.sidecar, vhosts.table_key(proxy, self._source_selectors))
        found = self._scoped_tables.get(key)
        changed = self._changed
        if (
            found is not None
            and changed is not None
            and found[2][0].isdisjoint(changed[0])
            and found[2][1].isdisjoint(changed[1])
        ):
            return found[1]  # the scope is the same and nothing it reads changed
        inputs = reuse.scoped_table(self.snapshot, scope, self._rules_for)
        if found is not None and found[0] == inputs:
            return found[1]
        table = vhosts.sidecar_routes(self.snapshot, proxy.namespace, proxy, scope)
        resource = Resource.pack(names.OUTBOUND_ROUTE, table)
        deps = reuse.table_dependencies(self.snapshot, scope)
        self._scoped_tables[key] = (inputs, resource, deps)
        return resource

    @cached_property
    def _peer_auth(self) -> PeerAuthentications:
        return PeerAuthentications(self.snapshot)

    @cached_property
    def _outbound(self) -> tuple[list[Resource], list[Resource]]:
        """(clusters, load assignments) for every service port and subset in the mesh."""
        cds: list[Resource] = []
        eds: list[Resource] = []
        for hostname in sorted(self.snapshot.services):
            built = self._host(hostname)
            cds += built.clusters
            eds += built.endpoints
        self._earlier_hosts = {}  # taken over or rebuilt: the previous ones can go
        return cds, eds

    @cached_property
    def _source_selectors(self) -> tuple[Labels, ...]:
        return vhosts.source_selectors(self.snapshot)

    def _sidecar_routes(self, proxy: Proxy) -> Resource:
        """The outbound table, shared by every proxy with the same `vhosts.table_key`."""
        key = vhosts.table_key(proxy, self._source_selectors)
        found = self._sidecar_tables.get(key)
        if found is None:
            table = vhosts.sidecar_routes(self.snapshot, proxy.namespace, proxy)
            found = self._sidecar_tables[key] = Resource.pack(names.OUTBOUND_ROUTE, table)
        return found

    @cached_property
    def _gateway_routes(self) -> dict[int, tuple[gateway.GatewayPort, list[Resource]]]:
        """Per served Gateway port: its servers and the route tables its listener names."""
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
        _check(consistency.dangling(shared), "every proxy")
        return shared

    def _assemble(
        self, proxy: Proxy, own: list[Resource], scope: Scope | None = None
    ) -> ProxyConfig:
        base = self._shared if scope is None else self._scoped_shared(scope)
        config = ProxyConfig.layered(base, own)
        _check(consistency.dangling(config, own), proxy.id)
        return config

    def config_for(self, proxy: Proxy) -> ProxyConfig:
        """Everything `proxy` should have (memoized per proxy)."""
        found = self._configs.get(proxy.id)
        if found is not None and found[0] == proxy:
            return found[1]
        config = self._config_for(proxy)
        self._configs[proxy.id] = (proxy, config)
        return config

    def _config_for(self, proxy: Proxy) -> ProxyConfig:
        if proxy.kind == ProxyKind.GATEWAY:
            return self._gateway_config(proxy)
        scope = self.scope_of(proxy)
        # a captured sidecar's listeners list the services its scope reaches
        scoped_by = (
            (scope.clusters, scope.outbound_mode)
            if scope is not None and proxy.traffic is Traffic.CAPTURED
            else None
        )
        found = self._own.get(proxy.id)
        if found is not None and found[0] == proxy and found[1] == scoped_by:
            own = found[2]
        else:
            own = self._sidecar_own(proxy)
            self._own[proxy.id] = (proxy, scoped_by, own)
        table = None
        if proxy.outbound_port is not None or (
            proxy.traffic is Traffic.CAPTURED and self._captured_http
        ):
            table = (
                self._sidecar_routes(proxy) if scope is None else self._scoped_routes(proxy, scope)
            )
        if scope is None:
            return self._assemble(proxy, own if table is None else [*own, table])
        # a scoped proxy whose parts are the very objects of the previous snapshot keeps
        # its assembled config (so a change elsewhere costs it a few lookups)
        parts = (own, table, self._scoped_shared(scope))
        earlier = self._earlier_assembled.get(proxy.id)
        if earlier is not None and earlier[0] == proxy and _same_parts(earlier[1], parts):
            self._assembled[proxy.id] = earlier
            return earlier[2]
        config = self._assemble(proxy, own if table is None else [*own, table], scope)
        self._assembled[proxy.id] = (proxy, parts, config)
        return config

    def _gateway_config(self, proxy: Proxy) -> ProxyConfig:
        own: list[Resource] = [
            Resource.pack(c.name, c) for c in security_clusters(self.snapshot, proxy)
        ]
        guards = security_filters(self.snapshot, proxy)  # authn/authz for what it serves
        mesh, tel = self.snapshot.mesh, telemetry_for(self.snapshot, proxy)
        own += [Resource.pack(c.name, c) for c in telemetryapi.collector_clusters(mesh, tel)]
        traced = telemetryapi.tracing_for(mesh, tel, proxy, Side.CLIENT)
        client_skip = telemetryapi.skipped_metrics(tel, Side.CLIENT)
        gateway_log = telemetryapi.access_log_for(
            mesh, tel, proxy, Side.CLIENT, accesslog.Direction.GATEWAY
        )
        for number, (port, tables) in self._gateway_routes.items():
            host_port = proxy.host_port_for_gateway_port(number)
            if host_port is None:
                continue  # no host port was given for this server port (see plait status)
            lis = gatewaylisteners.port_listener(
                port, proxy.address, host_port, guards, gateway_log
            )
            tracing.apply(lis, traced)
            metrics.count_outbound(lis, proxy, client_skip)
            own += [Resource.pack(lis.name, lis), *tables]
        return self._assemble(proxy, own)

    def _sidecar_own(self, proxy: Proxy) -> list[Resource]:
        """A sidecar's resources other than its outbound route table."""
        own: list[Resource] = [
            Resource.pack(c.name, c) for c in security_clusters(self.snapshot, proxy)
        ]
        guards = security_filters(self.snapshot, proxy)  # authn/authz for what it serves
        mesh, tel = self.snapshot.mesh, telemetry_for(self.snapshot, proxy)
        own += [Resource.pack(c.name, c) for c in telemetryapi.collector_clusters(mesh, tel)]
        traced = telemetryapi.tracing_for(mesh, tel, proxy, Side.CLIENT)
        client_skip = telemetryapi.skipped_metrics(tel, Side.CLIENT)
        if proxy.traffic is Traffic.CAPTURED:
            return own + self._captured(proxy, guards, tel)
        if proxy.outbound_port is not None:
            lis = listeners.outbound_listener(
                proxy.address,
                proxy.outbound_port,
                telemetryapi.access_log_for(
                    mesh, tel, proxy, Side.CLIENT, accesslog.Direction.OUTBOUND
                ),
                peer.source_workload(proxy),
            )
            tracing.apply(lis, traced)
            metrics.count_outbound(lis, proxy, client_skip)
            own.append(Resource.pack(lis.name, lis))
        if proxy.inbound_port is not None and proxy.app_port is not None:
            protocol = self._app_protocols.app_protocol(proxy.namespace, proxy.labels)
            app = clusters.inbound_cluster(proxy.address, proxy.app_port, protocol)
            limits = limits_for(self.snapshot, proxy)
            table = inbound.inbound_routes(proxy.app_port, proxy.id, limits)
            mode = inbound_mode(self._peer_auth, self.snapshot, proxy.namespace, proxy.labels)
            lis = listeners.inbound_listener(
                proxy.address,
                proxy.inbound_port,
                table.name,
                mode,
                guards,
                telemetryapi.access_log_for(
                    mesh, tel, proxy, Side.SERVER, accesslog.Direction.INBOUND
                ),
            )
            tracing.apply(lis, telemetryapi.tracing_for(mesh, tel, proxy, Side.SERVER))
            service = metrics.serving_service(self.snapshot, proxy)
            server_skip = telemetryapi.skipped_metrics(tel, Side.SERVER)
            metrics.count_inbound(lis, proxy, service, names.INBOUND_MTLS_CHAIN, server_skip)
            own += [
                Resource.pack(app.name, app),
                Resource.pack(lis.name, lis),
                Resource.pack(table.name, table),
            ]
        return own

    @cached_property
    def _captured_http(self) -> bool:
        """Whether captured sidecars have HTTP chains (so name the outbound table)."""
        addresses = capturedout.service_addresses(
            self.snapshot.services.values(), self._cluster_ips
        )
        return any(a.is_http for a in addresses)

    @cached_property
    def _cluster_ips(self) -> dict[str, str]:
        return {
            host: svc.cluster_ip
            for host, svc in self.snapshot.services.items()
            if svc.cluster_ip is not None
        }

    def _captured(
        self, proxy: Proxy, guards: SecurityFilters, tel: ProxyTelemetry
    ) -> list[Resource]:
        """A captured sidecar (Istio's REDIRECT mode): virtualOutbound with its per-service
        listeners, virtualInbound for the app's port, and their original-destination
        clusters; the HTTP chains are the explicit sidecar's (`capturedout`, `capturedin`),
        with the same Telemetry API choices (access logs, tracing, metrics per side)."""
        mesh = self.snapshot.mesh
        traced = telemetryapi.tracing_for(mesh, tel, proxy, Side.CLIENT)
        explicit = listeners.outbound_listener(  # its HCM is the captured HTTP chains'
            "0.0.0.0",
            capturedout.CAPTURE_PORT,
            telemetryapi.access_log_for(
                mesh, tel, proxy, Side.CLIENT, accesslog.Direction.OUTBOUND
            ),
            peer.source_workload(proxy),
        )
        metrics.count_outbound(explicit, proxy, telemetryapi.skipped_metrics(tel, Side.CLIENT))
        hcm = hcm_pb2.HttpConnectionManager()
        explicit.filter_chains[0].filters[0].typed_config.Unpack(hcm)
        scope = self.scope_of(proxy)
        services = [
            s for h, s in self.snapshot.services.items() if scope is None or h in scope.clusters
        ]
        addresses = [
            a if a.is_http else self._l4_routes(a, proxy)
            for a in capturedout.service_addresses(services, self._cluster_ips)
            if scope is None or a.port in scope.clusters.get(a.host, ())
        ]
        policy = scope.outbound_mode if scope is not None else self.snapshot.mesh.outbound_mode
        out = capturedout.OutboundOptions(addresses, capturedout.captured_hcm(hcm), policy)
        lds = [tracing.apply(lis, traced) for lis in capturedout.outbound_listeners(out)]
        source = metrics.source_tags(proxy)
        for lis in lds[1:]:  # not virtualOutbound: its only chain is the passthrough
            for chain in lis.filter_chains:
                tcpmetrics.count_tcp_chain(chain, source)
        own: list[Resource] = []  # the outbound table is added by `_config_for`
        cds = [
            captured.passthrough_cluster(),
            captured.inbound_passthrough_cluster(),
            captured.blackhole_cluster(),
        ]
        if proxy.app_port is not None:
            protocol = self._app_protocols.app_protocol(proxy.namespace, proxy.labels)
            cds.append(clusters.inbound_cluster("127.0.0.1", proxy.app_port, protocol))
            limits = limits_for(self.snapshot, proxy)
            table = inbound.inbound_routes(proxy.app_port, proxy.id, limits)
            mode = inbound_mode(self._peer_auth, self.snapshot, proxy.namespace, proxy.labels)
            http = listeners.inbound_listener(
                "0.0.0.0",
                capturedin.CAPTURE_PORT,
                table.name,
                mode,
                guards,
                telemetryapi.access_log_for(
                    mesh, tel, proxy, Side.SERVER, accesslog.Direction.INBOUND
                ),
            )
            service = metrics.serving_service(self.snapshot, proxy)
            server_skip = telemetryapi.skipped_metrics(tel, Side.SERVER)
            metrics.count_inbound(http, proxy, service, names.INBOUND_MTLS_CHAIN, server_skip)
            port = capturedin.AppPort(proxy.app_port, self._inbound_protocol(proxy, protocol))
            tcp_guards = tcp_security_filters(self.snapshot, proxy)
            inbound_lis = capturedin.virtual_inbound(
                capturedin.InboundOptions([port], http, mode, tcp_filters=tcp_guards)
            )
            for chain in inbound_lis.filter_chains:  # the app port's TCP chains
                if chain.name.startswith(f"{proxy.app_port}_"):
                    mtls = chain.filter_chain_match.transport_protocol == "tls"
                    tcpmetrics.count_tcp_chain(
                        chain, metrics.destination_tags(proxy, service, mtls)
                    )
            server_traced = telemetryapi.tracing_for(mesh, tel, proxy, Side.SERVER)
            lds.append(tracing.apply(inbound_lis, server_traced))
            if port.is_http:
                own.append(Resource.pack(table.name, table))
        return [
            *own,
            *(Resource.pack(c.name, c) for c in cds),
            *(Resource.pack(lis.name, lis) for lis in lds),
        ]

    def _l4_routes(
        self, address: capturedout.ServiceAddress, proxy: Proxy
    ) -> capturedout.ServiceAddress:
        """A TCP/TLS service address with its VirtualService `tcp` (and, for TLS and
        HTTPS ports, `tls`) routes."""
        args = (self.snapshot, address.host, address.port, proxy)
        sni: tcproutes.SniRoutes = ()
        if address.protocol in (Protocol.TLS, Protocol.HTTPS):
            sni = tcproutes.tls_routes(*args)
        return replace(address, routes=tcproutes.tcp_route(*args), sni_routes=sni)

    def _inbound_protocol(self, proxy: Proxy, http: Protocol) -> Protocol:
        """The app port's protocol: TCP when every port of its Services is opaque TCP."""
        ports = [
            port.protocol
            for svc in self.snapshot.service_selectors.selecting(proxy.namespace, proxy.labels)
            for port in svc.ports
        ]
        if ports and not any(p.is_http or p is Protocol.UNKNOWN for p in ports):
            return Protocol.TCP
        return http


def _same_parts(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return all(x is y for x, y in zip(a, b, strict=True))


def _same(a: tuple[_HostBuild, ...], b: tuple[_HostBuild, ...]) -> bool:
    """The very same host builds (identity: a rebuilt host is a new object)."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _check(problems: list[str], whose: str) -> None:
    if problems:
        raise InconsistentConfigError(f"config for {whose} is inconsistent: {'; '.join(problems)}")
