"""read_request: an unchanged long name list is not parsed again, a changed one is seen."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from plait.translate.typeurls import CLUSTER, ENDPOINT
from plait.xds.requests import LONG_LIST, read_request

Request = discovery_pb2.DiscoveryRequest
NAMES = [f"outbound|80||svc-{i}.default.svc.cluster.local" for i in range(LONG_LIST + 8)]


def wire(names: list[str], nonce: str = "", **fields: object) -> bytes:
    return Request(
        type_url=ENDPOINT, resource_names=names, response_nonce=nonce, **fields
    ).SerializeToString()


def test_a_repeated_long_list_is_taken_from_the_blocks_without_parsing_it() -> None:
    first = read_request(wire(NAMES, version_info="v1"))
    assert first.names == tuple(NAMES) and len(first.msg.resource_names) == len(NAMES)

    ack = read_request(wire(NAMES, "7", version_info="v2"))
    assert ack.names is first.names  # the very tuple: the list compares by identity
    assert len(ack.msg.resource_names) == 0  # left unparsed
    assert (ack.msg.type_url, ack.msg.response_nonce, ack.msg.version_info) == (
        ENDPOINT,
        "7",
        "v2",
    )
    nack = Request(type_url=ENDPOINT, resource_names=NAMES, response_nonce="8")
    nack.error_detail.message = "bad endpoints"
    nack.node.id = "sidecar~a-0.default"
    got = read_request(nack.SerializeToString())
    assert got.names is first.names
    assert got.msg.error_detail.message == "bad endpoints"
    assert got.msg.node.id == "sidecar~a-0.default"


def test_a_changed_list_of_the_same_length_is_seen() -> None:
    read_request(wire(NAMES))
    swapped = [*NAMES[:-1], "outbound|80||other.default.svc.cluster.local"]
    assert read_request(wire(swapped, "2")).names == tuple(swapped)
    reordered = [NAMES[1], NAMES[0], *NAMES[2:]]
    assert read_request(wire(reordered, "3")).names == tuple(reordered)
    assert read_request(wire(NAMES[:-1], "4")).names == tuple(NAMES[:-1])  # one less
    assert read_request(wire([*NAMES, "x"], "5")).names == (*NAMES, "x")  # one more


def test_names_beyond_a_known_block_are_not_lost() -> None:
    read_request(wire(NAMES))
    # the known block, then the type URL, then one more name: protobuf appends it
    tail = Request(type_url=ENDPOINT).SerializeToString()
    extra = Request(resource_names=["late"]).SerializeToString()
    got = read_request(wire(NAMES)[: -len(tail)] + tail + extra)
    assert got.names == (*NAMES, "late")


def test_other_layouts_and_short_lists_are_read_in_full() -> None:
    read_request(wire(NAMES))
    type_first = (
        Request(type_url=CLUSTER).SerializeToString()
        + Request(resource_names=NAMES).SerializeToString()
    )
    got = read_request(type_first)
    assert got.names == tuple(NAMES) and got.msg.type_url == CLUSTER
    short = read_request(wire(NAMES[:2]))
    assert short.names == tuple(NAMES[:2]) and len(short.msg.resource_names) == 2
    assert read_request(wire([])).names == ()
