"""The outbound side of a captured sidecar, laid out as istiod does for REDIRECT mode.

    virtualOutbound 0.0.0.0:15001 (original_dst, use_original_dst)
      │ hands each connection to the listener of its original destination, else keeps it:
      │   default chain → PassthroughCluster (ALLOW_ANY) | BlackHoleCluster (REGISTRY_ONLY)
      ├─► CLUSTERIP_PORT  (bind_to_port false) a TCP/TLS service port → tcp_proxy → its cluster
      │   (and POD_IP_PORT for a headless Service's pod → its ORIGINAL_DST cluster)
      └─► 0.0.0.0_PORT    (bind_to_port false) HTTP service ports on PORT:
            chain "http" for their cluster IPs → the sidecar's HCM (routes over RDS);
            a headless Service's pod: a chain for its /32 → the HCM reading the host's
            own table (`headless`);
            undeclared ports: http_inspector picks HTTP or, per cluster IP, tcp_proxy;
            default chain → passthrough / black hole, as above.

Envoy prefers the most specific listener address, so a TCP service's own IP:PORT wins
over 0.0.0.0_PORT. Declared ports (TCP, or HTTP by `appProtocol`/port name) carry no
inspector at all; see `captured` for the sniffing rules. Pure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from plait.model.meshsettings import OutboundMode
from plait.model.registry import Protocol, Service
from plait.translate import captured, names
from plait.translate.listeners import hcm_chain, tls_inspector

CAPTURE_PORT = 15001


@dataclass(frozen=True)
class ServiceAddress:
    """One service port at its cluster IP, as a captured app reaches it."""

    host: str
    cluster_ip: str
    port: int
    protocol: Protocol
    routes: tuple[tuple[str, int], ...] = ()  # a `tcp` route's weighted clusters (`tcproutes`)
    sni_routes: tuple[tuple[tuple[str, ...], tuple[tuple[str, int], ...]], ...] = ()  # `tls`
    # a headless Service's pod (`headless`): `cluster_ip` is the pod's IP, `port` its
    # endpoint's; the cluster, and for HTTP the route table, are its own
    own_cluster: str = ""
    route: str = ""

    @property
    def cluster(self) -> str:
        return self.own_cluster or names.outbound_cluster(self.host, self.port)

    @property
    def sniffed(self) -> bool:
        return self.protocol is Protocol.UNKNOWN

    @property
    def is_http(self) -> bool:
        return self.protocol in (Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC, Protocol.UNKNOWN)


def service_addresses(
    services: Iterable[Service], cluster_ips: Mapping[str, str]
) -> list[ServiceAddress]:
    """Every TCP-borne port of the services that have a cluster IP (by hostname).

    UDP ports are left out: capture redirects TCP only.
    """
    out = []
    for svc in services:
        ip = cluster_ips.get(svc.hostname)
        if ip is None:
            continue
        out += [
            ServiceAddress(svc.hostname, ip, port.port, port.protocol)
            for port in svc.ports
            if port.protocol is not Protocol.UDP
        ]
    return out


@dataclass(frozen=True)
class OutboundOptions:
    """The services a captured sidecar reaches, the mesh's outbound mode, and the HCM
    its HTTP chains use (`captured_hcm` of the sidecar's usual outbound HCM)."""

    services: Sequence[ServiceAddress]
    hcm: hcm_pb2.HttpConnectionManager
    mode: OutboundMode = OutboundMode.ALLOW_ANY
    capture_port: int = CAPTURE_PORT


def captured_hcm(explicit: hcm_pb2.HttpConnectionManager) -> hcm_pb2.HttpConnectionManager:
    """The explicit-proxy HCM for captured connections: origin-form requests, not proxy ones."""
    hcm = hcm_pb2.HttpConnectionManager()
    hcm.CopyFrom(explicit)
    hcm.stat_prefix = "outbound_captured"
    hcm.http_protocol_options.ClearField("allow_absolute_url")
    return hcm


def _address(ip: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=ip, port_value=port)
    )


def _fallback(mode: OutboundMode, stat_prefix: str) -> lc.FilterChain:
    if mode is OutboundMode.REGISTRY_ONLY:
        return captured.tcp_chain(captured.BLACKHOLE_CLUSTER, stat_prefix, "BlackHoleFilterChain")
    return captured.tcp_chain(captured.PASSTHROUGH_CLUSTER, stat_prefix, "PassthroughFilterChain")


def virtual_outbound(options: OutboundOptions) -> listener_pb2.Listener:
    """0.0.0.0:15001: where the capture rules redirect every outbound TCP connection."""
    listener = listener_pb2.Listener(
        name=names.OUTBOUND_LISTENER,
        address=_address("0.0.0.0", options.capture_port),
        listener_filters=[captured.original_dst()],
        traffic_direction=base_pb2.OUTBOUND,
    )
    listener.use_original_dst.value = True
    listener.default_filter_chain.CopyFrom(_fallback(options.mode, captured.PASSTHROUGH_CLUSTER))
    return listener


def _virtual(name: str, ip: str, port: int) -> listener_pb2.Listener:
    listener = listener_pb2.Listener(
        name=name, address=_address(ip, port), traffic_direction=base_pb2.OUTBOUND
    )
    listener.bind_to_port.value = False
    return listener


def _route_chain(
    routes: tuple[tuple[str, int], ...], fallback: str, name: str = ""
) -> lc.FilterChain:
    if len(routes) > 1:
        return captured.weighted_tcp_chain(routes, fallback, name)
    return captured.tcp_chain(routes[0][0] if routes else fallback, fallback, name)


def _tcp_listener(svc: ServiceAddress) -> listener_pb2.Listener:
    """The service's own cluster, or its `tcp` route: one cluster or weighted ones; for
    `tls` routes, a chain per rule matched by SNI (tls_inspector reads it), then the
    service's own cluster for any other name."""
    listener = _virtual(f"{svc.cluster_ip}_{svc.port}", svc.cluster_ip, svc.port)
    if svc.sni_routes:
        listener.listener_filters.append(tls_inspector())
        for i, (names_, routes) in enumerate(svc.sni_routes):
            chain = _route_chain(routes, svc.cluster, f"tls_{i}")
            chain.filter_chain_match.server_names.extend(names_)
            listener.filter_chains.append(chain)
    listener.filter_chains.append(_route_chain(svc.routes, svc.cluster))
    return listener


def _cidrs(services: Sequence[ServiceAddress]) -> list[address_pb2.CidrRange]:
    ranges = []
    for ip in sorted({svc.cluster_ip for svc in services}):
        cidr = address_pb2.CidrRange(address_prefix=ip)
        cidr.prefix_len.value = 32
        ranges.append(cidr)
    return ranges


def _routed_hcm(hcm: hcm_pb2.HttpConnectionManager, route: str) -> hcm_pb2.HttpConnectionManager:
    own = hcm_pb2.HttpConnectionManager()
    own.CopyFrom(hcm)
    own.rds.route_config_name = route
    return own


def _http_listener(
    port: int, services: Sequence[ServiceAddress], options: OutboundOptions
) -> listener_pb2.Listener:
    """Cluster IPs share chains reading the outbound table; a headless Service's pod has
    a chain of its own, reading its host's table (`headless`)."""
    listener = _virtual(f"0.0.0.0_{port}", "0.0.0.0", port)
    shared = [svc for svc in services if not svc.route]
    sniffed = [svc for svc in services if svc.sniffed]
    if sniffed:
        listener.listener_filters.append(captured.http_inspector([port]))
        listener.listener_filters_timeout.CopyFrom(captured.DETECTION_TIMEOUT)
        listener.continue_on_listener_filters_timeout = True
    if shared:
        http = hcm_chain(options.hcm, f"{port}_http")
        http.filter_chain_match.prefix_ranges.extend(_cidrs(shared))
        shared_sniffed = [s for s in shared if s.sniffed]
        if shared_sniffed:
            if len(shared_sniffed) < len(shared):  # declared HTTP IPs need no ALPN match
                declared = hcm_chain(options.hcm, f"{port}_http_declared")
                declared.filter_chain_match.prefix_ranges.extend(
                    _cidrs([s for s in shared if not s.sniffed])
                )
                listener.filter_chains.append(declared)
                http.filter_chain_match.ClearField("prefix_ranges")
                http.filter_chain_match.prefix_ranges.extend(_cidrs(shared_sniffed))
            http.filter_chain_match.application_protocols.extend(captured.SNIFFED_HTTP)
        listener.filter_chains.append(http)
    for svc in services:
        if not svc.route:
            continue
        chain = hcm_chain(_routed_hcm(options.hcm, svc.route), f"{port}_http_{svc.cluster_ip}")
        chain.filter_chain_match.prefix_ranges.extend(_cidrs([svc]))
        if svc.sniffed:
            chain.filter_chain_match.application_protocols.extend(captured.SNIFFED_HTTP)
        listener.filter_chains.append(chain)
    for svc in sniffed:  # not HTTP after all: opaque TCP to the service
        chain = captured.tcp_chain(svc.cluster, svc.cluster, f"{port}_tcp_{svc.cluster_ip}")
        chain.filter_chain_match.prefix_ranges.extend(_cidrs([svc]))
        listener.filter_chains.append(chain)
    listener.default_filter_chain.CopyFrom(_fallback(options.mode, f"0.0.0.0_{port}"))
    return listener


def outbound_listeners(options: OutboundOptions) -> list[listener_pb2.Listener]:
    """virtualOutbound first, then one listener per TCP service address and per HTTP port."""
    listeners = [virtual_outbound(options)]
    http_by_port: dict[int, list[ServiceAddress]] = defaultdict(list)
    for svc in sorted(options.services, key=lambda s: (s.port, s.cluster_ip)):
        if svc.is_http:
            http_by_port[svc.port].append(svc)
        else:
            listeners.append(_tcp_listener(svc))
    for port in sorted(http_by_port):
        listeners.append(_http_listener(port, http_by_port[port], options))
    return listeners
