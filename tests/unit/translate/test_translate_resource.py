"""Resources serialized once, and ProxyConfig's per-type versions."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from google.protobuf import any_pb2

from plait.translate import typeurls
from plait.translate.resource import ProxyConfig, Resource


def cluster(name: str, timeout: int = 1) -> Resource:
    c = cluster_pb2.Cluster(name=name)
    c.connect_timeout.seconds = timeout
    return Resource.pack(name, c)


def test_pack_serializes_an_any_with_its_type_url() -> None:
    r = cluster("a")
    assert r.type_url == typeurls.CLUSTER
    assert r.name == "a"
    wrapped = any_pb2.Any.FromString(r.body)
    assert wrapped.type_url == typeurls.CLUSTER
    c = cluster_pb2.Cluster()
    assert wrapped.Unpack(c) and c.name == "a"


def test_digest_follows_the_content() -> None:
    assert cluster("a").digest == cluster("a").digest
    assert cluster("a").digest != cluster("a", timeout=2).digest
    assert len(cluster("a").digest) == 16


def test_config_groups_by_type_and_name() -> None:
    lis = Resource.pack("l", listener_pb2.Listener(name="l"))
    config = ProxyConfig.of([cluster("a"), cluster("b"), lis])
    assert list(config.resources(typeurls.CLUSTER)) == ["a", "b"]
    assert config.resources(typeurls.LISTENER) == {"l": lis}
    assert config.resources(typeurls.ENDPOINT) == {}
    assert config.resources(typeurls.SECRET) == {}
    assert set(config.versions) == set(typeurls.PUSH_ORDER)


def test_versions_ignore_order_and_change_only_for_the_changed_type() -> None:
    lis = Resource.pack("l", listener_pb2.Listener(name="l"))
    one = ProxyConfig.of([cluster("a"), cluster("b"), lis])
    two = ProxyConfig.of([lis, cluster("b"), cluster("a")])
    assert one.versions == two.versions
    three = ProxyConfig.of([cluster("a"), cluster("b", timeout=5), lis])
    assert three.version(typeurls.CLUSTER) != one.version(typeurls.CLUSTER)
    assert three.version(typeurls.LISTENER) == one.version(typeurls.LISTENER)
    renamed = ProxyConfig.of([cluster("a"), Resource.pack("c", cluster_pb2.Cluster(name="b"))])
    assert renamed.version(typeurls.CLUSTER) != ProxyConfig.of(
        [cluster("a"), Resource.pack("b", cluster_pb2.Cluster(name="b"))]
    ).version(typeurls.CLUSTER)


def test_empty_types_have_one_stable_version() -> None:
    empty = ProxyConfig.of([])
    assert len(set(empty.versions.values())) == 1
    assert empty.version(typeurls.SECRET) == empty.version(typeurls.ENDPOINT)
    assert ProxyConfig.of([cluster("a")]).version(typeurls.ENDPOINT) == empty.version(
        typeurls.ENDPOINT
    )


def listener(name: str, port: int) -> Resource:
    lis = listener_pb2.Listener(name=name)
    lis.address.socket_address.port_value = port
    return Resource.pack(name, lis)


def test_layered_config_shares_the_base_and_versions_follow_the_extras() -> None:
    base = ProxyConfig.of([cluster("a"), cluster("b")])
    one = ProxyConfig.layered(base, [cluster("own"), listener("in", 1)])
    same = ProxyConfig.layered(base, [listener("in", 1), cluster("own")])
    other = ProxyConfig.layered(base, [cluster("own"), listener("in", 2)])

    assert set(one.resources(typeurls.CLUSTER)) == {"a", "b", "own"}
    assert one.versions == same.versions
    assert one.version(typeurls.CLUSTER) == other.version(typeurls.CLUSTER)
    assert one.version(typeurls.LISTENER) != other.version(typeurls.LISTENER)
    assert one.version(typeurls.CLUSTER) != base.version(typeurls.CLUSTER)
    # Types without extras reuse the base's mapping and version as they are.
    assert one.resources(typeurls.ENDPOINT) is base.resources(typeurls.ENDPOINT)
    assert one.version(typeurls.ROUTE) == base.version(typeurls.ROUTE)
