"""Tracing on a running mesh: every hop makes a span, the trace id a caller sends in
`traceparent` (W3C) or `x-b3-traceid` (B3) is the trace's, the control plane's own store
keeps the spans (`/traces`, `plait traces`), and access logs carry the same trace id."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from labkit import Lab, statuses
from meshkit import get_json, plait

ECHO_SERVICES = {"echo-v1.default", "echo-v2.default"}
GATEWAY_SERVICE = "istio-ingressgateway.istio-system"

GATEWAY_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: traces-edge}
spec:
  hosts: [traces.lab.example]
  gateways: [lab-gateway]
  http: [{route: [{destination: {host: echo}}]}]
"""


def traceparent() -> tuple[str, dict[str, str]]:
    trace = uuid.uuid4().hex
    return trace, {"traceparent": f"00-{trace}-{uuid.uuid4().hex[:16]}-01"}


def traces_url(lab: Lab, tail: str = "") -> str:
    status_url: str = json.loads((lab.mesh.root / ".plait" / "state.json").read_text())[
        "status_url"
    ]
    return status_url.replace("/status", "/traces" + tail)


async def stored(lab: Lab, trace_id: str, spans: int, timeout: float = 15.0) -> dict[str, Any]:
    """The stored trace once it has `spans` spans (Envoy's Zipkin tracer flushes every 5 s
    or every 5 spans)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = get_json(traces_url(lab, f"/{trace_id}"))
            if last["spanCount"] >= spans:
                return dict(last)
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"trace {trace_id} did not reach {spans} spans: {last}")


async def logged_trace_ids(lab: Lab, workload_prefix: str, path: str) -> set[str | None]:
    """`trace_id` (Envoy's %TRACE_ID%) of the access-log lines for `path` written by the
    proxies of workloads starting with `workload_prefix` (Envoy flushes every second)."""
    deadline = time.monotonic() + 15.0
    while True:
        found: set[str | None] = set()
        for p in lab.mesh.status_proxies():
            log = p.get("accessLog")
            if p["workload"].startswith(workload_prefix) and log and Path(log).exists():
                for line in Path(log).read_text().splitlines():
                    record = json.loads(line)
                    if record.get("path") == path:
                        found.add(record.get("trace_id"))
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def test_a_mesh_request_has_a_client_and_a_server_span_in_the_callers_trace(
    lab: Lab,
) -> None:
    trace_id, headers = traceparent()
    replies = await lab.send("http://echo:8080/traced", headers=headers)
    assert statuses(replies) == {200: 1}
    trace = await stored(lab, trace_id, 2)
    assert trace["traceId"] == trace_id
    services = {s["service"] for s in trace["spans"]}
    assert "client.default" in services
    assert services & ECHO_SERVICES
    client = next(s for s in trace["spans"] if s["service"] == "client.default")
    server = next(s for s in trace["spans"] if s["service"] in ECHO_SERVICES)
    assert client["kind"] == "CLIENT" and server["kind"] == "SERVER"
    assert server["parentId"] == client["spanId"]  # the sidecars propagated the context
    # the app saw the trace context the server sidecar continued
    echoed = {k.lower(): v for k, v in replies[0].body["headers"].items()}
    assert trace_id in echoed["traceparent"]
    # both sidecars' access logs carry the trace id Envoy's tracer used
    assert await logged_trace_ids(lab, "client", "/traced") == {trace_id}
    assert await logged_trace_ids(lab, "echo", "/traced") == {trace_id}


async def test_a_gateway_request_is_one_trace_with_the_gateway_and_echos_sidecar(
    lab: Lab,
) -> None:
    trace_id, headers = traceparent()
    with lab.config("traces-edge", GATEWAY_VS):
        replies = await lab.send(
            "/edge", via="gateway", headers={"Host": "traces.lab.example", **headers}
        )
    assert statuses(replies) == {200: 1}
    trace = await stored(lab, trace_id, 2)
    services = {s["service"] for s in trace["spans"]}
    assert GATEWAY_SERVICE in services and services & ECHO_SERVICES, services
    gateway = next(s for s in trace["spans"] if s["service"] == GATEWAY_SERVICE)
    server = next(s for s in trace["spans"] if s["service"] in ECHO_SERVICES)
    assert server["parentId"] == gateway["spanId"]
    assert await logged_trace_ids(lab, "istio-ingressgateway", "/edge") == {trace_id}

    listed = plait("traces", str(lab.mesh.root), "--limit", "50", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    summary = next(t for t in json.loads(listed.stdout)["traces"] if t["traceId"] == trace_id)
    assert summary["root"]["service"] == GATEWAY_SERVICE
    assert GATEWAY_SERVICE in summary["services"]
    shown = plait("traces", str(lab.mesh.root), trace_id)
    assert shown.returncode == 0, shown.stderr
    assert trace_id in shown.stdout and GATEWAY_SERVICE in shown.stdout
    missing = plait("traces", str(lab.mesh.root), uuid.uuid4().hex)
    assert missing.returncode == 1


async def test_b3_headers_continue_the_callers_trace(lab: Lab) -> None:
    trace_id = uuid.uuid4().hex
    headers = {"x-b3-traceid": trace_id, "x-b3-spanid": uuid.uuid4().hex[:16], "x-b3-sampled": "1"}
    replies = await lab.send("http://echo:8080/b3", headers=headers)
    assert statuses(replies) == {200: 1}
    trace = await stored(lab, trace_id, 2)
    echoed = {k.lower(): v for k, v in replies[0].body["headers"].items()}
    assert echoed["x-b3-traceid"] == trace_id  # B3 injected downstream ...
    assert trace_id in echoed["traceparent"]  # ... and W3C alongside it
    assert trace["spanCount"] >= 2
