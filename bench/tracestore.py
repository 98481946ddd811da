"""The local trace store's ingest cost: `python -m bench.tracestore [--rate N] [--seconds S]`.

A child process serves only the control plane's trace store (`controlplane.tracestore`
routes on an aiohttp app, as the control plane's status server has them). This process
posts Zipkin v2 spans to it as Envoy's Zipkin tracer does: JSON or (`--proto`) protobuf,
in batches of `--batch` spans (Envoy's `tracing.zipkin.min_flush_spans`: 5 by default,
100 as plait sets it), each span shaped like Envoy's (ids, kind,
timestamps, local endpoint, the tags plait and Envoy set), 12 spans per trace like a shop
checkout, at `--rate` spans per second. The child's CPU (all threads, /proc schedstat)
during the load, minus its idle CPU over as long, is the cost: cores at that rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

import aiohttp

from bench.procs import HOST, cpu_seconds, spawn_python, terminate, wait_listening
from plait.controlplane import zipkinproto
from plait.local.ports import free_port

BATCH = 5
SPANS_PER_TRACE = 12


def _span(trace: int, n: int) -> dict[str, object]:
    now = int(time.time() * 1e6)
    return {
        "traceId": f"{trace:032x}",
        "id": f"{trace * 16 + n + 1:016x}",
        **({"parentId": f"{trace * 16 + n:016x}"} if n else {}),
        "name": "reviews:8080/*",
        "kind": "SERVER" if n % 2 else "CLIENT",
        "timestamp": now,
        "duration": 1234,
        "localEndpoint": {"serviceName": "reviews-v1.default", "ipv4": "127.0.0.1", "port": 0},
        "tags": {
            "component": "proxy",
            "node_id": "sidecar~reviews-v1-0.default",
            "zone": "",
            "guid:x-request-id": "5b8f0ad3-1b0e-9f2a-8d33-4a0c7e1f2b3c",
            "http.url": "http://reviews:8080/reviews/42",
            "http.method": "GET",
            "downstream_cluster": "-",
            "user_agent": "python-urllib3/2.2",
            "http.protocol": "HTTP/1.1",
            "peer.address": "127.0.0.1",
            "request_size": "0",
            "response_size": "187",
            "upstream_cluster": "inbound|8080||",
            "upstream_cluster.name": "inbound|8080||",
            "http.status_code": "200",
            "response_flags": "-",
            "istio.namespace": "default",
            "istio.canonical_service": "reviews",
            "plait.proxy": "sidecar~reviews-v1-0.default",
        },
    }


SERVER = """
import asyncio, sys
from aiohttp import web
from plait.controlplane.tracestore import TraceStore, add_routes

async def main(port):
    app = web.Application()
    add_routes(app, TraceStore())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()

asyncio.run(main(int(sys.argv[1])))
"""


def _proto(batch: list[dict[str, object]]) -> bytes:
    """The same spans as Envoy's HTTP_PROTO sends them (`zipkin.proto3`)."""
    out = zipkinproto.ListOfSpans()
    for item in batch:
        span = out.spans.add(
            trace_id=bytes.fromhex(str(item["traceId"])),
            id=bytes.fromhex(str(item["id"])),
            name=str(item["name"]),
            kind=2 if item["kind"] == "SERVER" else 1,
            timestamp=int(str(item["timestamp"])),
            duration=int(str(item["duration"])),
        )
        if "parentId" in item:
            span.parent_id = bytes.fromhex(str(item["parentId"]))
        span.local_endpoint.service_name = "reviews-v1.default"
        span.tags.update(dict(item["tags"]))  # type: ignore[call-overload]
    return bytes(out.SerializeToString())


async def _post_load(
    url: str, rate: float, seconds: float, batch_size: int, proto: bool = False
) -> int:
    """Batches of `batch_size` spans at `rate` spans/s for `seconds`; returns spans accepted."""
    interval = batch_size / rate
    sent, trace, n = 0, 1, 0
    async with aiohttp.ClientSession() as session:
        start = time.monotonic()
        while (now := time.monotonic()) - start < seconds:
            batch = []
            for _ in range(batch_size):
                batch.append(_span(trace, n))
                n += 1
                if n == SPANS_PER_TRACE:
                    trace, n = trace + 1, 0
            body = _proto(batch) if proto else json.dumps(batch).encode()
            kind = "application/x-protobuf" if proto else "application/json"
            async with session.post(url, data=body, headers={"Content-Type": kind}) as resp:
                if resp.status == 202:
                    sent += batch_size
            next_at = start + (sent / batch_size) * interval
            await asyncio.sleep(max(0.0, next_at - now))
    return sent


async def measure(
    rate: float, seconds: float, batch_size: int = BATCH, proto: bool = False
) -> dict[str, object]:
    port = free_port()
    proc = await spawn_python("bench.tracestore", "--serve", str(port), stdout=None)
    try:
        await wait_listening(port, 20, proc)
        await asyncio.sleep(1.0)
        c0 = cpu_seconds(proc.pid)
        await asyncio.sleep(seconds)
        idle = (cpu_seconds(proc.pid) - c0) / seconds
        url = f"http://{HOST}:{port}/api/v2/spans"
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        sent = await _post_load(url, rate, seconds, batch_size, proto)
        elapsed = time.monotonic() - t0
        busy = (cpu_seconds(proc.pid) - c0) / elapsed
    finally:
        await terminate(proc)
    return {
        "batch": batch_size,
        "encoding": "protobuf" if proto else "json",
        "rate_spans_per_s": sent / elapsed,
        "idle_cores": idle,
        "loaded_cores": busy,
        "ingest_cores": busy - idle,
        "us_per_span": (busy - idle) * 1e6 / (sent / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tracestore", description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=BATCH, help="spans per POST")
    parser.add_argument("--proto", action="store_true", help="zipkin.proto3, as Envoy sends")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        os.execv(sys.executable, [sys.executable, "-c", SERVER, str(args.serve)])
    result = asyncio.run(measure(args.rate, args.seconds, args.batch, args.proto))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
