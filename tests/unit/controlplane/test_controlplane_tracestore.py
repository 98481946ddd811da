"""TraceStore: bounded by traces and spans, summaries newest first, ids normalized."""

from __future__ import annotations

import pytest

from plait.controlplane import tracestore
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
