"""The captured sidecar's virtualInbound: chains per app port and PeerAuthentication
mode (the explicit inbound listener's HTTP chains, reused), TCP ports behind the same
mTLS split, passthrough for undeclared ports (mTLS only under STRICT), and Envoy's
verdict."""

from __future__ import annotations

from pathlib import Path

import pytest
from capture_kit import assert_envoy_accepts, explicit_inbound, hcms, tcp_cluster

from plait.api.security import MtlsMode
from plait.model.labels import Labels
from plait.model.registry import Protocol, Service, ServicePort
from plait.translate import captured
from plait.translate.capturedin import AppPort, InboundOptions, app_ports, virtual_inbound

HTTP, DB, RAW = (
    AppPort(8080, Protocol.HTTP),
    AppPort(5432, Protocol.TCP),
    AppPort(7000, Protocol.UNKNOWN),
)


def _inbound(mode: MtlsMode, *ports: AppPort):
    return virtual_inbound(InboundOptions(ports, explicit_inbound(mode), mode))


def _matches(listener) -> list[tuple[int, str, tuple[str, ...]]]:
    return [
        (
            c.filter_chain_match.destination_port.value,
            c.filter_chain_match.transport_protocol,
            tuple(c.filter_chain_match.application_protocols),
        )
        for c in listener.filter_chains
    ]


def test_strict_accepts_only_mtls_on_every_port_and_the_passthrough() -> None:
    listener = _inbound(MtlsMode.STRICT, HTTP, DB)
    assert listener.address.socket_address.port_value == 15006
    assert [f.name for f in listener.listener_filters] == [
        captured.ORIGINAL_DST,
        "envoy.filters.listener.tls_inspector",
    ]
    assert _matches(listener) == [(5432, "tls", ()), (8080, "tls", ()), (0, "tls", ())]
    assert all(c.HasField("transport_socket") for c in listener.filter_chains)
    assert tcp_cluster(listener.filter_chains[0].filters) == "inbound|5432||"
    assert tcp_cluster(listener.filter_chains[2].filters) == captured.INBOUND_PASSTHROUGH_CLUSTER
    (hcm,) = hcms(listener)
    assert hcm.rds.route_config_name == "inbound|8080||"


def test_permissive_adds_plain_text_chains() -> None:
    listener = _inbound(MtlsMode.PERMISSIVE, HTTP, DB)
    assert _matches(listener) == [
        (5432, "tls", ()),
        (5432, "raw_buffer", ()),
        (8080, "tls", ()),
        (8080, "raw_buffer", ()),
        (0, "tls", ()),
        (0, "raw_buffer", ()),
    ]


def test_disable_needs_no_tls_inspector() -> None:
    listener = _inbound(MtlsMode.DISABLE, HTTP, DB)
    assert [f.name for f in listener.listener_filters] == [captured.ORIGINAL_DST]
    assert _matches(listener) == [(5432, "", ()), (8080, "", ()), (0, "", ())]
    assert not any(c.HasField("transport_socket") for c in listener.filter_chains)


def test_an_undeclared_port_is_sniffed_in_plain_text_and_http_over_mtls() -> None:
    listener = _inbound(MtlsMode.PERMISSIVE, DB, RAW)
    inspector = listener.listener_filters[-1]
    assert inspector.name == captured.HTTP_INSPECTOR
    enabled = inspector.filter_disabled.not_match.destination_port_range
    assert (enabled.start, enabled.end) == (7000, 7001)  # never for 5432
    sniffed = ("http/1.1", "http/1.0", "h2c")
    assert _matches(listener)[2:5] == [
        (7000, "tls", ()),
        (7000, "raw_buffer", sniffed),
        (7000, "raw_buffer", ()),
    ]
    assert listener.continue_on_listener_filters_timeout is True


def test_unset_is_permissive() -> None:
    assert _matches(_inbound(MtlsMode.UNSET, DB)) == _matches(_inbound(MtlsMode.PERMISSIVE, DB))


@pytest.mark.parametrize("mode", [MtlsMode.STRICT, MtlsMode.PERMISSIVE, MtlsMode.DISABLE])
def test_envoy_accepts_the_inbound_listener(tmp_path: Path, mode: MtlsMode) -> None:
    assert_envoy_accepts(tmp_path, [_inbound(mode, HTTP, DB, RAW)])


def test_app_ports_are_the_target_ports_of_the_services_selecting_the_workload() -> None:
    web = Labels.of({"app": "web"})
    services = [
        Service("web.shop.svc.cluster.local", "web", "shop",
                (ServicePort("http", 80, Protocol.HTTP, 8080), ServicePort("grpc", 9090, Protocol.GRPC),
                 ServicePort("named", 81, Protocol.HTTP, "http-alt"), ServicePort("dns", 53, Protocol.UDP)),
                selector=web),
        Service("raw.shop.svc.cluster.local", "raw", "shop",
                (ServicePort("tcp", 8080, Protocol.TCP),), selector=web),
        Service("other.shop.svc.cluster.local", "other", "shop",
                (ServicePort("tcp", 7000, Protocol.TCP),), selector=Labels.of({"app": "db"})),
        Service("web.elsewhere.svc.cluster.local", "web", "elsewhere",
                (ServicePort("tcp", 6000, Protocol.TCP),), selector=web),
    ]  # fmt: skip
    assert app_ports(services, "shop", web) == [
        AppPort(8080, Protocol.UNKNOWN),  # HTTP for one service, TCP for another: sniffed
        AppPort(9090, Protocol.GRPC),
    ]
