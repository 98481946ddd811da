"""The trace store on a real HTTP server: Zipkin v2 JSON and OTLP/HTTP clients post spans,
`/traces` and `/traces/{id}` return them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from plait.controlplane import zipkinproto
from plait.controlplane.tracestore import TraceStore, add_routes

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
async def base() -> AsyncIterator[str]:
    app = web.Application()
    add_routes(app, TraceStore(max_traces=10))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def otlp_request() -> bytes:
    """An export request; xds-protos' OTLP copy names field 2 `instrumentation_library_spans`
    (`scope_spans` in today's protos, the same bytes on the wire)."""
    span = trace_pb2.Span(
        trace_id=bytes.fromhex(TRACE),
        span_id=bytes.fromhex("00f067aa0ba902b7"),
        parent_span_id=bytes.fromhex("a2fb4a1d1a96d312"),
        name="GET /orders",
        kind=trace_pb2.Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1_700_000_000_002_000_000,
        end_time_unix_nano=1_700_000_000_005_000_000,
    )
    service = common_pb2.KeyValue(
        key="service.name", value=common_pb2.AnyValue(string_value="orders.shop")
    )
    request = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(attributes=[service]),
                instrumentation_library_spans=[trace_pb2.InstrumentationLibrarySpans(spans=[span])],
            )
        ]
    )
    return request.SerializeToString()


ZIPKIN_ROOT = {
    "traceId": TRACE,
    "id": "a2fb4a1d1a96d312",
    "name": "frontend:80/*",
    "kind": "SERVER",
    "timestamp": 1_700_000_000_000_000,
    "duration": 8000,
    "localEndpoint": {"serviceName": "istio-ingressgateway.istio-system"},
    "tags": {"http.status_code": "200"},
}


async def test_spans_from_zipkin_and_otlp_clients_make_one_trace(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/v2/spans", json=[ZIPKIN_ROOT]) as r:
            assert r.status == 202
        headers = {"Content-Type": "application/x-protobuf"}
        async with http.post(f"{base}/v1/traces", data=otlp_request(), headers=headers) as r:
            assert r.status == 200
            trace_service_pb2.ExportTraceServiceResponse().ParseFromString(await r.read())
        async with http.get(f"{base}/traces") as r:
            (summary,) = (await r.json())["traces"]
        async with http.get(f"{base}/traces/{TRACE.upper()}") as r:
            trace = await r.json()
        async with http.get(f"{base}/traces/{'0' * 32}") as r:
            assert r.status == 404
    assert summary["traceId"] == TRACE and summary["spanCount"] == 2
    assert summary["root"]["service"] == "istio-ingressgateway.istio-system"
    assert summary["services"] == ["istio-ingressgateway.istio-system", "orders.shop"]
    assert summary["durationUs"] == 8000
    gateway, orders = trace["spans"]
    assert orders["parentId"] == gateway["spanId"] and orders["kind"] == "SERVER"
    assert orders["startUs"] - gateway["startUs"] == 2000 and orders["durationUs"] == 3000


async def test_malformed_bodies_are_refused_and_change_nothing(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/v2/spans", json={"traceId": TRACE}) as r:
            assert r.status == 400
        async with http.post(f"{base}/api/v2/spans", json=[{**ZIPKIN_ROOT, "id": "zz"}]) as r:
            assert r.status == 400
        async with http.post(f"{base}/v1/traces", data=b"\xff\xff\xff") as r:
            assert r.status == 400
        async with http.get(f"{base}/traces") as r:
            assert (await r.json())["traces"] == []


async def test_zipkin_protobuf_from_envoy_joins_the_same_trace(base: str) -> None:
    """Envoy's Zipkin tracer sends `zipkin.proto3` to the local store (HTTP_PROTO)."""
    spans = zipkinproto.ListOfSpans()
    span = spans.spans.add(
        trace_id=bytes.fromhex(TRACE),
        id=bytes.fromhex("00f067aa0ba902b7"),
        parent_id=bytes.fromhex("a2fb4a1d1a96d312"),
        name="orders:8080/*",
        kind=2,
        timestamp=1_700_000_000_002_000,
        duration=3000,
    )
    span.local_endpoint.service_name = "orders.default"
    span.tags["http.status_code"] = "201"
    headers = {"Content-Type": "application/x-protobuf"}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/api/v2/spans", json=[ZIPKIN_ROOT]) as resp:
            assert resp.status == 202
        body = spans.SerializeToString()
        async with session.post(f"{base}/api/v2/spans", data=body, headers=headers) as resp:
            assert resp.status == 202
        async with session.post(f"{base}/api/v2/spans", data=b"\xff\x00", headers=headers) as resp:
            assert resp.status == 400
        async with session.get(f"{base}/traces/{TRACE}") as resp:
            trace = await resp.json()
    by_id = {s["spanId"]: s for s in trace["spans"]}
    child = by_id["00f067aa0ba902b7"]
    assert child["parentId"] == "a2fb4a1d1a96d312" and child["kind"] == "SERVER"
    assert child["service"] == "orders.default" and child["tags"] == {"http.status_code": "201"}
    assert child["startUs"] == 1_700_000_000_002_000 and child["durationUs"] == 3000
