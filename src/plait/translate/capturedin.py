"""The inbound side of a captured sidecar: istiod's virtualInbound for REDIRECT mode.

    virtualInbound 0.0.0.0:15006 (original_dst, tls_inspector, http_inspector on
    undeclared ports), one listener whose filter chains match the original destination
    port:
      HTTP port  → the sidecar's inbound HCM chains (mTLS / plain text per
                   PeerAuthentication, exactly those of `listeners.inbound_listener`);
      TCP port   → tcp_proxy to `inbound|PORT||`, behind the same mTLS / plain-text split;
      undeclared → HTTP chains for sniffed HTTP, else the TCP ones;
      any other port → InboundPassthroughCluster (original destination, from 127.0.0.6);
                   under STRICT only over mTLS, so nothing reaches the app in plain text.

Pure. The chains are copies of the explicit-mode inbound listener's, so the mTLS modes,
RBAC and JWT filters are one implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2

from plait.api.security import MtlsMode
from plait.model.labels import Labels
from plait.model.registry import Protocol, Service
from plait.translate import captured, mtls, names
from plait.translate.listeners import RAW_TRANSPORT, TLS_TRANSPORT, tls_inspector

CAPTURE_PORT = 15006


@dataclass(frozen=True)
class AppPort:
    """A port the app serves, with its declared protocol (UNKNOWN: sniffed)."""

    port: int
    protocol: Protocol

    @property
    def is_http(self) -> bool:
        return self.protocol in (Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC, Protocol.UNKNOWN)


def app_ports(services: Iterable[Service], namespace: str, labels: Labels) -> list[AppPort]:
    """The ports a workload serves for the services that select it: each port's numeric
    `targetPort` (or the port itself), with its protocol; a port two services declare
    differently is sniffed (UNKNOWN). Named target ports need the pod's container ports
    and are left to the caller; UDP is not captured."""
    found: dict[int, set[Protocol]] = {}
    for svc in services:
        if svc.external or svc.namespace != namespace or not svc.selector:
            continue
        if not labels.matches(svc.selector):
            continue
        for port in svc.ports:
            target = port.target_port if isinstance(port.target_port, int) else None
            if isinstance(port.target_port, str) or port.protocol is Protocol.UDP:
                continue
            found.setdefault(target or port.port, set()).add(port.protocol)
    return [
        AppPort(port, next(iter(protocols)) if len(protocols) == 1 else Protocol.UNKNOWN)
        for port, protocols in sorted(found.items())
    ]


@dataclass(frozen=True)
class InboundOptions:
    """The app's ports, the PeerAuthentication mode, and the explicit inbound listener
    (`listeners.inbound_listener` in that mode) whose HTTP chains are reused."""

    ports: Sequence[AppPort]
    http: listener_pb2.Listener
    mode: MtlsMode = MtlsMode.PERMISSIVE
    capture_port: int = CAPTURE_PORT
    tcp_filters: Sequence[lc.Filter] = ()  # network RBAC before every tcp_proxy (`rbactcp`)


def _transports(mode: MtlsMode) -> list[str]:
    """The transports accepted in `mode` (UNSET is Istio's PERMISSIVE)."""
    if mode is MtlsMode.STRICT:
        return [TLS_TRANSPORT]
    if mode is MtlsMode.DISABLE:
        return [RAW_TRANSPORT]
    return [TLS_TRANSPORT, RAW_TRANSPORT]


def _tcp_chains(
    mode: MtlsMode, cluster: str, name: str, filters: Sequence[lc.Filter] = ()
) -> list[lc.FilterChain]:
    chains = []
    for transport in _transports(mode):
        chain = captured.tcp_chain(cluster, cluster, f"{name}_{transport}")
        if filters:
            proxy = list(chain.filters)
            del chain.filters[:]
            chain.filters.extend([*filters, *proxy])
        if mode is not MtlsMode.DISABLE:
            chain.filter_chain_match.transport_protocol = transport
        if transport == TLS_TRANSPORT:
            chain.transport_socket.CopyFrom(mtls.downstream_socket())
        chains.append(chain)
    return chains


def _http_chains(options: InboundOptions, port: AppPort) -> list[lc.FilterChain]:
    chains = []
    for template in options.http.filter_chains:
        chain = lc.FilterChain()
        chain.CopyFrom(template)
        chain.name = f"{port.port}_{template.name}"
        chain.filter_chain_match.destination_port.value = port.port
        is_plaintext = chain.filter_chain_match.transport_protocol != TLS_TRANSPORT
        if port.protocol is Protocol.UNKNOWN and is_plaintext:
            chain.filter_chain_match.application_protocols.extend(captured.SNIFFED_HTTP)
        chains.append(chain)
    return chains


def _port_chains(options: InboundOptions, port: AppPort) -> list[lc.FilterChain]:
    chains = _http_chains(options, port) if port.is_http else []
    if not port.is_http or port.protocol is Protocol.UNKNOWN:
        tcp = _tcp_chains(
            options.mode, names.inbound_cluster(port.port), str(port.port), options.tcp_filters
        )
        if port.protocol is Protocol.UNKNOWN:  # over mTLS an undeclared port is HTTP
            tcp = [c for c in tcp if c.filter_chain_match.transport_protocol != TLS_TRANSPORT]
        for chain in tcp:
            chain.filter_chain_match.destination_port.value = port.port
        chains += tcp
    return chains


def virtual_inbound(options: InboundOptions) -> listener_pb2.Listener:
    """0.0.0.0:15006: where the capture rules redirect every inbound TCP connection."""
    mode = MtlsMode.PERMISSIVE if options.mode is MtlsMode.UNSET else options.mode
    options = InboundOptions(
        options.ports, options.http, mode, options.capture_port, options.tcp_filters
    )
    listener = listener_pb2.Listener(
        name=names.INBOUND_LISTENER,
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(
                address="0.0.0.0", port_value=options.capture_port
            )
        ),
        listener_filters=[captured.original_dst()],
        traffic_direction=base_pb2.INBOUND,
    )
    if mode is not MtlsMode.DISABLE:
        listener.listener_filters.append(tls_inspector())
    sniffed = [p.port for p in options.ports if p.protocol is Protocol.UNKNOWN]
    if sniffed:
        listener.listener_filters.append(captured.http_inspector(sniffed))
        listener.listener_filters_timeout.CopyFrom(captured.DETECTION_TIMEOUT)
        listener.continue_on_listener_filters_timeout = True
    for port in sorted(options.ports, key=lambda p: p.port):
        listener.filter_chains.extend(_port_chains(options, port))
    listener.filter_chains.extend(
        _tcp_chains(
            mode, captured.INBOUND_PASSTHROUGH_CLUSTER, "InboundPassthrough", options.tcp_filters
        )
    )
    return listener
