"""recommendations: what else to look at, served over gRPC (HTTP/2 only, h2c).

``shop.Recommendations/For``: request ``google.protobuf.StringValue`` (the item), response
``google.protobuf.Struct`` shaped like every shop answer (service, version, instance,
sidecar, trace, ``calls``) plus ``item`` and ``recommended``. Well-known protobuf types
keep the demo free of generated code; a real service would ship a ``.proto``.

The same module holds the client side (:func:`fetch`), as a generated stub would. In local
mode an app reaches its sidecar through ``HTTP_PROXY``, which gRPC cannot use (it would
send CONNECT); plait gives the sidecar's outbound address in ``PLAIT_OUTBOUND`` instead,
and the client dials it with the service as ``:authority``. Without ``PLAIT_OUTBOUND``
(Kubernetes: traffic is captured) the client dials the service itself.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2, wrappers_pb2

from . import shopkit

SERVICE = "shop.Recommendations"
FOR = f"/{SERVICE}/For"
RELATED: dict[str, list[str]] = {
    "book": ["lamp", "poster"],
    "mug": ["book"],
    "lamp": ["book", "poster"],
    "poster": ["lamp", "mug"],
}


def answer(cfg: shopkit.Config, item: str, metadata: Mapping[str, str]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "service": cfg.service,
        "version": cfg.version,
        "instance": cfg.instance,
        "x-request-id": metadata.get("x-request-id"),
        "sidecar": metadata.get("x-plait-sidecar"),
    }
    trace = {h: metadata[h] for h in shopkit.TRACE_HEADERS if h in metadata and h != "x-request-id"}
    if trace:
        doc["trace"] = trace
    doc.update(item=item, recommended=RELATED.get(item, []), calls=[])
    return doc


def handler(cfg: shopkit.Config) -> grpc.GenericRpcHandler:
    async def recommend(
        request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext
    ) -> struct_pb2.Struct:
        if not request.value:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the item must not be empty")
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        out = struct_pb2.Struct()
        out.update(answer(cfg, request.value, metadata))
        return out

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "For": grpc.unary_unary_rpc_method_handler(
                recommend,
                request_deserializer=wrappers_pb2.StringValue.FromString,
                response_serializer=struct_pb2.Struct.SerializeToString,
            )
        },
    )


# --------------------------------------------------------------------------- client


def channel(target: str, env: Mapping[str, str]) -> grpc.aio.Channel:
    """A channel to ``target`` (``SERVICE:PORT``) through the sidecar when there is one."""
    outbound = env.get("PLAIT_OUTBOUND")
    options: list[tuple[str, Any]] = [("grpc.enable_http_proxy", 0)]
    if outbound:
        options.append(("grpc.default_authority", target))
        return grpc.aio.insecure_channel(outbound, options=options)
    return grpc.aio.insecure_channel(target, options=options)


async def fetch(
    chain: shopkit.Chain, ch: grpc.aio.Channel, target: str, item: str, timeout_s: float
) -> shopkit.Call:
    """Call ``For`` (trace headers as metadata) and record it in ``chain`` like an HTTP call."""
    record = shopkit.Call("recommendations", "gRPC", f"{target}{FOR}")
    chain.calls.append(record)
    rpc = ch.unary_unary(
        FOR,
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=struct_pb2.Struct.FromString,
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        reply = await rpc(
            wrappers_pb2.StringValue(value=item),
            metadata=tuple(shopkit.trace_headers(chain.request).items()),
            timeout=timeout_s,
        )
    except grpc.aio.AioRpcError as exc:
        record.error = f"gRPC {exc.code().name}: {exc.details()}"
    else:
        record.status = 200
        record.response = json_format.MessageToDict(reply)
    finally:
        record.elapsed_ms = round((loop.time() - start) * 1000, 1)
    return record


# --------------------------------------------------------------------------- server


async def serve(cfg: shopkit.Config) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([handler(cfg)])
    port = server.add_insecure_port(f"{cfg.host}:{cfg.port}")
    if not port:
        raise shopkit.ConfigError(f"cannot listen on {cfg.host}:{cfg.port}")
    await server.start()
    print(
        f"{cfg.service} {cfg.version} ({cfg.instance}) listening on "
        f"http://{cfg.host}:{port} (gRPC, h2c)",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=5)


def main() -> None:
    try:
        asyncio.run(serve(shopkit.Config.from_env("recommendations")))
    except shopkit.ConfigError as exc:
        sys.exit(f"configuration error: {exc}")


if __name__ == "__main__":
    main()
