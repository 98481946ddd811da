"""Translator for a captured sidecar (Traffic.CAPTURED, transparent mode): the
virtual listeners instead of the explicit ones, per-service listeners at cluster IPs, the
app's port on virtualInbound, original-destination clusters; and Envoy's verdict."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from capture_kit import assert_envoy_accepts, tcp_cluster
from translate_kit import clusters, instance, listeners, routes, sidecar

from plait.api.loader import load_text
from plait.model.proxy import Traffic
from plait.model.snapshot import build_snapshot
from plait.translate import typeurls
from plait.translate.proxy import Translator
from plait.translate.resource import ProxyConfig

MESH = """apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: cache}
spec:
  selector: {app: cache}
  ports: [{name: redis, port: 6379}]
---
apiVersion: v1
kind: Service
metadata: {name: frontend}
spec:
  selector: {app: frontend}
  ports: [{name: http, port: 8080}]
"""
IPS = {
    "reviews.default.svc.cluster.local": "10.200.1.1",
    "cache.default.svc.cluster.local": "10.200.1.2",
    "frontend.default.svc.cluster.local": "10.200.1.3",
}


def _config(proxy_app: str = "frontend", **ips: str) -> ProxyConfig:
    loaded = load_text(MESH, "mesh.yaml")
    snap = build_snapshot(
        loaded.resources,
        [instance("reviews-0", 31000, app="reviews"), instance("cache-0", 31001, app="cache")],
        1,
        cluster_ips=ips or IPS,
    )
    proxy = replace(
        sidecar(f"{proxy_app}-0", inbound_port=None, outbound_port=None, app_port=32000),
        address="10.100.0.2",
        traffic=Traffic.CAPTURED,
    )
    return Translator(snap).config_for(proxy)


def test_a_captured_sidecar_gets_the_virtual_listeners_and_no_explicit_ones() -> None:
    lds = listeners(_config())
    assert sorted(lds) == [
        "0.0.0.0_8080",  # HTTP services on 8080, matched by their cluster IPs
        "10.200.1.2_6379",  # the TCP service at its own cluster IP
        "virtualInbound",
        "virtualOutbound",
    ]
    chain = lds["0.0.0.0_8080"].filter_chains[0]
    assert sorted(r.address_prefix for r in chain.filter_chain_match.prefix_ranges) == [
        "10.200.1.1",
        "10.200.1.3",
    ]
    assert tcp_cluster(lds["10.200.1.2_6379"].filter_chains[0].filters) == (
        "outbound|6379||cache.default.svc.cluster.local"
    )
    inbound_ports = {
        c.filter_chain_match.destination_port.value for c in lds["virtualInbound"].filter_chains
    }
    assert 32000 in inbound_ports


def test_original_destination_clusters_replace_the_forward_proxy_passthrough() -> None:
    cds = clusters(_config())
    assert cds["PassthroughCluster"].type == cds["PassthroughCluster"].ORIGINAL_DST
    assert "InboundPassthroughCluster" in cds and "BlackHoleCluster" in cds
    app = cds["inbound|32000||"]  # the app, reached on loopback inside the pod
    address = app.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert (address.address, address.port_value) == ("127.0.0.1", 32000)
    assert set(routes(_config())) == {"outbound", "inbound|32000||"}


def test_a_tcp_only_workload_gets_a_tcp_chain_for_its_port() -> None:
    inbound = listeners(_config("cache"))["virtualInbound"]
    on_port = [
        c for c in inbound.filter_chains if c.filter_chain_match.destination_port.value == 32000
    ]
    assert on_port and all(tcp_cluster(c.filters) == "inbound|32000||" for c in on_port)


def test_services_without_a_cluster_ip_get_no_listener() -> None:
    lds = listeners(_config(**{"cache.default.svc.cluster.local": "10.200.1.2"}))
    assert "0.0.0.0_8080" not in lds and "10.200.1.2_6379" in lds


def test_envoy_accepts_the_captured_listeners(tmp_path: Path) -> None:
    assert_envoy_accepts(tmp_path, list(listeners(_config()).values()))


def test_an_explicit_sidecar_is_unchanged_by_cluster_ips() -> None:
    loaded = load_text(MESH, "mesh.yaml")
    snap = build_snapshot(loaded.resources, [], 1, cluster_ips=IPS)
    lds = listeners(Translator(snap).config_for(sidecar("frontend-0")))
    assert sorted(lds) == ["virtualInbound", "virtualOutbound"]
    assert lds["virtualOutbound"].address.socket_address.port_value == 21003  # HTTP_PROXY


def test_a_tcp_route_edit_reaches_a_captured_sidecar_whose_resources_were_taken_over() -> None:
    """The Translator takes a sidecar's own resources over from the previous snapshot's
    when their inputs are equal; a captured sidecar's listeners also read `tcp` rules."""
    route = """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cache}
spec:
  host: cache
  subsets: [{name: a, labels: {v: a}}, {name: b, labels: {v: b}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cache}
spec:
  hosts: [cache]
  tcp: [{route: [{destination: {host: cache, subset: a}, weight: W}, {destination: {host: cache, subset: b}, weight: 10}]}]
"""
    proxy = replace(
        sidecar("frontend-0", inbound_port=None, outbound_port=None, app_port=32000),
        address="10.100.0.2",
        traffic=Traffic.CAPTURED,
    )

    def translator(weight: int, previous: Translator | None = None) -> Translator:
        loaded = load_text(MESH + route.replace("W", str(weight)), "mesh.yaml")
        snap = build_snapshot(loaded.resources, [], weight, cluster_ips=IPS)
        return Translator(snap, previous=previous)

    before = translator(90)
    before.config_for(proxy)
    after, fresh = translator(50, previous=before), translator(50)
    got, want = after.config_for(proxy), fresh.config_for(proxy)
    assert got.versions == want.versions
    before_lis = listeners(before.config_for(proxy))["10.200.1.2_6379"]
    assert listeners(got)["10.200.1.2_6379"] != before_lis  # the weights did change
    assert {n: r.body for n, r in got.resources(typeurls.LISTENER).items()} == {
        n: r.body for n, r in want.resources(typeurls.LISTENER).items()
    }
