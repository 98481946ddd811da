"""One gateway request through the shop is one trace: a span from every hop it crosses,
stored by the control plane's own trace store, and the same trace id in the access logs
of every proxy on the way.

The gateway starts the trace (the request carries no trace context); each sidecar makes a
server span for its inbound request and a client span per outbound call; the shop apps
forward the trace headers (`examples/shop/app/shopkit.py` TRACE_HEADERS), so the client
spans of a service are children of its server span. The invoice checkout crosses every
HTTP service of the shop: gateway → frontend → reviews, orders → inventory, payment →
risk-assessment.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from meshkit import Mesh, get_json, plait

T = TypeVar("T")

GATEWAY = "istio-ingressgateway.istio-system"
# caller → callee, as span service names (Istio's WORKLOAD.NAMESPACE); reviews is v1 only
# (examples/shop/virtual-services.yaml)
EDGES = (
    (GATEWAY, "frontend.default"),
    ("frontend.default", "reviews-v1.default"),
    ("frontend.default", "orders.default"),
    ("orders.default", "inventory.default"),
    ("orders.default", "payment.default"),
    ("payment.default", "risk-assessment.default"),
)
HOPS = {service for edge in EDGES for service in edge}
# `plait logs` target → (path of its inbound request, SPIFFE service account of its caller)
INBOUND = {
    "frontend": ("/checkout?item=book&payment=invoice", None),
    "reviews": ("/reviews/book", "frontend"),
    "orders": ("/orders", "frontend"),
    "inventory": ("/reserve", "orders"),
    "payment": ("/charge", "orders"),
    "risk-assessment": ("/assess", "payment"),
}


def wait_for(produce: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `produce` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = produce()
        except (OSError, ValueError, KeyError):
            found = None
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)


def chain(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every service document in a shop response, depth first."""
    out = [doc]
    for call in doc.get("calls", []):
        if isinstance(call.get("response"), dict):
            out += chain(call["response"])
    return out


def get(mesh: Mesh, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{mesh.gateway}{path}", timeout=10) as resp:
        assert resp.status == 200
        doc: dict[str, Any] = json.loads(resp.read())
        return doc


def traced_id(doc: dict[str, Any]) -> str:
    """The trace id every app on the chain saw, in W3C and in B3 form (both injected)."""
    ids = set()
    for service in chain(doc):
        trace = service.get("trace") or {}
        assert "traceparent" in trace and "x-b3-traceid" in trace, service
        ids.add(trace["traceparent"].split("-")[1])
        ids.add(trace["x-b3-traceid"])
    assert len(ids) == 1, ids
    return str(ids.pop())


def stored_trace(mesh: Mesh, trace_id: str, complete: Callable[[dict[str, Any]], bool]) -> Any:
    """The trace in the control plane's store once `complete` says so (Envoy's Zipkin
    tracer flushes every 5 spans or 5 s)."""
    state = json.loads((mesh.root / ".plait" / "state.json").read_text())
    url = state["status_url"].replace("/status", f"/traces/{trace_id}")

    def fetch() -> Any:
        try:
            trace = get_json(url)
        except urllib.error.HTTPError:
            return None
        return trace if complete(trace) else None

    return wait_for(fetch, 30.0, f"trace {trace_id} complete in the store")


def has_edges(edges: tuple[tuple[str, str], ...]) -> Callable[[dict[str, Any]], bool]:
    def complete(trace: dict[str, Any]) -> bool:
        spans = {s["spanId"]: s for s in trace["spans"]}
        return all(parent_of(spans, callee, caller) is not None for caller, callee in edges)

    return complete


def parent_of(spans: dict[str, Any], callee: str, caller: str) -> Any:
    """The caller's span that is the parent of a server span of `callee`, if any."""
    for span in spans.values():
        parent = spans.get(span["parentId"] or "")
        if span["service"] == callee and parent is not None and parent["service"] == caller:
            return parent
    return None


def logged(mesh: Mesh, target: str, trace_id: str) -> list[dict[str, Any]] | None:
    """The `plait logs TARGET -o json` records carrying `trace_id` (None while there are none)."""
    result = plait("logs", target, str(mesh.root), "-o", "json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    mine = [r for r in records if r.get("trace_id") == trace_id]
    return mine or None


def test_a_gateway_checkout_is_one_trace_with_a_span_per_hop(shop: Mesh) -> None:
    doc = get(shop, "/checkout?item=book&payment=invoice")
    assert doc["checkout"] == "confirmed", doc
    assert {d["service"] for d in chain(doc)} >= set(INBOUND)
    trace_id = traced_id(doc)

    trace = stored_trace(shop, trace_id, has_edges(EDGES))

    spans = {s["spanId"]: s for s in trace["spans"]}
    assert {s["traceId"] for s in spans.values()} == {trace_id}
    assert set(trace["services"]) == HOPS, trace["services"]
    # one tree, rooted at the gateway: every other span's parent is in this trace
    roots = [s for s in spans.values() if s["parentId"] not in spans]
    assert [r["service"] for r in roots] == [GATEWAY], roots
    assert trace["root"]["service"] == GATEWAY
    for caller, callee in EDGES:
        parent = parent_of(spans, callee, caller)
        assert parent is not None, (caller, callee)
        if caller == GATEWAY:
            continue
        # a sidecar's client span continues the server span of the request the app was
        # serving: the app forwarded the trace context
        assert parent["kind"] == "CLIENT", parent
        served = spans[parent["parentId"]]
        assert (served["service"], served["kind"]) == (caller, "SERVER"), served
    for callee in HOPS - {GATEWAY}:
        kinds = [s["kind"] for s in spans.values() if s["service"] == callee]
        assert kinds.count("SERVER") == 1, (callee, kinds)

    # the same trace id in the access logs of every proxy the request crossed
    gateway = wait_for(
        lambda: logged(shop, "istio-ingressgateway", trace_id), 15.0, "gateway access log"
    )
    assert [r["path"] for r in gateway] == [INBOUND["frontend"][0]], gateway
    for target, (path, caller_sa) in INBOUND.items():
        records = wait_for(partial(logged, shop, target, trace_id), 15.0, f"{target} log")
        inbound = [r for r in records if r["direction"] == "inbound"]
        assert [r["path"] for r in inbound] == [path], (target, records)
        if caller_sa is not None:
            peer = f"spiffe://cluster.local/ns/default/sa/{caller_sa}"
            assert inbound[0]["downstream_peer_uri_san"] == peer, inbound
    for caller in ("frontend", "orders", "payment"):
        records = logged(shop, caller, trace_id) or []
        calls = {r["path"] for r in records if r["direction"] == "outbound"}
        expected = {path for path, sa in INBOUND.values() if sa == caller}
        assert calls == expected, (caller, records)

    shown = plait("traces", str(shop.root), trace_id)
    assert shown.returncode == 0, shown.stderr
    for service in HOPS:
        assert service in shown.stdout, shown.stdout


def test_the_grpc_hop_joins_the_product_pages_trace(shop: Mesh) -> None:
    doc = get(shop, "/product/book")
    assert doc["recommended"] == ["lamp", "poster"], doc
    trace_id = traced_id(doc)
    edges = (
        (GATEWAY, "frontend.default"),
        ("frontend.default", "reviews-v1.default"),
        ("frontend.default", "recommendations.default"),
    )
    trace = stored_trace(shop, trace_id, has_edges(edges))
    spans = {s["spanId"]: s for s in trace["spans"]}
    grpc_server = next(s for s in spans.values() if s["service"] == "recommendations.default")
    assert grpc_server["kind"] == "SERVER"
    assert spans[grpc_server["parentId"]]["kind"] == "CLIENT"
