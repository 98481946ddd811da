"""Reading a State-of-the-World DiscoveryRequest without re-reading an unchanged name list.

A SotW client lists every name it wants in every request of a type, its ACKs included:
an Envoy that reaches 1,000 services sends ~1,000 EDS names (~50 KB) with each EDS ACK,
and turning them into 1,000 Python strings and comparing those with the list held cost
~150 µs per ACK, 1,000 ACKs per endpoint change (`docs/benchmarks.md`, "Per-stream
work"). Almost every such list is one seen before (the streams of a mesh list the same
names; a stream repeats its list until its clusters change).

So `read_request` keeps the wire bytes of the few latest long name lists (`_BLOCKS`,
each with its names as the interned tuple `shared_names` made) and, when a request
carries one of them where its names start, parses only the rest of the message. It is
exact, never a guess:

* protobuf concatenates a repeated field's entries wherever they appear, so the names
  are those of the block followed by any `resource_names` in the rest; the fast path is
  taken only when the rest has none, and the part before the block holds only fields 1
  (`version_info`) and 2 (`node`), read by their lengths;
* a block is stored only after a full parse, as the canonical encoding of exactly the
  names that parse found, and only when the request holds those very bytes where its
  names start. Any other layout is parsed in full.

A changed list (one name more, one less, or another order) does not match a stored block
byte for byte, so it is parsed and seen.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from envoy.service.discovery.v3 import discovery_pb2

LONG_LIST = 32  # names: shorter lists are read in full (cheap enough)
_BLOCKS_MAX = 8
_BLOCKS: OrderedDict[bytes, tuple[str, ...]] = OrderedDict()  # the newest last
_HEAD_TAGS = (0x0A, 0x12)  # version_info (1) and node (2), length-delimited
_NAMES_TAG = 0x1A  # resource_names (3), length-delimited

_NAME_LISTS: dict[tuple[str, ...], tuple[str, ...]] = {}
_NAME_LISTS_MAX = 4096
_RECENT: dict[str, tuple[str, ...]] = {}  # by type URL: the list found last


def shared_names(type_url: str, names: Iterable[str]) -> tuple[str, ...]:
    """`names` as the tuple every stream that lists the same names holds (its names
    interned): a SotW stream keeps the names its latest request listed, and 1,000 streams
    subscribed to the same 1,000 endpoint sets held ~100 MiB of copies of them
    (`docs/benchmarks.md`). The list found last for the type is tried first: comparing
    with it costs less than hashing 1,000 new strings, and streams mostly list the same
    names. Bounded: when full, the table starts over."""
    listed = tuple(names)
    recent = _RECENT.get(type_url)
    if recent is not None and listed == recent:
        return recent
    found = _NAME_LISTS.get(listed)
    if found is None:
        if len(_NAME_LISTS) >= _NAME_LISTS_MAX:
            _NAME_LISTS.clear()
        found = tuple(map(sys.intern, listed))
        _NAME_LISTS[found] = found
    _RECENT[type_url] = found
    return found


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """A DiscoveryRequest as received: `msg` (whose `resource_names` may have been left
    unparsed: read `names`) and its names."""

    msg: discovery_pb2.DiscoveryRequest
    names: tuple[str, ...]


def read_request(data: bytes) -> ReceivedRequest:
    """The gRPC request deserializer of StreamAggregatedResources (see the module doc)."""
    start = _names_start(data)
    if start is not None:
        for block, names in reversed(_BLOCKS.items()):
            if data.startswith(block, start):
                rest = discovery_pb2.DiscoveryRequest.FromString(
                    data[:start] + data[start + len(block) :]
                )
                if not rest.resource_names:
                    _BLOCKS.move_to_end(block)
                    return ReceivedRequest(rest, names)
                break
    msg = discovery_pb2.DiscoveryRequest.FromString(data)
    names = shared_names(msg.type_url, msg.resource_names)
    if start is not None and len(names) >= LONG_LIST:
        block = discovery_pb2.DiscoveryRequest(resource_names=names).SerializeToString()
        if data.startswith(block, start):
            _BLOCKS[block] = names
            _BLOCKS.move_to_end(block)
            while len(_BLOCKS) > _BLOCKS_MAX:
                _BLOCKS.popitem(last=False)
    return ReceivedRequest(msg, names)


def _names_start(data: bytes) -> int | None:
    """Where the first `resource_names` entry starts, when only fields 1 and 2 come
    before it; None otherwise (no names, or another layout)."""
    i, end = 0, len(data)
    while i < end:
        tag = data[i]
        if tag == _NAMES_TAG:
            return i
        if tag not in _HEAD_TAGS:
            return None
        length, i = _varint(data, i + 1)
        i += length
    return None


def _varint(data: bytes, i: int) -> tuple[int, int]:
    """The varint at `i`, and the offset after it (past the end: a huge value)."""
    value = shift = 0
    while i < len(data):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return value, i
        shift += 7
    return len(data) + 1, i
