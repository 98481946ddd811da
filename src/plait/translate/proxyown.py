"""A proxy's own resources: what the Translator makes per gateway or explicit sidecar.

Its security and telemetry collector clusters, and its listeners with their Telemetry
API choices (access logs, tracing, metrics per side); an explicit sidecar's inbound
cluster and route table too. Everything shared (outbound clusters, endpoint sets, route
tables) is the Translator's; a captured sidecar's own resources are `capturedsidecar`'s.
Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from plait.model.peerauth import PeerAuthentications, inbound_mode
from plait.model.proxy import Proxy
from plait.model.snapshot import MeshSnapshot
from plait.model.telemetry import ProxyTelemetry, Side, telemetry_for
from plait.translate import (
    accesslog,
    clusters,
    gateway,
    gatewaylisteners,
    inbound,
    listeners,
    metrics,
    names,
    peer,
    telemetryapi,
    tracing,
)
from plait.translate.appprotocol import AppProtocols
from plait.translate.authfilters import security_clusters, security_filters
from plait.translate.listeners import SecurityFilters
from plait.translate.ratelimit import limits_for
from plait.translate.resource import Resource

GatewayRoutes = Mapping[int, tuple[gateway.GatewayPort, list[Resource]]]
"""Per served Gateway port: its servers and the route tables its listener names."""


def base(
    snapshot: MeshSnapshot, proxy: Proxy
) -> tuple[list[Resource], SecurityFilters, ProxyTelemetry]:
    """What every proxy has of its own: its security and collector clusters; with the
    authn/authz filters for what it serves and its telemetry."""
    own: list[Resource] = [Resource.pack(c.name, c) for c in security_clusters(snapshot, proxy)]
    guards = security_filters(snapshot, proxy)  # authn/authz for what it serves
    mesh, tel = snapshot.mesh, telemetry_for(snapshot, proxy)
    own += [Resource.pack(c.name, c) for c in telemetryapi.collector_clusters(mesh, tel)]
    return own, guards, tel


def gateway_own(snapshot: MeshSnapshot, proxy: Proxy, routes: GatewayRoutes) -> list[Resource]:
    """A gateway's resources: a listener per served port with a host port, and the route
    tables it names."""
    own, guards, tel = base(snapshot, proxy)
    mesh = snapshot.mesh
    traced = telemetryapi.tracing_for(mesh, tel, proxy, Side.CLIENT)
    client_skip = telemetryapi.skipped_metrics(tel, Side.CLIENT)
    gateway_log = telemetryapi.access_log_for(
        mesh, tel, proxy, Side.CLIENT, accesslog.Direction.GATEWAY
    )
    for number, (port, tables) in routes.items():
        host_port = proxy.host_port_for_gateway_port(number)
        if host_port is None:
            continue  # no host port was given for this server port (see plait status)
        lis = gatewaylisteners.port_listener(port, proxy.address, host_port, guards, gateway_log)
        tracing.apply(lis, traced)
        metrics.count_outbound(lis, proxy, client_skip)
        own += [Resource.pack(lis.name, lis), *tables]
    return own


def sidecar_own(
    snapshot: MeshSnapshot,
    proxy: Proxy,
    peer_auth: PeerAuthentications,
    app_protocols: AppProtocols,
) -> list[Resource]:
    """An explicit sidecar's resources other than its outbound route table."""
    own, guards, tel = base(snapshot, proxy)
    mesh = snapshot.mesh
    traced = telemetryapi.tracing_for(mesh, tel, proxy, Side.CLIENT)
    client_skip = telemetryapi.skipped_metrics(tel, Side.CLIENT)
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
        protocol = app_protocols.app_protocol(proxy.namespace, proxy.labels)
        app = clusters.inbound_cluster(proxy.address, proxy.app_port, protocol)
        limits = limits_for(snapshot, proxy)
        table = inbound.inbound_routes(proxy.app_port, proxy.id, limits)
        mode = inbound_mode(peer_auth, snapshot, proxy.namespace, proxy.labels)
        lis = listeners.inbound_listener(
            proxy.address,
            proxy.inbound_port,
            table.name,
            mode,
            guards,
            telemetryapi.access_log_for(mesh, tel, proxy, Side.SERVER, accesslog.Direction.INBOUND),
        )
        tracing.apply(lis, telemetryapi.tracing_for(mesh, tel, proxy, Side.SERVER))
        service = metrics.serving_service(snapshot, proxy)
        server_skip = telemetryapi.skipped_metrics(tel, Side.SERVER)
        metrics.count_inbound(lis, proxy, service, names.INBOUND_MTLS_CHAIN, server_skip)
        own += [
            Resource.pack(app.name, app),
            Resource.pack(lis.name, lis),
            Resource.pack(table.name, table),
        ]
    return own
