"""The ingress gateway's listeners: one per Gateway port, on the host port mapped to it.

A plain-text port has one filter chain (`listeners.gateway_listener`). An HTTPS port that
terminates TLS has one filter chain per server, each with its own certificate
(a DownstreamTlsContext) and route table; the `tls_inspector` listener filter reads the
client's SNI and Envoy picks the chain whose `server_names` match it (exact names before
`*.suffix` wildcards). A server with host `*` has no `server_names`: it is the default
chain, used when no other matches or the client sends no SNI. Certificate files are read
by Envoy, not here: translation only names them.
"""

from __future__ import annotations

from envoy.config.accesslog.v3.accesslog_pb2 import AccessLog
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2

from plait.api.gateway import ServerTLSSettings
from plait.translate import names
from plait.translate.gateway import GatewayPort, GatewayServer, tls_chains
from plait.translate.listeners import (
    TLS_INSPECTOR,
    SecurityFilters,
    gateway_hcm,
    gateway_listener,
    hcm_chain,
    tls_inspector,
)

__all__ = ["TLS_INSPECTOR", "downstream_tls", "https_listener", "port_listener"]

TLS_TRANSPORT = "envoy.transport_sockets.tls"
ALPN = ("h2", "http/1.1")  # what Istio's gateway offers on HTTPS servers

_TLS_VERSIONS = {
    "TLS_AUTO": common_pb2.TlsParameters.TLS_AUTO,
    "TLSV1_0": common_pb2.TlsParameters.TLSv1_0,
    "TLSV1_1": common_pb2.TlsParameters.TLSv1_1,
    "TLSV1_2": common_pb2.TlsParameters.TLSv1_2,
    "TLSV1_3": common_pb2.TlsParameters.TLSv1_3,
}


def _file(s: GatewayServer, path: str) -> base_pb2.DataSource:
    return base_pb2.DataSource(filename=s.file(path))


def downstream_tls(s: GatewayServer) -> tls_pb2.DownstreamTlsContext:
    """A server's TLS settings (SIMPLE, MUTUAL, OPTIONAL_MUTUAL with certificate files)."""
    tls: ServerTLSSettings | None = s.server.tls
    assert tls is not None and tls.server_certificate and tls.private_key
    common = tls_pb2.CommonTlsContext(
        tls_certificates=[
            common_pb2.TlsCertificate(
                certificate_chain=_file(s, tls.server_certificate),
                private_key=_file(s, tls.private_key),
            )
        ],
        alpn_protocols=list(ALPN),
        tls_params=common_pb2.TlsParameters(
            tls_minimum_protocol_version=_TLS_VERSIONS[tls.min_protocol_version],
            tls_maximum_protocol_version=_TLS_VERSIONS[tls.max_protocol_version],
            cipher_suites=list(tls.cipher_suites),
        ),
    )
    context = tls_pb2.DownstreamTlsContext(common_tls_context=common)
    if tls.mode in ("MUTUAL", "OPTIONAL_MUTUAL") and tls.ca_certificates:
        validation = context.common_tls_context.validation_context
        validation.trusted_ca.CopyFrom(_file(s, tls.ca_certificates))
        context.require_client_certificate.value = tls.mode == "MUTUAL"
    return context


def _tls_chain(
    s: GatewayServer,
    sni: list[str],
    security_filters: SecurityFilters,
    access_log: AccessLog | None,
) -> listener_components_pb2.FilterChain:
    hcm = gateway_hcm(s.port, s.route_name, security_filters, access_log)
    chain = hcm_chain(hcm, s.route_name)
    chain.filter_chain_match.server_names.extend(sni)
    chain.transport_socket.name = TLS_TRANSPORT
    chain.transport_socket.typed_config.Pack(downstream_tls(s))
    return chain


def https_listener(
    port: GatewayPort,
    address: str,
    host_port: int,
    security_filters: SecurityFilters = (),
    access_log: AccessLog | None = None,
) -> listener_pb2.Listener:
    """One chain per server that `tls_chains` keeps, matched by SNI."""
    chains = [_tls_chain(s, sni, security_filters, access_log) for s, sni in tls_chains(port)]
    return listener_pb2.Listener(
        name=names.gateway_listener(port.number),
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=address, port_value=host_port)
        ),
        listener_filters=[tls_inspector()],
        filter_chains=chains,
        traffic_direction=base_pb2.INBOUND,
    )


def port_listener(
    port: GatewayPort,
    address: str,
    host_port: int,
    security_filters: SecurityFilters = (),
    access_log: AccessLog | None = None,
) -> listener_pb2.Listener:
    """The listener for one Gateway port, plain-text or HTTPS; `security_filters`
    (jwt_authn, RBAC) go first in every HCM, `access_log` (if any) is on every HCM."""
    if port.tls:
        return https_listener(port, address, host_port, security_filters, access_log)
    return gateway_listener(port.number, address, host_port, security_filters, access_log)
