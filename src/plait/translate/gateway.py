"""Gateway route tables: which VirtualService answers which host on which Gateway server.

Follows istiod's gateway translation (pilot/pkg/networking/core/gateway.go):

- Servers of every Gateway are grouped by port. A plain-text port (HTTP, HTTP2, GRPC)
  has one route table, `http.PORT`, merged from all its servers; an HTTPS port that
  terminates TLS gets one route table per server (`https.PORT.PORTNAME.GATEWAY.NS`),
  since each server has its own certificate and filter chain (chosen by SNI).
- A server host `ns/host` lets only VirtualServices of namespace `ns` bind (`./` is the
  Gateway's namespace, `*/` or no prefix any namespace).
- A VirtualService binds to a Gateway it names in `gateways` (`name` in its own
  namespace, or `ns/name`); its hosts intersect the server's hosts with wildcard
  semantics, and the virtual host takes the more specific of the two names (a VS for `*`
  on a `*.example.com` server serves `*.example.com` only).
- `tls.httpsRedirect` on a plain-text server makes each of its virtual hosts answer 301
  to https (`require_tls: ALL`), whether or not a VirtualService binds to the host.
- Ports whose servers cannot be served (TCP, TLS passthrough, HTTPS without certificate
  files) get no listener.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from google.protobuf import wrappers_pb2

from plait.api import VirtualService
from plait.api.gateway import Server
from plait.model.snapshot import MeshSnapshot
from plait.translate import names
from plait.translate.routes import RouteContext, vs_routes

PLAIN_PROTOCOLS = ("HTTP", "HTTP2", "GRPC")
TERMINATED_TLS_MODES = ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL")


@dataclass(frozen=True)
class GatewayServer:
    """One server of one Gateway, with what translation needs to know about its source."""

    gateway: str  # the Gateway's key, ns/name
    namespace: str  # the Gateway's namespace
    name: str  # the Gateway's name
    server: Server
    base_dir: str  # directory of the Gateway's YAML file: relative TLS paths start there

    @property
    def port(self) -> int:
        return self.server.port.number

    @property
    def tls(self) -> bool:
        return self.server.port.protocol.upper() == "HTTPS"

    @property
    def https_redirect(self) -> bool:
        return not self.tls and self.server.tls is not None and self.server.tls.https_redirect

    @property
    def route_name(self) -> str:
        if not self.tls:
            return names.gateway_route(self.port)
        return f"https.{self.port}.{self.server.port.name}.{self.name}.{self.namespace}"

    def file(self, path: str) -> str:
        """A certificate path as Envoy should open it: relative paths from `base_dir`."""
        if posixpath.isabs(path) or not self.base_dir:
            return path
        return posixpath.normpath(posixpath.join(self.base_dir, path))

    def hosts(self) -> list[tuple[str, str]]:
        """(namespace allowed to bind or `*`, hostname) per server host."""
        out = []
        for entry in self.server.hosts:
            ns, _, hostname = entry.rpartition("/")
            if ns == ".":
                ns = self.namespace
            out.append((ns or "*", hostname))
        return out

    def sni_names(self) -> list[str]:
        """Server hosts for the filter chain's SNI match; empty when `*` is among them."""
        hostnames = [h for _, h in self.hosts()]
        return [] if "*" in hostnames else list(dict.fromkeys(hostnames))


@dataclass(frozen=True)
class GatewayPort:
    """The servers served on one Gateway port; `tls` if they terminate TLS (HTTPS)."""

    number: int
    tls: bool
    servers: tuple[GatewayServer, ...]


def _servable(s: GatewayServer) -> bool:
    protocol = s.server.port.protocol.upper()
    if protocol in PLAIN_PROTOCOLS:
        return True
    tls = s.server.tls
    return (
        protocol == "HTTPS"
        and tls is not None
        and tls.mode in TERMINATED_TLS_MODES
        and tls.server_certificate is not None
        and tls.private_key is not None
    )


def _servers(snapshot: MeshSnapshot) -> Iterable[GatewayServer]:
    for item in snapshot.gateways:
        gw = item.resource
        base_dir = posixpath.dirname(item.source.file) if posixpath.isabs(item.source.file) else ""
        for server in gw.spec.servers:
            yield GatewayServer(
                gateway=f"{gw.metadata.namespace}/{gw.metadata.name}",
                namespace=gw.metadata.namespace,
                name=gw.metadata.name,
                server=server,
                base_dir=base_dir,
            )


def gateway_port_plans(snapshot: MeshSnapshot) -> list[GatewayPort]:
    """Every servable port: plain-text ports first, then HTTPS ports, each in first-seen order.

    A port's kind is that of its first servable server; servers of the other kind on the
    same port are left out (Istio reports such a port as conflicting).
    """
    by_port: dict[int, list[GatewayServer]] = {}
    for s in _servers(snapshot):
        if not _servable(s):
            continue
        on_port = by_port.setdefault(s.port, [])
        if not on_port or on_port[0].tls == s.tls:
            on_port.append(s)
    plans = [GatewayPort(port, servers[0].tls, tuple(servers)) for port, servers in by_port.items()]
    return [p for p in plans if not p.tls] + [p for p in plans if p.tls]


def gateway_ports(snapshot: MeshSnapshot) -> list[int]:
    """Every served Gateway port: plain-text (HTTP) ports first, then HTTPS ports."""
    return [p.number for p in gateway_port_plans(snapshot)]


def host_matches(a: str, b: str) -> bool:
    """Istio's host.Name.Matches: either name, with its wildcards, covers the other."""
    if a == "*" or b == "*" or a == b:
        return True
    wa, wb = a.startswith("*."), b.startswith("*.")
    if wa and wb:
        return a[1:].endswith(b[1:]) or b[1:].endswith(a[1:])
    if wa:
        return b.endswith(a[1:])
    if wb:
        return a.endswith(b[1:])
    return False


def _more_specific(a: str, b: str) -> str:
    """Of two matching names, the one the other covers (the intersection of the two)."""
    if a == "*":
        return b
    if b == "*":
        return a
    if not a.startswith("*."):
        return a
    if not b.startswith("*."):
        return b
    return a if len(a) >= len(b) else b


def _domains(s: GatewayServer, vs: VirtualService) -> list[str]:
    """Virtual host names where this VirtualService's hosts meet this server's hosts."""
    out: list[str] = []
    for ns, server_host in s.hosts():
        if ns not in ("*", vs.metadata.namespace):
            continue
        for vs_host in vs.spec.hosts:
            if host_matches(server_host, vs_host):
                out.append(_more_specific(server_host, vs_host))
    return list(dict.fromkeys(out))


class _TableBuilder:
    """Virtual hosts by domain.

    A VirtualService adds its routes to a domain once per Gateway it is bound through: two
    Gateways sharing a port each contribute the routes translated for them (per-match
    `gateways` may differ), in order, as in Istio.
    """

    def __init__(self, snapshot: MeshSnapshot, port: int) -> None:
        self.snapshot = snapshot
        self.port = port
        self.vhosts: dict[str, rc.VirtualHost] = {}
        self._added: set[tuple[int, str, str]] = set()
        self._routes: dict[tuple[int, str], list[rc.Route]] = {}

    def _vhost(self, domain: str) -> rc.VirtualHost:
        vhost = self.vhosts.get(domain)
        if vhost is None:
            vhost = self.vhosts[domain] = rc.VirtualHost(
                name=f"{domain}:{self.port}", domains=[domain]
            )
        return vhost

    def _vs_routes(self, index: int, vs: VirtualService, gateway: str) -> list[rc.Route]:
        key = (index, gateway)
        found = self._routes.get(key)
        if found is None:
            ctx = RouteContext(self.snapshot, vs.metadata.namespace, None, gateway=gateway)
            found = self._routes[key] = vs_routes(ctx, vs)
        return found

    def add_server(self, s: GatewayServer) -> None:
        touched: list[rc.VirtualHost] = []
        items = self.snapshot.virtual_services
        for index in self.snapshot.routing.bound_to(s.gateway):
            vs = items[index].resource
            for domain in _domains(s, vs):
                vhost = self._vhost(domain)
                touched.append(vhost)
                if (index, domain, s.gateway) not in self._added:
                    self._added.add((index, domain, s.gateway))
                    vhost.routes.extend(self._vs_routes(index, vs, s.gateway))
        if s.https_redirect:
            touched += [self._vhost(hostname) for _, hostname in s.hosts()]
            for vhost in touched:
                vhost.require_tls = rc.VirtualHost.ALL

    def table(self, name: str) -> route_pb2.RouteConfiguration:
        config = route_pb2.RouteConfiguration(
            name=name, validate_clusters=wrappers_pb2.BoolValue(value=False)
        )
        config.virtual_hosts.extend(self.vhosts[h] for h in _ordered(self.vhosts))
        return config


def tls_chains(port: GatewayPort) -> list[tuple[GatewayServer, list[str]]]:
    """The servers of an HTTPS port that get a filter chain, with their SNI names.

    An SNI name (or the default, `*`) goes to the first server that lists it. Envoy
    rejects two chains with the same match, so a server whose names were all claimed by
    earlier servers gets no chain (Istio reports such servers as duplicates).
    """
    out: list[tuple[GatewayServer, list[str]]] = []
    claimed: set[str] = set()
    default_taken = False
    for s in port.servers:
        sni = s.sni_names()
        if not sni:
            if default_taken:
                continue
            default_taken = True
        else:
            sni = [n for n in sni if n not in claimed]
            if not sni:
                continue
            claimed.update(sni)
        out.append((s, sni))
    return out


def route_tables(snapshot: MeshSnapshot, port: GatewayPort) -> list[route_pb2.RouteConfiguration]:
    """The route tables one Gateway port's listener names (see the module docstring)."""
    if not port.tls:
        builder = _TableBuilder(snapshot, port.number)
        for s in port.servers:
            builder.add_server(s)
        return [builder.table(names.gateway_route(port.number))]
    tables: dict[str, route_pb2.RouteConfiguration] = {}
    for s, _ in tls_chains(port):
        builder = _TableBuilder(snapshot, port.number)
        builder.add_server(s)
        tables.setdefault(s.route_name, builder.table(s.route_name))
    return list(tables.values())


def gateway_routes(snapshot: MeshSnapshot, port: int) -> route_pb2.RouteConfiguration:
    """The merged table of a plain-text port (`http.PORT`), empty if none is served there."""
    for plan in gateway_port_plans(snapshot):
        if plan.number == port and not plan.tls:
            return route_tables(snapshot, plan)[0]
    return route_tables(snapshot, GatewayPort(port, False, ()))[0]


def _ordered(hosts: Iterable[str]) -> list[str]:
    return sorted(hosts, key=lambda h: (h == "*", h))
