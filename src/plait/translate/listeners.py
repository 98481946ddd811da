"""Listeners: the sidecar's outbound HTTP proxy and inbound port, the gateway's ports.

Local mode has no traffic capture: an app reaches its sidecar because HTTP_PROXY points
at the outbound listener (absolute-form requests; Envoy takes :authority from the URL),
and other sidecars reach it at its inbound listener.
"""

from __future__ import annotations

from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from plait.translate import names
from plait.translate.httpfilters import http_filters, upgrade_configs

HCM = hcm_pb2.HttpConnectionManager


def _rds(route_name: str) -> hcm_pb2.Rds:
    return hcm_pb2.Rds(
        route_config_name=route_name,
        config_source=config_source_pb2.ConfigSource(
            ads=config_source_pb2.AggregatedConfigSource(),
            resource_api_version=config_source_pb2.V3,
        ),
    )


def _listener(
    name: str, address: str, port: int, hcm: hcm_pb2.HttpConnectionManager
) -> listener_pb2.Listener:
    chain = listener_components_pb2.FilterChain()
    f = chain.filters.add(name="envoy.filters.network.http_connection_manager")
    f.typed_config.Pack(hcm)
    return listener_pb2.Listener(
        name=name,
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=address, port_value=port)
        ),
        filter_chains=[chain],
        traffic_direction=base_pb2.INBOUND
        if name != names.OUTBOUND_LISTENER
        else base_pb2.OUTBOUND,
    )


def outbound_listener(address: str, port: int) -> listener_pb2.Listener:
    hcm = HCM(
        stat_prefix="outbound_http_proxy",
        codec_type=HCM.AUTO,
        rds=_rds(names.OUTBOUND_ROUTE),
        http_filters=http_filters(outbound=True),
        upgrade_configs=upgrade_configs(),
    )
    hcm.http_protocol_options.allow_absolute_url.value = True
    return _listener(names.OUTBOUND_LISTENER, address, port, hcm)


def inbound_listener(address: str, port: int, route_name: str) -> listener_pb2.Listener:
    """The sidecar's inbound port. Its route table comes over RDS, not inline: a listener
    change reaches only new connections (Envoy drains the old ones), while an RDS update
    applies at once to connections already open, so a rate-limit edit binds every caller."""
    hcm = HCM(
        stat_prefix=f"inbound_{port}",
        codec_type=HCM.AUTO,
        rds=_rds(route_name),
        http_filters=http_filters(),
        upgrade_configs=upgrade_configs(),
    )
    return _listener(names.INBOUND_LISTENER, address, port, hcm)


def gateway_hcm(server_port: int, route_name: str) -> hcm_pb2.HttpConnectionManager:
    """The gateway's HTTP connection manager for one server port (or HTTPS server)."""
    hcm = HCM(
        stat_prefix=f"outbound_{server_port}",
        codec_type=HCM.AUTO,
        rds=_rds(route_name),
        http_filters=http_filters(),
        upgrade_configs=upgrade_configs(),
        strip_any_host_port=True,
    )
    hcm.use_remote_address.value = True
    return hcm


def gateway_listener(server_port: int, address: str, host_port: int) -> listener_pb2.Listener:
    """A plain-text Gateway port: one chain, the port's merged table `http.PORT`.

    HTTPS ports are built in `gatewaylisteners`.
    """
    hcm = gateway_hcm(server_port, names.gateway_route(server_port))
    return _listener(names.gateway_listener(server_port), address, host_port, hcm)
