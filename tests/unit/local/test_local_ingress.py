"""The ingress gateway's host ports: the first HTTP port on --gateway-port, kept ports."""

from __future__ import annotations

import socket

import pytest

from plait.api import load_text
from plait.errors import StartupError
from plait.local.ingress import gateway_proxy, gateway_url, has_new_ports, host_ports
from plait.local.plan import Plan, make_plan
from plait.local.ports import free_port
from plait.model.snapshot import build_snapshot

GATEWAY = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web}
spec:
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, serverCertificate: a.crt, privateKey: a.key}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 81, name: http-2, protocol: HTTP}
    hosts: ["*"]
"""


def plan_of(text: str) -> Plan:
    result = load_text(text, "mesh.yaml")
    assert not result.errors
    return make_plan(result.resources, build_snapshot(result.resources, (), 1))


def test_https_ports_are_planned_after_the_http_ports() -> None:
    plan = plan_of(GATEWAY)
    assert plan.gateway_server_ports == (80, 81, 443)
    assert plan.gateway_tls_ports == frozenset({443})
    assert plan.first_plain_gateway_port() == 80


def test_the_first_http_port_goes_on_the_gateway_port_and_the_others_on_free_ports() -> None:
    gateway_port = free_port()
    ports = dict(host_ports(plan_of(GATEWAY), {}, gateway_port))
    assert set(ports) == {80, 81, 443}
    assert ports[80] == gateway_port
    assert len(set(ports.values())) == 3
    assert gateway_url(plan_of(GATEWAY), ports) == f"http://127.0.0.1:{gateway_port}"


def test_ports_already_served_keep_their_host_ports() -> None:
    current = {80: 18080, 443: 18443}
    plan = plan_of(GATEWAY)
    assert has_new_ports(plan, current)
    ports = dict(host_ports(plan, current, 18080))
    assert (ports[80], ports[443]) == (18080, 18443)
    assert ports[81] not in (18080, 18443)
    assert not has_new_ports(plan, ports)


def test_a_taken_gateway_port_is_a_startup_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(StartupError, match="already in use"):
            host_ports(plan_of(GATEWAY), {}, s.getsockname()[1])


def test_an_https_only_gateway_has_no_http_url() -> None:
    text = GATEWAY.split("  - port: {number: 80")[0]
    plan = plan_of(text)
    ports = dict(host_ports(plan, {}, 0))
    assert list(ports) == [443]
    assert gateway_url(plan, ports) is None


def test_the_gateway_proxy_carries_its_port_map() -> None:
    proxy = gateway_proxy([(443, 2), (80, 1)])
    assert proxy.gateway_ports == ((80, 1), (443, 2))
    assert proxy.id == "gateway~istio-ingressgateway.istio-system"
