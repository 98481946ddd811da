"""The local trace store: the control plane keeps the last traces its proxies export.

So that `plait up` shows traces with nothing else installed, the control plane's status
server doubles as a collector (routes added by `add_routes`):

- `POST /api/v2/spans`: Zipkin v2, as JSON or, with `Content-Type: application/x-protobuf`,
  as `zipkin.proto3` `ListOfSpans` (`zipkinproto`): the protobuf form is what Envoy's
  Zipkin tracer sends here (see `translate.tracing`: it costs Envoy far less CPU per
  span than JSON); JSON is what Zipkin clients and the OpenTelemetry Collector's zipkin
  exporter send;
- `POST /v1/traces`: OTLP/HTTP with a protobuf body (an OpenTelemetry SDK's exporter, or
  Envoy's OpenTelemetry tracer with an `http_service`);
- `GET /traces?limit=N`: the newest traces first, one summary each;
- `GET /traces/{id}`: one trace, its spans in start order (404 if unknown).

Memory is bounded: at most `max_traces` traces, the least recently updated dropped first,
and at most `MAX_SPANS_PER_TRACE` spans in one trace (later ones are counted, not kept).
Envoy's protobuf batches are checked when they arrive but turned into spans only when the
store is read (`TraceStore.add_unread`): under load with nobody looking, ingest is a parse
in C per batch, and at most `MAX_UNREAD_SPANS` spans wait.
One event loop owns the store, so it takes no lock. The OTLP messages are those that
xds-protos ships (Envoy's protos import them), not the `opentelemetry-proto` package,
which would install the same module files over them. Decoding errors answer 400 and
change nothing.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from plait.controlplane import zipkinproto

MAX_TRACES = 1000
MAX_SPANS_PER_TRACE = 500
MAX_UNREAD_SPANS = 50 * MAX_TRACES
ZIPKIN_PATH = "/api/v2/spans"
OTLP_HTTP_PATH = "/v1/traces"


@dataclass(frozen=True)
class Span:
    trace_id: str  # 32 lowercase hex digits (a 64-bit id is left-padded)
    span_id: str
    parent_id: str | None
    name: str
    service: str
    kind: str  # SERVER, CLIENT, ... (Zipkin's names; "" if unknown)
    start_us: int  # microseconds since the epoch
    duration_us: int
    tags: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "traceId": self.trace_id,
            "spanId": self.span_id,
            "parentId": self.parent_id,
            "name": self.name,
            "service": self.service,
            "kind": self.kind,
            "startUs": self.start_us,
            "durationUs": self.duration_us,
            "tags": self.tags,
        }


def _hex_id(value: Any, digits: int) -> str:
    if not isinstance(value, str) or not value or len(value) > digits:
        raise ValueError(f"not a {digits}-digit hex id: {value!r}")
    int(value, 16)
    return value.lower().rjust(digits, "0")


def zipkin_spans(payload: Any) -> list[Span]:
    """Spans from a Zipkin v2 JSON list; raises ValueError on a malformed span."""
    if not isinstance(payload, list):
        raise ValueError("a Zipkin v2 body is a JSON list of spans")
    spans = []
    for item in payload:
        if not isinstance(item, dict):
            raise ValueError("a Zipkin span is a JSON object")
        endpoint = item.get("localEndpoint") or {}
        tags = item.get("tags") or {}
        parent = item.get("parentId")
        spans.append(
            Span(
                trace_id=_hex_id(item.get("traceId"), 32),
                span_id=_hex_id(item.get("id"), 16),
                parent_id=_hex_id(parent, 16) if parent else None,
                name=str(item.get("name") or ""),
                service=str(endpoint.get("serviceName") or ""),
                kind=str(item.get("kind") or ""),
                start_us=int(item.get("timestamp") or 0),
                duration_us=int(item.get("duration") or 0),
                tags={str(k): str(v) for k, v in tags.items()},
            )
        )
    return spans


def parse_zipkin_proto(body: bytes) -> zipkinproto.ListOfSpans:
    """A checked `zipkin.proto3` ListOfSpans; raises ValueError when it does not parse or
    a span's ids are missing (checked here, so a bad batch is refused when it is sent)."""
    message = zipkinproto.ListOfSpans()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise ValueError(f"not a zipkin.proto3 ListOfSpans: {exc}") from exc
    for s in message.spans:
        if len(s.trace_id) not in (8, 16) or len(s.id) != 8:
            raise ValueError("a Zipkin span needs an 8- or 16-byte trace id and an 8-byte id")
    return message


def proto_spans(message: zipkinproto.ListOfSpans) -> list[Span]:
    """The spans of a checked ListOfSpans (`parse_zipkin_proto`)."""
    return [
        Span(
            trace_id=s.trace_id.hex().rjust(32, "0"),
            span_id=s.id.hex(),
            parent_id=s.parent_id.hex() or None,
            name=s.name,
            service=s.local_endpoint.service_name,
            kind=zipkinproto.KINDS.get(s.kind, ""),
            start_us=s.timestamp,
            duration_us=s.duration,
            tags=dict(s.tags),
        )
        for s in message.spans
    ]


_OTLP_KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def _any_value(value: common_pb2.AnyValue) -> str:
    which = value.WhichOneof("value")
    return "" if which is None else str(getattr(value, which))


def otlp_spans(request: trace_service_pb2.ExportTraceServiceRequest) -> list[Span]:
    """Spans from an OTLP export request; the service is the `service.name` resource
    attribute."""
    spans = []
    for resource_spans in request.resource_spans:
        attrs = {a.key: _any_value(a.value) for a in resource_spans.resource.attributes}
        service = attrs.get("service.name", "")
        # xds-protos ships an older copy of the OTLP protos: field 2 of ResourceSpans is
        # named `instrumentation_library_spans` there and `scope_spans` today (same wire)
        for scope in resource_spans.instrumentation_library_spans:
            for s in scope.spans:
                spans.append(
                    Span(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex() or None,
                        name=s.name,
                        service=service,
                        kind=_OTLP_KINDS.get(s.kind, ""),
                        start_us=s.start_time_unix_nano // 1000,
                        duration_us=max(0, s.end_time_unix_nano - s.start_time_unix_nano) // 1000,
                        tags={a.key: _any_value(a.value) for a in s.attributes},
                    )
                )
    return spans


@dataclass
class _Trace:
    spans: dict[str, Span] = field(default_factory=dict)
    dropped: int = 0


class TraceStore:
    """The last `max_traces` traces, by trace id (see the module docstring)."""

    def __init__(self, max_traces: int = MAX_TRACES) -> None:
        self.max_traces = max_traces
        self._traces: OrderedDict[str, _Trace] = OrderedDict()
        self._unread: deque[zipkinproto.ListOfSpans] = deque()
        self._unread_spans = 0
        self.dropped_unread = 0  # spans of batches dropped before anyone read the store

    def add_unread(self, message: zipkinproto.ListOfSpans) -> None:
        """Keep a checked batch as it came; its spans join the store when it is next read.

        Ingest is then a protobuf parse (upb, in C) and an id check, not a `Span` per span
        and an index update: with nobody looking, the store costs almost nothing under
        load. At most `MAX_UNREAD_SPANS` wait; past that the oldest batch is dropped
        unread. The store keeps only `max_traces` traces anyway, and a batch that many
        spans old holds traces the store would have evicted by then (unless one of them
        is still growing, which then shows without its oldest spans).
        """
        self._unread.append(message)
        self._unread_spans += len(message.spans)
        while self._unread_spans > MAX_UNREAD_SPANS and len(self._unread) > 1:
            dropped = len(self._unread.popleft().spans)
            self._unread_spans -= dropped
            self.dropped_unread += dropped

    def _read(self) -> OrderedDict[str, _Trace]:
        """The traces, with every unread batch added first (in the order they came)."""
        while self._unread:
            self.add(proto_spans(self._unread.popleft()))
        self._unread_spans = 0
        return self._traces

    def add(self, spans: Iterable[Span]) -> int:
        """Store `spans` (a span id seen again replaces the earlier one); returns how many."""
        count = 0
        for span in spans:
            trace = self._traces.pop(span.trace_id, None) or _Trace()
            self._traces[span.trace_id] = trace
            if span.span_id in trace.spans or len(trace.spans) < MAX_SPANS_PER_TRACE:
                trace.spans[span.span_id] = span
            else:
                trace.dropped += 1
            count += 1
        while len(self._traces) > self.max_traces:
            self._traces.popitem(last=False)
        return count

    def __len__(self) -> int:
        return len(self._read())

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        found = self._read().get(trace_id.lower())
        if found is None:
            return None
        spans = sorted(found.spans.values(), key=lambda s: (s.start_us, s.span_id))
        return {
            **_summary(trace_id.lower(), spans),
            "droppedSpans": found.dropped,
            "spans": [s.to_json() for s in spans],
        }

    def summaries(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest `limit` traces (by start time), newest first."""
        rows = [_summary(tid, list(t.spans.values())) for tid, t in self._read().items()]
        rows.sort(key=lambda r: r["startUs"], reverse=True)
        return rows[: max(0, limit)]


def _root(spans: list[Span]) -> Span:
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_id is None or s.parent_id not in ids]
    return min(roots or spans, key=lambda s: s.start_us)


def _summary(trace_id: str, spans: list[Span]) -> dict[str, Any]:
    root = _root(spans)
    start = min(s.start_us for s in spans)
    end = max(s.start_us + s.duration_us for s in spans)
    return {
        "traceId": trace_id,
        "root": {"name": root.name, "service": root.service},
        "startUs": start,
        "durationUs": end - start,
        "spanCount": len(spans),
        "services": sorted({s.service for s in spans if s.service}),
    }


def add_routes(app: web.Application, store: TraceStore) -> None:
    """Serve the store's collector and query endpoints on `app`."""

    async def zipkin(request: web.Request) -> web.Response:
        try:
            if request.content_type == "application/x-protobuf":
                store.add_unread(parse_zipkin_proto(await request.read()))
            else:
                store.add(zipkin_spans(await request.json()))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        return web.Response(status=202)

    async def otlp(request: web.Request) -> web.Response:
        message = trace_service_pb2.ExportTraceServiceRequest()
        try:
            message.ParseFromString(await request.read())
        except DecodeError as exc:
            raise web.HTTPBadRequest(text=f"not an OTLP ExportTraceServiceRequest: {exc}") from exc
        store.add(otlp_spans(message))
        body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    async def traces(request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError as exc:
            raise web.HTTPBadRequest(text="limit is a number") from exc
        return web.json_response({"traces": store.summaries(limit)})

    async def one(request: web.Request) -> web.Response:
        found = store.trace(request.match_info["trace_id"])
        if found is None:
            raise web.HTTPNotFound(text="no such trace (it may have been evicted)")
        return web.json_response(found)

    app.router.add_post(ZIPKIN_PATH, zipkin)
    app.router.add_post(OTLP_HTTP_PATH, otlp)
    app.router.add_get("/traces", traces)
    app.router.add_get("/traces/{trace_id}", one)
