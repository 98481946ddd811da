"""`/debug/config_dump?proxyID=`: what the control plane sends a proxy, decoded from the
pushed bytes into the sections of Envoy's own config dump, which proxy-config's rows read."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_pb2

from plait.controlplane.configdump import config_dump
from plait.local.configdump import section
from plait.local.configrows import cluster_rows
from plait.local.listenerrows import route_rows
from plait.translate.resource import ProxyConfig, Resource

NAME = "outbound|80||web.shop.svc.cluster.local"


def proxy_config() -> ProxyConfig:
    cluster = cluster_pb2.Cluster(name=NAME, type=cluster_pb2.Cluster.EDS)
    cluster.eds_cluster_config.eds_config.ads.SetInParent()
    assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=NAME)
    for ip in ("10.0.0.1", "10.0.0.2"):
        lb = assignment.endpoints.add().lb_endpoints.add()
        lb.endpoint.address.socket_address.address = ip
        lb.endpoint.address.socket_address.port_value = 8080
    route = route_pb2.RouteConfiguration(name="80")
    host = route.virtual_hosts.add(name="web", domains=["web"])
    r = host.routes.add()
    r.match.prefix = "/api"
    r.route.cluster = NAME
    return ProxyConfig.of(
        [Resource.pack(NAME, cluster), Resource.pack(NAME, assignment), Resource.pack("80", route)]
    )


def test_sections_are_envoys_and_rows_read_them() -> None:
    config = proxy_config()
    dump = config_dump(config)
    clusters = section(dump, "cluster")
    [entry] = clusters["dynamic_active_clusters"]
    assert entry["cluster"]["name"] == NAME and entry["cluster"]["@type"].endswith("v3.Cluster")
    assert entry["version_info"] == config.versions[entry["cluster"]["@type"]]
    [row] = cluster_rows(dump)
    assert (row.name, row.type, row.endpoints, row.state) == (NAME, "EDS", 2, "active")
    [route] = route_rows(dump)
    assert route.route_config == "80" and "/api" in route.match
    assert section(dump, "listener")["dynamic_listeners"] == []


def test_an_empty_config_is_empty_sections() -> None:
    dump = config_dump(ProxyConfig.of([]))
    assert [len(next(v for k, v in c.items() if k != "@type")) for c in dump["configs"]] == [0] * 4
