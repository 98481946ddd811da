"""DiscoveryResponse bytes built from already-serialized resources, and the ADS handler.

A `Resource.body` is the serialized `google.protobuf.Any` made once by translation and
shared by every proxy that receives it. A DiscoveryResponse is framed around those bytes
by hand instead of building a message and re-encoding every resource per stream:

    DiscoveryResponse (envoy/service/discovery/v3/discovery.proto)
      1 version_info   string
      2 resources      repeated google.protobuf.Any   <- tag, length, Resource.body
      4 type_url       string
      5 nonce          string
      6 control_plane  envoy.config.core.v3.ControlPlane { 1 identifier string }

The incremental variant frames each resource inside an envoy...discovery.v3.Resource
(its version is `Resource.digest`, the hash of those same bytes):

    DeltaDiscoveryResponse
      1 system_version_info  string
      2 resources            repeated Resource { 3 name, 1 version, 2 resource (Any) }
      4 type_url             string
      5 nonce                string
      6 removed_resources    repeated string
      7 control_plane        ControlPlane

The gRPC methods are registered with an identity response serializer, so the bytes made
here go to the wire unchanged: StreamAggregatedResources (State of the World) and
DeltaAggregatedResources (incremental).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from plait.translate.resource import Resource
from plait.xds.requests import read_request

ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
SOTW_METHOD = "StreamAggregatedResources"
DELTA_METHOD = "DeltaAggregatedResources"

_WIRE_LEN = 2  # length-delimited wire type


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(field: int) -> bytes:
    return _varint(field << 3 | _WIRE_LEN)


_VERSION, _RESOURCE, _TYPE_URL, _NONCE, _CONTROL_PLANE = (_tag(f) for f in (1, 2, 4, 5, 6))
_REMOVED, _DELTA_CONTROL_PLANE = _tag(6), _tag(7)  # DeltaDiscoveryResponse
_RES_NAME = _tag(3)  # Resource.name (Resource.version is 1 and .resource 2, as above)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def control_plane(identifier: str) -> bytes:
    """The serialized `control_plane` field (a ControlPlane message) for every response."""
    return _field(_CONTROL_PLANE, _field(_tag(1), identifier.encode()))


def delta_control_plane(identifier: str) -> bytes:
    """The `control_plane` field of a DeltaDiscoveryResponse (field 7 there)."""
    return _field(_DELTA_CONTROL_PLANE, _field(_tag(1), identifier.encode()))


def encode_delta_response(
    version: str,
    type_url: str,
    nonce: str,
    resources: Iterable[Resource],
    removed: Iterable[str] = (),
    control_plane_field: bytes = b"",
) -> bytes:
    """A serialized DeltaDiscoveryResponse around the given bodies, byte for byte."""
    parts = [_field(_VERSION, version.encode())] if version else []
    for r in resources:
        head, tail = _delta_wrapper(r)
        parts += (head, r.body, tail)
    parts.append(_field(_TYPE_URL, type_url.encode()))
    if nonce:
        parts.append(_field(_NONCE, nonce.encode()))
    parts.extend(_field(_REMOVED, name.encode()) for name in removed)
    parts.append(control_plane_field)
    return b"".join(parts)


def encode_response(
    version: str,
    type_url: str,
    nonce: str,
    resources: Iterable[Resource],
    control_plane_field: bytes = b"",
) -> bytes:
    """A serialized DiscoveryResponse whose resources are the given bodies, byte for byte."""
    parts = [_field(_VERSION, version.encode())] if version else []
    for r in resources:
        parts.append(_RESOURCE + _varint(len(r.body)))
        parts.append(r.body)
    parts.append(_field(_TYPE_URL, type_url.encode()))
    if nonce:
        parts.append(_field(_NONCE, nonce.encode()))
    parts.append(control_plane_field)
    return b"".join(parts)


_WRAPPERS: dict[tuple[str, str], tuple[bytes, bytes]] = {}
_WRAPPERS_MAX = 200_000


def _delta_wrapper(r: Resource) -> tuple[bytes, bytes]:
    """The bytes of a delta `Resource` before and after `r.body`, made once per resource
    version (every stream that sends it frames the same bytes). Bounded: when full, the
    table starts over."""
    key = (r.name, r.digest)
    found = _WRAPPERS.get(key)
    if found is None:
        inner = _field(_VERSION, r.digest.encode()) + _RESOURCE + _varint(len(r.body))
        tail = _field(_RES_NAME, r.name.encode())
        head = _RESOURCE + _varint(len(inner) + len(r.body) + len(tail)) + inner
        if len(_WRAPPERS) >= _WRAPPERS_MAX:
            _WRAPPERS.clear()
        found = _WRAPPERS[key] = (head, tail)
    return found


def _identity(data: bytes) -> bytes:
    return data


StreamBehaviour = Callable[[Any, Any], Any]
"""`async def behaviour(request_iterator, context) -> None` (the reader/writer style)."""


def ads_handler(sotw: StreamBehaviour, delta: StreamBehaviour) -> grpc.GenericRpcHandler:
    """The generic handler for ADS: requests parsed by protobuf (SotW ones by
    `requests.read_request`, as `ReceivedRequest`s), responses sent as bytes."""
    methods = {
        SOTW_METHOD: grpc.stream_stream_rpc_method_handler(
            sotw,
            request_deserializer=read_request,
            response_serializer=_identity,
        ),
        DELTA_METHOD: grpc.stream_stream_rpc_method_handler(
            delta,
            request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
            response_serializer=_identity,
        ),
    }
    handler: grpc.GenericRpcHandler = grpc.method_handlers_generic_handler(ADS_SERVICE, methods)
    return handler
