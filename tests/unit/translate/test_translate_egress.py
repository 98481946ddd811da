"""Egress: the outbound table's catch-all (allow_any / block_all), PassthroughCluster and
the DFP filter that feeds it, and ServiceEntry clusters by resolution (NONE → DFP, DNS →
the entry's endpoint addresses)."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.clusters.dynamic_forward_proxy.v3 import cluster_pb2 as dfp_cluster_pb2
from envoy.extensions.filters.http.dynamic_forward_proxy.v3 import (
    dynamic_forward_proxy_pb2 as dfp_filter_pb2,
)
from test_translate_envoy_validate import assert_envoy_accepts
from translate_kit import (
    REVIEWS_SERVICE,
    clusters,
    gateway,
    hcm,
    hcms,
    listeners,
    load_assignments,
    routes,
    sidecar,
    snapshot,
)

from plait.model.proxy import Proxy
from plait.translate import egress, typeurls
from plait.translate.proxy import Translator
from plait.translate.vhosts import sidecar_routes

REGISTRY_ONLY = """---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""

ENTRIES = (
    REVIEWS_SERVICE
    + """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns}
spec:
  hosts: [external.test]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
  - {address: localhost, ports: {http: 8081}, labels: {pool: a}, weight: 3}
  - {address: backup.example.com, labels: {pool: b}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dns}
spec:
  host: external.test
  subsets: [{name: a, labels: {pool: a}}, {name: none, labels: {pool: z}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: rr}
spec:
  hosts: [rr.example.com]
  resolution: DNS_ROUND_ROBIN
  ports: [{number: 80, name: http}]
  endpoints: [{address: lb.example.com, ports: {http: 9000}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rr}
spec:
  host: rr.example.com
  subsets: [{name: empty, labels: {pool: z}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: by-host}
spec:
  hosts: [api.example.com]
  resolution: DNS
  ports: [{number: 80, name: http, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild}
spec:
  hosts: ["*.example.org"]
  resolution: NONE
  ports: [{number: 80, name: http}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static}
spec:
  hosts: [static.test]
  resolution: STATIC
  ports: [{number: 80, name: http}]
  endpoints: [{address: 127.0.0.2}]
"""
)


def test_allow_any_is_a_catch_all_to_passthrough_cluster_without_timeout() -> None:
    vhost = sidecar_routes(snapshot(ENTRIES), "default").virtual_hosts[-1]
    assert (vhost.name, list(vhost.domains)) == ("allow_any", ["*"])
    (route,) = vhost.routes
    assert route.name == "allow_any" and route.match.prefix == "/"
    assert route.route.cluster == egress.PASSTHROUGH_CLUSTER
    assert route.route.timeout.ToTimedelta().total_seconds() == 0


def test_registry_only_answers_502_like_istiods_block_all() -> None:
    vhost = sidecar_routes(snapshot(ENTRIES + REGISTRY_ONLY), "default").virtual_hosts[-1]
    assert (vhost.name, list(vhost.domains)) == ("block_all", ["*"])
    (route,) = vhost.routes
    assert route.direct_response.status == 502
    assert not route.HasField("route")


def test_registered_hosts_keep_their_virtual_hosts_under_registry_only() -> None:
    names = [v.name for v in sidecar_routes(snapshot(ENTRIES + REGISTRY_ONLY), "x").virtual_hosts]
    assert "external.test:80" in names and "*.example.org:80" in names
    assert names[-1] == "block_all"


def test_switching_the_mode_changes_the_route_table_only() -> None:
    allow = Translator(snapshot(ENTRIES)).config_for(sidecar())
    block = Translator(snapshot(ENTRIES + REGISTRY_ONLY)).config_for(sidecar())
    for type_url in (typeurls.CLUSTER, typeurls.ENDPOINT, typeurls.LISTENER):
        assert allow.version(type_url) == block.version(type_url), type_url
    assert allow.version(typeurls.ROUTE) != block.version(typeurls.ROUTE)


def test_passthrough_cluster_is_a_dfp_cluster_sharing_the_filters_dns_cache() -> None:
    config = Translator(snapshot(ENTRIES)).config_for(sidecar())
    cluster = clusters(config)[egress.PASSTHROUGH_CLUSTER]
    assert cluster.lb_policy == cluster_pb2.Cluster.CLUSTER_PROVIDED
    assert cluster.cluster_type.name == "envoy.clusters.dynamic_forward_proxy"
    cluster_config = dfp_cluster_pb2.ClusterConfig()
    assert cluster.cluster_type.typed_config.Unpack(cluster_config)
    outbound = hcm(listeners(config)["virtualOutbound"])
    names = [f.name for f in outbound.http_filters]
    assert names[-2:] == [egress.DFP_FILTER, "envoy.filters.http.router"]
    filter_config = dfp_filter_pb2.FilterConfig()
    assert outbound.http_filters[-2].typed_config.Unpack(filter_config)
    assert filter_config.dns_cache_config == cluster_config.dns_cache_config
    assert filter_config.dns_cache_config.name == egress.DNS_CACHE


def test_only_the_outbound_listener_has_the_dfp_filter() -> None:
    config = Translator(snapshot(ENTRIES)).config_for(sidecar())
    for inbound in hcms(listeners(config)["virtualInbound"]):
        assert egress.DFP_FILTER not in [f.name for f in inbound.http_filters]


def test_none_entries_pass_through_with_their_cluster_settings() -> None:
    config = Translator(snapshot(ENTRIES)).config_for(sidecar())
    name = "outbound|80||*.example.org"
    cluster = clusters(config)[name]
    assert cluster.cluster_type.name == "envoy.clusters.dynamic_forward_proxy"
    assert cluster.lb_policy == cluster_pb2.Cluster.CLUSTER_PROVIDED
    assert not cluster.HasField("eds_cluster_config") and not cluster.HasField("load_assignment")
    assert cluster.circuit_breakers.thresholds  # what clusters.py set is kept
    assert name not in load_assignments(config)
    vhost = next(
        v for v in routes(config)["outbound"].virtual_hosts if v.name == "*.example.org:80"
    )
    assert list(vhost.domains) == ["*.example.org:80", "*.example.org"]
    assert vhost.routes[0].route.cluster == name


def lb_hosts(cluster: cluster_pb2.Cluster) -> list[tuple[str, int, int]]:
    return [
        (
            lb.endpoint.address.socket_address.address,
            lb.endpoint.address.socket_address.port_value,
            lb.load_balancing_weight.value,
        )
        for locality in cluster.load_assignment.endpoints
        for lb in locality.lb_endpoints
    ]


def test_dns_entries_resolve_their_endpoint_addresses_with_ports_weights_and_subsets() -> None:
    found = clusters(Translator(snapshot(ENTRIES)).config_for(sidecar()))
    plain = found["outbound|80||external.test"]
    assert plain.type == cluster_pb2.Cluster.STRICT_DNS
    assert sorted(lb_hosts(plain)) == [("backup.example.com", 80, 1), ("localhost", 8081, 3)]
    assert lb_hosts(found["outbound|80|a|external.test"]) == [("localhost", 8081, 3)]
    assert lb_hosts(found["outbound|80|none|external.test"]) == []


def test_dns_round_robin_resolves_its_one_endpoint_and_never_an_empty_logical_dns() -> None:
    found = clusters(Translator(snapshot(ENTRIES)).config_for(sidecar()))
    rr = found["outbound|80||rr.example.com"]
    assert rr.type == cluster_pb2.Cluster.LOGICAL_DNS
    assert lb_hosts(rr) == [("lb.example.com", 9000, 1)]
    # Envoy rejects a LOGICAL_DNS cluster without exactly one host
    assert found["outbound|80|empty|rr.example.com"].type == cluster_pb2.Cluster.STRICT_DNS


def test_a_dns_entry_without_endpoints_resolves_its_host() -> None:
    found = clusters(Translator(snapshot(ENTRIES)).config_for(sidecar()))
    assert [h[:2] for h in lb_hosts(found["outbound|80||api.example.com"])] == [
        ("api.example.com", 8080)
    ]


def test_static_entries_stay_eds() -> None:
    config = Translator(snapshot(ENTRIES)).config_for(sidecar())
    assert clusters(config)["outbound|80||static.test"].type == cluster_pb2.Cluster.EDS
    assert "outbound|80||static.test" in load_assignments(config)


@pytest.mark.parametrize("mesh", ["", REGISTRY_ONLY], ids=["allow-any", "registry-only"])
@pytest.mark.parametrize("proxy", [sidecar(), gateway((80, 8080))], ids=["sidecar", "gateway"])
def test_envoy_accepts_egress_config(tmp_path: Path, mesh: str, proxy: Proxy) -> None:
    assert_envoy_accepts(tmp_path, Translator(snapshot(ENTRIES + mesh)).config_for(proxy))
