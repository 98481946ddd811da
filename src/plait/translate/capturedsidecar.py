"""A captured sidecar's own resources (Istio's REDIRECT mode), as the Translator makes them.

virtualOutbound with its per-service listeners (`capturedout`: the services the proxy's
scope reaches, with their VirtualService `tcp`/`tls` routes, and the headless pods it
reaches), virtualInbound for the app's port (`capturedin`), and their original-destination
clusters (`captured`). The HTTP chains are the explicit sidecar's, with the same Telemetry
API choices (access logs, tracing, metrics per side). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from plait.model.peerauth import PeerAuthentications, inbound_mode
from plait.model.proxy import Proxy
from plait.model.registry import Protocol
from plait.model.scope import Scope
from plait.model.snapshot import MeshSnapshot
from plait.model.telemetry import Side
from plait.translate import (
    accesslog,
    captured,
    capturedin,
    capturedout,
    clusters,
    inbound,
    listeners,
    metrics,
    names,
    peer,
    proxyown,
    tcpmetrics,
    tcproutes,
    telemetryapi,
    tracing,
)
from plait.translate.appprotocol import AppProtocols
from plait.translate.authfilters import tcp_security_filters
from plait.translate.headless import PodAddress
from plait.translate.ratelimit import limits_for
from plait.translate.resource import Resource


@dataclass(frozen=True)
class CapturedInputs:
    """What a captured sidecar's own resources are made of (the Translator's, per snapshot)."""

    snapshot: MeshSnapshot
    proxy: Proxy
    scope: Scope | None
    cluster_ips: Mapping[str, str]  # by hostname
    pods: list[PodAddress]  # the headless services' pods its scope reaches (`headless`)
    peer_auth: PeerAuthentications
    app_protocols: AppProtocols


def captured_own(inputs: CapturedInputs) -> list[Resource]:
    """A captured sidecar's resources other than its outbound route table: its security
    and collector clusters (`proxyown.base`), virtualOutbound with its per-service
    listeners, virtualInbound for the app's port, and their original-destination
    clusters; the HTTP chains are the explicit sidecar's (`capturedout`, `capturedin`),
    with the same Telemetry API choices (access logs, tracing, metrics per side)."""
    snapshot, proxy, scope = inputs.snapshot, inputs.proxy, inputs.scope
    base, guards, tel = proxyown.base(snapshot, proxy)
    mesh = snapshot.mesh
    traced = telemetryapi.tracing_for(mesh, tel, proxy, Side.CLIENT)
    explicit = listeners.outbound_listener(  # its HCM is the captured HTTP chains'
        "0.0.0.0",
        capturedout.CAPTURE_PORT,
        telemetryapi.access_log_for(mesh, tel, proxy, Side.CLIENT, accesslog.Direction.OUTBOUND),
        peer.source_workload(proxy),
    )
    metrics.count_outbound(explicit, proxy, telemetryapi.skipped_metrics(tel, Side.CLIENT))
    hcm = hcm_pb2.HttpConnectionManager()
    explicit.filter_chains[0].filters[0].typed_config.Unpack(hcm)
    services = [s for h, s in snapshot.services.items() if scope is None or h in scope.clusters]
    addresses = [
        a if a.is_http else _l4_routes(snapshot, a, proxy)
        for a in capturedout.service_addresses(services, inputs.cluster_ips)
        if scope is None or a.port in scope.clusters.get(a.host, ())
    ]
    addresses += [
        capturedout.ServiceAddress(
            p.host,
            p.address,
            p.port,
            p.protocol,
            own_cluster=names.original_dst_cluster(p.host, p.service_port),
            route=names.headless_route(p.host, p.service_port) if p.protocol.is_http else "",
        )
        for p in inputs.pods
    ]
    policy = scope.outbound_mode if scope is not None else snapshot.mesh.outbound_mode
    out = capturedout.OutboundOptions(addresses, capturedout.captured_hcm(hcm), policy)
    lds = [tracing.apply(lis, traced) for lis in capturedout.outbound_listeners(out)]
    source = metrics.source_tags(proxy)
    for lis in lds[1:]:  # not virtualOutbound: its only chain is the passthrough
        for chain in lis.filter_chains:
            tcpmetrics.count_tcp_chain(chain, source)
    own: list[Resource] = []  # the outbound table is added by `Translator._config_for`
    cds = [
        captured.passthrough_cluster(),
        captured.inbound_passthrough_cluster(),
        captured.blackhole_cluster(),
    ]
    if proxy.app_port is not None:
        protocol = inputs.app_protocols.app_protocol(proxy.namespace, proxy.labels)
        cds.append(clusters.inbound_cluster("127.0.0.1", proxy.app_port, protocol))
        limits = limits_for(snapshot, proxy)
        table = inbound.inbound_routes(proxy.app_port, proxy.id, limits)
        mode = inbound_mode(inputs.peer_auth, snapshot, proxy.namespace, proxy.labels)
        http = listeners.inbound_listener(
            "0.0.0.0",
            capturedin.CAPTURE_PORT,
            table.name,
            mode,
            guards,
            telemetryapi.access_log_for(mesh, tel, proxy, Side.SERVER, accesslog.Direction.INBOUND),
        )
        service = metrics.serving_service(snapshot, proxy)
        server_skip = telemetryapi.skipped_metrics(tel, Side.SERVER)
        metrics.count_inbound(http, proxy, service, names.INBOUND_MTLS_CHAIN, server_skip)
        port = capturedin.AppPort(proxy.app_port, _inbound_protocol(snapshot, proxy, protocol))
        tcp_guards = tcp_security_filters(snapshot, proxy)
        inbound_lis = capturedin.virtual_inbound(
            capturedin.InboundOptions([port], http, mode, tcp_filters=tcp_guards)
        )
        for chain in inbound_lis.filter_chains:  # the app port's TCP chains
            if chain.name.startswith(f"{proxy.app_port}_"):
                mtls = chain.filter_chain_match.transport_protocol == "tls"
                tcpmetrics.count_tcp_chain(chain, metrics.destination_tags(proxy, service, mtls))
        server_traced = telemetryapi.tracing_for(mesh, tel, proxy, Side.SERVER)
        lds.append(tracing.apply(inbound_lis, server_traced))
        if port.is_http:
            own.append(Resource.pack(table.name, table))
    return [
        *base,
        *own,
        *(Resource.pack(c.name, c) for c in cds),
        *(Resource.pack(lis.name, lis) for lis in lds),
    ]


def _l4_routes(
    snapshot: MeshSnapshot, address: capturedout.ServiceAddress, proxy: Proxy
) -> capturedout.ServiceAddress:
    """A TCP/TLS service address with its VirtualService `tcp` (and, for TLS and
    HTTPS ports, `tls`) routes."""
    args = (snapshot, address.host, address.port, proxy)
    sni: tcproutes.SniRoutes = ()
    if address.protocol in (Protocol.TLS, Protocol.HTTPS):
        sni = tcproutes.tls_routes(*args)
    return replace(address, routes=tcproutes.tcp_route(*args), sni_routes=sni)


def _inbound_protocol(snapshot: MeshSnapshot, proxy: Proxy, http: Protocol) -> Protocol:
    """The app port's protocol: TCP when every port of its Services is opaque TCP."""
    ports = [
        port.protocol
        for svc in snapshot.service_selectors.selecting(proxy.namespace, proxy.labels)
        for port in svc.ports
    ]
    if ports and not any(p.is_http or p is Protocol.UNKNOWN for p in ports):
        return Protocol.TCP
    return http
