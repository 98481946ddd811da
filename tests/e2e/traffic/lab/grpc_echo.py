"""The traffic lab's gRPC server: `lab.Echo`, speaking only HTTP/2 (h2c) on `$PORT`.

No generated code: messages are protobuf well-known types. `Say(StringValue) → Struct`
answers the replica, the message and the sidecar that delivered the call
(`x-plait-sidecar`). Request metadata steers it like the HTTP echo's headers:
`x-echo-fail-every: N` fails with UNAVAILABLE every call but each N-th (counted per
replica and method). `Stats(Empty) → Struct` returns this replica's call counts (read
directly, not through the mesh); `Reset(Empty) → Empty` clears them.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import Any

import grpc
from google.protobuf import empty_pb2, struct_pb2, wrappers_pb2
from google.protobuf.message import Message

INSTANCE = os.environ.get("PLAIT_INSTANCE", "unknown")
SERVICE = "lab.Echo"
counts: Counter[str] = Counter()


def _struct(doc: dict[str, object]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(doc)
    return out


async def say(request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext) -> object:
    counts["Say"] += 1
    metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
    every = int(metadata.get("x-echo-fail-every", "0"))
    if every and counts["Say"] % every != 0:
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"{INSTANCE}: failing on purpose")
    return _struct(
        {
            "replica": INSTANCE,
            "message": request.value,
            "sidecar": metadata.get("x-plait-sidecar", ""),
            "count": counts["Say"],
        }
    )


async def stats(request: empty_pb2.Empty, context: grpc.aio.ServicerContext) -> object:
    return _struct({"replica": INSTANCE, "counts": dict(counts)})


async def reset(request: empty_pb2.Empty, context: grpc.aio.ServicerContext) -> object:
    counts.clear()
    return empty_pb2.Empty()


def _unary(fn: Any, request_type: type[Message], response_type: type[Message]) -> Any:
    return grpc.unary_unary_rpc_method_handler(
        fn,
        request_deserializer=request_type.FromString,
        response_serializer=response_type.SerializeToString,
    )


async def serve() -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Say": _unary(say, wrappers_pb2.StringValue, struct_pb2.Struct),
                    "Stats": _unary(stats, empty_pb2.Empty, struct_pb2.Struct),
                    "Reset": _unary(reset, empty_pb2.Empty, empty_pb2.Empty),
                },
            )
        ]
    )
    server.add_insecure_port(f"127.0.0.1:{os.environ['PORT']}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve())
