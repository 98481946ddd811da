"""consistent(): every EDS/RDS name a proxy's config uses is in it, and nothing more."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from translate_kit import REVIEWS_SERVICE, gateway, instance, sidecar, snapshot

from plait.errors import InconsistentConfigError
from plait.translate import consistency, egress, listeners, typeurls
from plait.translate.proxy import Translator
from plait.translate.resource import ProxyConfig, Resource

GATEWAY = """---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""


def eds_cluster(name: str, service_name: str = "") -> Resource:
    cluster = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    cluster.eds_cluster_config.service_name = service_name
    return Resource.pack(name, cluster)


def load_assignment(name: str) -> Resource:
    return Resource.pack(name, endpoint_pb2.ClusterLoadAssignment(cluster_name=name))


def rds_listener(name: str, route: str) -> Resource:
    hcm = hcm_pb2.HttpConnectionManager(stat_prefix=name)
    hcm.rds.route_config_name = route
    lis = listener_pb2.Listener(name=name)
    lis.filter_chains.add().filters.add(name=listeners.HCM_FILTER).typed_config.Pack(hcm)
    return Resource.pack(name, lis)


def table(name: str) -> Resource:
    return Resource.pack(name, route_pb2.RouteConfiguration(name=name))


def test_references_are_read_from_the_envoy_messages() -> None:
    assert eds_cluster("a").refs == ((typeurls.ENDPOINT, "a"),)
    assert eds_cluster("a", service_name="b").refs == ((typeurls.ENDPOINT, "b"),)
    static = cluster_pb2.Cluster(name="s", type=cluster_pb2.Cluster.STATIC)
    assert Resource.pack("s", static).refs == ()
    assert rds_listener("l", "r").refs == ((typeurls.ROUTE, "r"),)
    assert table("r").refs == ()


def test_a_complete_config_is_consistent() -> None:
    config = ProxyConfig.of(
        [eds_cluster("a"), load_assignment("a"), rds_listener("l", "r"), table("r")]
    )
    assert consistency.consistent(config) == []


def test_a_dangling_eds_name_is_caught() -> None:
    config = ProxyConfig.of([eds_cluster("a", service_name="a-eds"), load_assignment("a")])
    assert consistency.dangling(config) == ["eds 'a-eds' is named by cds 'a' but missing"]
    assert consistency.consistent(config) == [
        "eds 'a-eds' is named by cds 'a' but missing",
        "eds 'a' is named by no cluster",
    ]


def test_a_dangling_rds_name_is_caught() -> None:
    config = ProxyConfig.of([rds_listener("l", "missing"), table("other")])
    assert consistency.consistent(config) == [
        "rds 'missing' is named by lds 'l' but missing",
        "rds 'other' is named by no listener",
    ]


def test_dangling_can_check_only_some_resources() -> None:
    config = ProxyConfig.of([eds_cluster("a"), rds_listener("l", "r"), table("r")])
    (listener,) = config.resources(typeurls.LISTENER).values()
    assert consistency.dangling(config, [listener]) == []
    assert consistency.dangling(config) != []


def test_the_translator_refuses_a_config_with_a_dangling_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A translator bug that loses a route table raises instead of reaching Envoy."""
    snap = snapshot(REVIEWS_SERVICE + GATEWAY, [instance("reviews-0", 20001, app="reviews")])
    inbound_listener = listeners.inbound_listener
    monkeypatch.setattr(
        listeners,
        "inbound_listener",
        lambda address, port, route, *rest: inbound_listener(address, port, "typo", *rest),
    )
    with pytest.raises(InconsistentConfigError, match="rds .* is named by lds .* but missing"):
        Translator(snap).config_for(sidecar("reviews-0"))


def test_the_translator_refuses_shared_clusters_without_their_endpoints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    snap = snapshot(REVIEWS_SERVICE)
    finish_cluster = egress.finish_cluster

    def misnamed(cluster: cluster_pb2.Cluster, *args: Any) -> None:
        finish_cluster(cluster, *args)
        if cluster.type == cluster_pb2.Cluster.EDS:
            cluster.eds_cluster_config.service_name = cluster.name + "-typo"

    monkeypatch.setattr(egress, "finish_cluster", misnamed)
    with pytest.raises(InconsistentConfigError, match="every proxy"):
        Translator(snap).config_for(sidecar())


def test_every_config_a_translation_test_makes_is_checked(
    checked_configs: list[ProxyConfig],
) -> None:
    snap = snapshot(REVIEWS_SERVICE + GATEWAY, [instance("reviews-0", 20001, app="reviews")])
    translator = Translator(snap)
    translator.config_for(sidecar())
    translator.config_for(gateway((80, 8080)))
    assert len(checked_configs) == 2
