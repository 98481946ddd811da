"""TraceStore: bounded by traces and spans, summaries newest first, ids normalized."""

from __future__ import annotations

import pytest

from plait.controlplane import tracestore, zipkinproto
from plait.controlplane.tracestore import Span, TraceStore, zipkin_spans


def span(
    trace: str, sid: str, parent: str | None = None, start: int = 0, service: str = "a"
) -> Span:
    return Span(
        trace.rjust(32, "0"), sid.rjust(16, "0"), parent, "op", service, "SERVER", start, 10
    )


def test_the_oldest_updated_trace_is_evicted_first() -> None:
    store = TraceStore(max_traces=2)
    store.add([span("1", "1"), span("2", "2")])
    store.add([span("1", "3", parent="1".rjust(16, "0"))])  # trace 1 is now the freshest
    store.add([span("3", "4")])
    assert len(store) == 2
    assert store.trace("2".rjust(32, "0")) is None
    assert store.trace("1".rjust(32, "0"))["spanCount"] == 2  # type: ignore[index]


def test_a_trace_keeps_at_most_max_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracestore, "MAX_SPANS_PER_TRACE", 2)
    store = TraceStore()
    store.add([span("1", str(i)) for i in range(1, 5)])
    found = store.trace("1".rjust(32, "0"))
    assert found is not None and found["spanCount"] == 2 and found["droppedSpans"] == 2


def test_summaries_are_newest_first_with_the_root_span() -> None:
    store = TraceStore()
    store.add([span("1", "1", start=100), span("2", "2", start=300, service="gw")])
    store.add([span("2", "3", parent="2".rjust(16, "0"), start=305, service="echo")])
    newest, oldest = store.summaries()
    assert newest["root"]["service"] == "gw" and newest["services"] == ["echo", "gw"]
    assert oldest["startUs"] == 100
    assert store.summaries(limit=1) == [newest]


def test_zipkin_64_bit_ids_are_padded_and_bad_ids_refused() -> None:
    (s,) = zipkin_spans([{"traceId": "ABC", "id": "1", "timestamp": 5, "duration": 2}])
    assert s.trace_id == "abc".rjust(32, "0") and s.span_id == "1".rjust(16, "0")
    with pytest.raises(ValueError):
        zipkin_spans([{"traceId": "xyz", "id": "1"}])


def proto_batch(trace: int, spans: int) -> zipkinproto.ListOfSpans:
    message = zipkinproto.ListOfSpans()
    for i in range(spans):
        message.spans.add(
            trace_id=trace.to_bytes(16, "big"), id=(i + 1).to_bytes(8, "big"), timestamp=i
        )
    return message


def test_unread_batches_join_the_store_in_order_when_it_is_read() -> None:
    store = TraceStore(max_traces=2)
    for trace in (1, 2, 3):
        store.add_unread(proto_batch(trace, 3))
    assert len(store) == 2  # read: trace 1 was evicted as it would have been at once
    assert store.trace(f"{3:032x}")["spanCount"] == 3  # type: ignore[index]
    assert store.trace(f"{1:032x}") is None


def test_at_most_max_unread_spans_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracestore, "MAX_UNREAD_SPANS", 10)
    store = TraceStore()
    for trace in range(1, 6):
        store.add_unread(proto_batch(trace, 4))  # 20 spans sent, 10 may wait
    assert store.dropped_unread == 12  # the three oldest batches, never converted
    assert {s["traceId"] for s in store.summaries()} == {f"{t:032x}" for t in (4, 5)}


def test_a_protobuf_batch_with_a_bad_id_is_refused_whole() -> None:
    message = proto_batch(1, 2)
    message.spans[1].id = b"\x01"
    with pytest.raises(ValueError, match="8-byte id"):
        tracestore.parse_zipkin_proto(message.SerializeToString())
