"""Translator: everything one proxy should have, for one snapshot.

A Translator lives exactly as long as its snapshot. Resources that do not depend on the
proxy (outbound clusters, endpoints, the outbound route table per namespace, gateway
tables) are built and serialized once and the same Resource objects are handed to every
proxy; only the few per-proxy resources (its listeners, its inbound cluster) are made per
call. Pure: no I/O, no clock.
"""

from __future__ import annotations

from functools import cached_property

from plait.model.proxy import Proxy, ProxyKind
from plait.model.snapshot import MeshSnapshot
from plait.translate import clusters, endpoints, gateway, inbound, listeners, names, vhosts
from plait.translate.resource import ProxyConfig, Resource


class Translator:
    def __init__(self, snapshot: MeshSnapshot) -> None:
        self.snapshot = snapshot
        self._routes_by_ns: dict[str, Resource] = {}

    def _subsets(self, hostname: str) -> list[tuple[str, dict[str, str]]]:
        rules = self.snapshot.host_rules(hostname)
        if rules is None:
            return []
        return [(s.name, dict(s.labels)) for s in rules.subsets]

    @cached_property
    def _outbound(self) -> tuple[list[Resource], list[Resource]]:
        """(clusters, load assignments) for every service port and subset in the mesh."""
        cds: list[Resource] = []
        eds: list[Resource] = []
        for hostname in sorted(self.snapshot.services):
            service = self.snapshot.services[hostname]
            subsets: list[tuple[str, dict[str, str]]] = [("", {}), *self._subsets(hostname)]
            for port in service.ports:
                eps = self.snapshot.endpoints_for(hostname, port.port)
                for subset, labels in subsets:
                    cluster = clusters.outbound_cluster(service, port, subset)
                    cds.append(Resource.pack(cluster.name, cluster))
                    if cluster.HasField("eds_cluster_config"):
                        cla = endpoints.load_assignment(cluster.name, eps, labels)
                        eds.append(Resource.pack(cluster.name, cla))
        return cds, eds

    def _sidecar_routes(self, namespace: str) -> Resource:
        found = self._routes_by_ns.get(namespace)
        if found is None:
            found = Resource.pack(
                names.OUTBOUND_ROUTE, vhosts.sidecar_routes(self.snapshot, namespace)
            )
            self._routes_by_ns[namespace] = found
        return found

    @cached_property
    def _gateway_routes(self) -> dict[int, Resource]:
        return {
            port: Resource.pack(
                names.gateway_route(port), gateway.gateway_routes(self.snapshot, port)
            )
            for port in gateway.gateway_ports(self.snapshot)
        }

    @cached_property
    def _shared(self) -> ProxyConfig:
        """What every proxy gets: outbound clusters and their endpoints."""
        cds, eds = self._outbound
        return ProxyConfig.of([*cds, *eds])

    def config_for(self, proxy: Proxy) -> ProxyConfig:
        own: list[Resource] = []
        if proxy.kind == ProxyKind.GATEWAY:
            for port, route in self._gateway_routes.items():
                host_port = proxy.host_port_for_gateway_port(port)
                if host_port is None:
                    continue  # no host port was given for this server port (see plait status)
                lis = listeners.gateway_listener(port, proxy.address, host_port)
                own += [Resource.pack(lis.name, lis), route]
            return ProxyConfig.layered(self._shared, own)
        if proxy.outbound_port is not None:
            lis = listeners.outbound_listener(proxy.address, proxy.outbound_port)
            own += [Resource.pack(lis.name, lis), self._sidecar_routes(proxy.namespace)]
        if proxy.inbound_port is not None and proxy.app_port is not None:
            app = clusters.inbound_cluster(proxy.address, proxy.app_port)
            lis = listeners.inbound_listener(
                proxy.address, proxy.inbound_port, inbound.inbound_routes(proxy.app_port, proxy.id)
            )
            own += [Resource.pack(app.name, app), Resource.pack(lis.name, lis)]
        return ProxyConfig.layered(self._shared, own)
