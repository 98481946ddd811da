"""The simulated SotW proxy's requests (`bench.simclient`): the bytes it sends, its
`resource_names` encoded once per list, are those `SerializeToString` writes."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # bench/ is a top-level package

from bench.meshgen import sidecar  # noqa: E402
from bench.simclient import SimProxy, names_wire, node_of  # noqa: E402
from envoy.service.discovery.v3 import discovery_pb2  # noqa: E402

from plait.model.labels import Labels  # noqa: E402
from plait.translate.typeurls import CLUSTER, ENDPOINT  # noqa: E402

NAMES = tuple(f"outbound|80||svc-{i}.default.svc.cluster.local" for i in range(300))


def _sim() -> SimProxy:
    proxy = sidecar("a-0", "a", Labels({"app": "a"}), (15006, 8080, 15001))
    return SimProxy(proxy, "127.0.0.1:1")


def test_only_the_first_request_carries_the_node() -> None:
    sim = _sim()
    sent = discovery_pb2.DiscoveryRequest.FromString(sim._request(CLUSTER))
    # (the node's metadata is a map, whose encoding order is not fixed: compare messages)
    assert sent == discovery_pb2.DiscoveryRequest(type_url=CLUSTER, node=node_of(sim.proxy))
    want = discovery_pb2.DiscoveryRequest(type_url=CLUSTER)
    assert sim._request(CLUSTER) == want.SerializeToString()


def test_an_ack_with_names_is_byte_for_byte_the_serialized_request() -> None:
    sim = _sim()
    sim._request(CLUSTER)  # the node goes once
    sim._names[ENDPOINT] = NAMES
    sim._version[ENDPOINT] = "v-41"
    sent = sim._request(ENDPOINT, nonce="17")
    want = discovery_pb2.DiscoveryRequest(
        version_info="v-41", resource_names=NAMES, type_url=ENDPOINT, response_nonce="17"
    )
    assert sent == want.SerializeToString()
    assert tuple(discovery_pb2.DiscoveryRequest.FromString(sent).resource_names) == NAMES


def test_names_are_encoded_once_per_distinct_list() -> None:
    assert names_wire(NAMES) is names_wire(tuple(NAMES))
    assert names_wire(NAMES[:2]) != names_wire(NAMES)
