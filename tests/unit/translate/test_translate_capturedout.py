"""The captured sidecar's outbound listeners: istiod's REDIRECT-mode layout, the
passthrough/black-hole fallback per outbound mode, sniffing only where nothing is
declared (server-first protocols never wait), and Envoy's verdict."""

from __future__ import annotations

from pathlib import Path

import pytest
from capture_kit import assert_envoy_accepts, explicit_hcm, hcms, tcp_cluster

from plait.model.meshsettings import OutboundMode
from plait.model.registry import Protocol, Service, ServicePort
from plait.translate import captured
from plait.translate.capturedout import (
    OutboundOptions,
    ServiceAddress,
    captured_hcm,
    outbound_listeners,
    service_addresses,
)

REDIS = ServiceAddress("redis.data.svc.cluster.local", "10.96.0.5", 6379, Protocol.TCP)
REVIEWS = ServiceAddress("reviews.shop.svc.cluster.local", "10.96.0.7", 9080, Protocol.HTTP)
RATINGS = ServiceAddress("ratings.shop.svc.cluster.local", "10.96.0.8", 9080, Protocol.UNKNOWN)
LEGACY = ServiceAddress("legacy.shop.svc.cluster.local", "10.96.0.9", 7000, Protocol.UNKNOWN)


def _listeners(*services: ServiceAddress, mode: OutboundMode = OutboundMode.ALLOW_ANY):
    options = OutboundOptions(services, captured_hcm(explicit_hcm()), mode)
    return {listener.name: listener for listener in outbound_listeners(options)}


@pytest.mark.parametrize(
    ("mode", "cluster"),
    [
        (OutboundMode.ALLOW_ANY, "PassthroughCluster"),
        (OutboundMode.REGISTRY_ONLY, "BlackHoleCluster"),
    ],
)
def test_virtual_outbound_restores_the_destination_and_falls_back_per_mode(
    mode: OutboundMode, cluster: str
) -> None:
    virtual = _listeners(mode=mode)["virtualOutbound"]
    assert virtual.address.socket_address.port_value == 15001
    assert virtual.use_original_dst.value is True
    assert [f.name for f in virtual.listener_filters] == [captured.ORIGINAL_DST]
    assert tcp_cluster(virtual.default_filter_chain.filters) == cluster
    assert not virtual.filter_chains


def test_a_tcp_service_gets_its_own_cluster_ip_listener_without_sniffing() -> None:
    listener = _listeners(REDIS)["10.96.0.5_6379"]
    assert listener.bind_to_port.value is False
    assert (
        listener.address.socket_address.address,
        listener.address.socket_address.port_value,
    ) == (
        "10.96.0.5",
        6379,
    )
    assert not listener.listener_filters and not listener.HasField("listener_filters_timeout")
    (chain,) = listener.filter_chains
    assert tcp_cluster(chain.filters) == "outbound|6379||redis.data.svc.cluster.local"


def test_a_declared_http_port_matches_its_cluster_ips_without_sniffing() -> None:
    listener = _listeners(REVIEWS)["0.0.0.0_9080"]
    assert listener.bind_to_port.value is False and not listener.listener_filters
    (chain,) = listener.filter_chains
    assert [
        (r.address_prefix, r.prefix_len.value) for r in chain.filter_chain_match.prefix_ranges
    ] == [("10.96.0.7", 32)]
    assert not chain.filter_chain_match.application_protocols
    (hcm,) = hcms(listener)
    assert hcm.rds.route_config_name == "outbound"
    assert not hcm.http_protocol_options.allow_absolute_url.value  # origin-form, not a proxy
    assert tcp_cluster(listener.default_filter_chain.filters) == "PassthroughCluster"


def test_an_undeclared_port_is_sniffed_there_only_and_briefly() -> None:
    listener = _listeners(LEGACY)["0.0.0.0_7000"]
    (inspector,) = listener.listener_filters
    assert inspector.name == captured.HTTP_INSPECTOR
    enabled = inspector.filter_disabled.not_match.destination_port_range
    assert (enabled.start, enabled.end) == (7000, 7001)
    assert listener.listener_filters_timeout.ToMilliseconds() == 100
    assert listener.continue_on_listener_filters_timeout is True
    http, tcp = listener.filter_chains
    assert list(http.filter_chain_match.application_protocols) == ["http/1.1", "http/1.0", "h2c"]
    assert tcp_cluster(tcp.filters) == "outbound|7000||legacy.shop.svc.cluster.local"
    assert not tcp.filter_chain_match.application_protocols


def test_declared_and_undeclared_services_share_a_port() -> None:
    listener = _listeners(REVIEWS, RATINGS)["0.0.0.0_9080"]
    by_name = {chain.name: chain for chain in listener.filter_chains}
    assert sorted(by_name) == ["9080_http", "9080_http_declared", "9080_tcp_10.96.0.8"]
    declared = by_name["9080_http_declared"].filter_chain_match
    sniffed = by_name["9080_http"].filter_chain_match
    assert [r.address_prefix for r in declared.prefix_ranges] == ["10.96.0.7"]
    assert not declared.application_protocols
    assert [r.address_prefix for r in sniffed.prefix_ranges] == ["10.96.0.8"]
    assert sniffed.application_protocols


def test_envoy_accepts_every_layout(tmp_path: Path) -> None:
    for mode in OutboundMode:
        options = OutboundOptions(
            (REDIS, REVIEWS, RATINGS, LEGACY), captured_hcm(explicit_hcm()), mode
        )
        assert_envoy_accepts(tmp_path, outbound_listeners(options))


def test_service_addresses_are_the_tcp_borne_ports_of_services_with_a_cluster_ip() -> None:
    db = Service(
        "db.data.svc.cluster.local", "db", "data",
        (ServicePort("tcp-pg", 5432, Protocol.TCP), ServicePort("udp-x", 5433, Protocol.UDP)),
    )  # fmt: skip
    web = Service("web.shop.svc.cluster.local", "web", "shop", (ServicePort("http", 80),))
    assert service_addresses([db, web], {db.hostname: "10.96.0.3"}) == [
        ServiceAddress(db.hostname, "10.96.0.3", 5432, Protocol.TCP)
    ]
