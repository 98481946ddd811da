"""DiscoveryResponse bytes framed around already-serialized resources."""

from __future__ import annotations

from ads_testkit import cluster, endpoints
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from plait.translate.typeurls import CLUSTER
from plait.xds import framing


def test_framed_bytes_parse_back_to_the_same_resources() -> None:
    big = endpoints("big", range(20000, 22000))  # a body long enough for a 3-byte varint
    resources = [cluster("a"), cluster("b", 250), big]
    assert len(big.body) > 16384

    raw = framing.encode_response("v1", CLUSTER, "7", resources, framing.control_plane("plait"))
    msg = discovery_pb2.DiscoveryResponse.FromString(raw)

    assert msg.version_info == "v1" and msg.type_url == CLUSTER and msg.nonce == "7"
    assert msg.control_plane.identifier == "plait"
    assert list(msg.resources) == [any_pb2.Any.FromString(r.body) for r in resources]
    assert msg.SerializeToString(deterministic=True) == raw  # canonical field order too


def test_an_empty_response_is_valid() -> None:
    raw = framing.encode_response("", CLUSTER, "1", [])
    msg = discovery_pb2.DiscoveryResponse.FromString(raw)
    assert msg.type_url == CLUSTER and not msg.resources and msg.version_info == ""


def test_bodies_are_copied_verbatim() -> None:
    r = cluster("a")
    raw = framing.encode_response("v", CLUSTER, "1", [r, r])
    assert raw.count(r.body) == 2


def test_delta_framed_bytes_parse_back_with_versions_and_removals() -> None:
    big = endpoints("big", range(20000, 22000))
    resources = [cluster("a"), big, cluster("a")]  # the second "a" reuses its wrapper

    raw = framing.encode_delta_response(
        "v1", CLUSTER, "7", resources, ["gone"], framing.delta_control_plane("plait")
    )
    msg = discovery_pb2.DeltaDiscoveryResponse.FromString(raw)

    assert msg.system_version_info == "v1" and msg.type_url == CLUSTER and msg.nonce == "7"
    assert [(r.name, r.version) for r in msg.resources] == [(r.name, r.digest) for r in resources]
    assert [r.resource for r in msg.resources] == [
        any_pb2.Any.FromString(r.body) for r in resources
    ]
    assert list(msg.removed_resources) == ["gone"]
    assert msg.control_plane.identifier == "plait"
    assert msg.SerializeToString(deterministic=True) == raw  # canonical field order too
