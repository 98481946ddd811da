"""Listeners: the sidecar's outbound HTTP proxy and inbound port, the gateway's ports.

Local mode has no traffic capture: an app reaches its sidecar because HTTP_PROXY points
at the outbound listener (absolute-form requests; Envoy takes :authority from the URL),
and other sidecars reach it at its inbound listener.

The inbound listener follows the PeerAuthentication mode in force (`model.peerauth`),
with istiod's filter chains for an HTTP port:

- STRICT: `tls_inspector` and one chain matching `transport_protocol: tls` that
  terminates mesh mTLS; a plain-text connection matches no chain and Envoy closes it
  without a byte of HTTP;
- PERMISSIVE: `tls_inspector`, the same mTLS chain, and a chain for `raw_buffer`;
- DISABLE: one plain-text chain, no inspector.

Every chain names the same route table over RDS; they differ in their transport socket
and in `x-forwarded-client-cert` handling (`mtls.set_inbound_xfcc`).

Every HCM, sidecar and gateway alike, takes the proxy's access log if it has one
(`accesslog.for_proxy`, built by the caller for the listener's direction).
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.accesslog.v3.accesslog_pb2 import AccessLog
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from plait.api.security import MtlsMode
from plait.translate import accesslog, mtls, names, peer
from plait.translate.httpfilters import http_filters, upgrade_configs

HCM = hcm_pb2.HttpConnectionManager
HCM_FILTER = "envoy.filters.network.http_connection_manager"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
TLS_TRANSPORT = "tls"  # the transport_protocol tls_inspector reports for TLS
RAW_TRANSPORT = "raw_buffer"  # ... and for anything else

SecurityFilters = Sequence[hcm_pb2.HttpFilter]


def _rds(route_name: str) -> hcm_pb2.Rds:
    return hcm_pb2.Rds(
        route_config_name=route_name,
        config_source=config_source_pb2.ConfigSource(
            ads=config_source_pb2.AggregatedConfigSource(),
            resource_api_version=config_source_pb2.V3,
        ),
    )


def tls_inspector() -> listener_components_pb2.ListenerFilter:
    """Reads the ClientHello (SNI, ALPN) so filter chains can match on them."""
    inspector = listener_components_pb2.ListenerFilter(name=TLS_INSPECTOR)
    inspector.typed_config.Pack(tls_inspector_pb2.TlsInspector())
    return inspector


def hcm_chain(
    hcm: hcm_pb2.HttpConnectionManager, name: str = ""
) -> listener_components_pb2.FilterChain:
    chain = listener_components_pb2.FilterChain(name=name)
    chain.filters.add(name=HCM_FILTER).typed_config.Pack(hcm)
    return chain


def _socket_address(address: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=address, port_value=port)
    )


def _listener(
    name: str, address: str, port: int, hcm: hcm_pb2.HttpConnectionManager
) -> listener_pb2.Listener:
    return listener_pb2.Listener(
        name=name,
        address=_socket_address(address, port),
        filter_chains=[hcm_chain(hcm)],
        traffic_direction=base_pb2.INBOUND
        if name != names.OUTBOUND_LISTENER
        else base_pb2.OUTBOUND,
    )


def outbound_listener(
    address: str,
    port: int,
    access_log: AccessLog | None = None,
    source_workload: str | None = None,
) -> listener_pb2.Listener:
    """The app's HTTP proxy; `source_workload` (`peer.source_workload`) is stamped on
    every request so the callee can name its caller."""
    hcm = HCM(
        stat_prefix="outbound_http_proxy",
        codec_type=HCM.AUTO,
        rds=_rds(names.OUTBOUND_ROUTE),
        http_filters=http_filters(outbound=True),
        upgrade_configs=upgrade_configs(),
    )
    hcm.http_protocol_options.allow_absolute_url.value = True
    mtls.set_outbound_xfcc(hcm)
    accesslog.attach(hcm, access_log)
    if source_workload is not None:
        peer.stamp(hcm, source_workload)
    return _listener(names.OUTBOUND_LISTENER, address, port, hcm)


def _inbound_hcm(
    port: int,
    route_name: str,
    security_filters: SecurityFilters,
    access_log: AccessLog | None,
    *,
    mtls_chain: bool,
) -> hcm_pb2.HttpConnectionManager:
    hcm = HCM(
        stat_prefix=f"inbound_{port}",
        codec_type=HCM.AUTO,
        rds=_rds(route_name),
        http_filters=http_filters(inbound=True, security=security_filters),
        upgrade_configs=upgrade_configs(),
    )
    hcm.normalize_path.value = True  # Istio's default: AuthorizationPolicy paths see /a/../b as /b
    mtls.set_inbound_xfcc(hcm, mtls=mtls_chain)
    return accesslog.attach(hcm, access_log)


def inbound_listener(
    address: str,
    port: int,
    route_name: str,
    mode: MtlsMode = MtlsMode.PERMISSIVE,
    security_filters: SecurityFilters = (),
    access_log: AccessLog | None = None,
) -> listener_pb2.Listener:
    """The sidecar's inbound port, in the PeerAuthentication `mode` (see the module
    docstring). `security_filters` (jwt_authn, RBAC) go first in every chain's HCM.

    Its route table comes over RDS, not inline: a listener change reaches only new
    connections (Envoy drains the old ones), while an RDS update applies at once to
    connections already open, so a rate-limit edit binds every caller."""
    if mode is MtlsMode.UNSET:
        mode = MtlsMode.PERMISSIVE  # Istio's default
    listener = listener_pb2.Listener(
        name=names.INBOUND_LISTENER,
        address=_socket_address(address, port),
        traffic_direction=base_pb2.INBOUND,
    )
    if mode in (MtlsMode.STRICT, MtlsMode.PERMISSIVE):
        listener.listener_filters.append(tls_inspector())
        chain = hcm_chain(
            _inbound_hcm(port, route_name, security_filters, access_log, mtls_chain=True),
            names.INBOUND_MTLS_CHAIN,
        )
        chain.filter_chain_match.transport_protocol = TLS_TRANSPORT
        chain.transport_socket.CopyFrom(mtls.downstream_socket())
        listener.filter_chains.append(chain)
    if mode in (MtlsMode.PERMISSIVE, MtlsMode.DISABLE):
        chain = hcm_chain(
            _inbound_hcm(port, route_name, security_filters, access_log, mtls_chain=False),
            names.INBOUND_PLAINTEXT_CHAIN,
        )
        if mode is MtlsMode.PERMISSIVE:
            chain.filter_chain_match.transport_protocol = RAW_TRANSPORT
        listener.filter_chains.append(chain)
    return listener


def gateway_hcm(
    server_port: int,
    route_name: str,
    security_filters: SecurityFilters = (),
    access_log: AccessLog | None = None,
) -> hcm_pb2.HttpConnectionManager:
    """The gateway's HTTP connection manager for one server port (or HTTPS server);
    `security_filters` (jwt_authn, RBAC for policies selecting the gateway) go first."""
    hcm = HCM(
        stat_prefix=f"outbound_{server_port}",
        codec_type=HCM.AUTO,
        rds=_rds(route_name),
        http_filters=http_filters(security=security_filters),
        upgrade_configs=upgrade_configs(),
        strip_any_host_port=True,
    )
    hcm.use_remote_address.value = True
    hcm.normalize_path.value = True
    mtls.set_gateway_xfcc(hcm)
    return accesslog.attach(hcm, access_log)


def gateway_listener(
    server_port: int,
    address: str,
    host_port: int,
    security_filters: SecurityFilters = (),
    access_log: AccessLog | None = None,
) -> listener_pb2.Listener:
    """A plain-text Gateway port: one chain, the port's merged table `http.PORT`.

    HTTPS ports are built in `gatewaylisteners`.
    """
    hcm = gateway_hcm(server_port, names.gateway_route(server_port), security_filters, access_log)
    return _listener(names.gateway_listener(server_port), address, host_port, hcm)
