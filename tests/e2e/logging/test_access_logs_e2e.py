"""Access logs on a running mesh: every proxy writes one JSON object per request to its own
file, with identities and the trace id; `plait logs` reads, merges and follows them."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labkit import Lab, statuses
from meshkit import plait

from plait.local.accesslogs import trace_id_of

CLIENT_ID = "spiffe://cluster.local/ns/default/sa/client"
ECHO_ID = "spiffe://cluster.local/ns/default/sa/echo"
GATEWAY_ID = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
ECHO_CLUSTER = "outbound|8080||echo.default.svc.cluster.local"
ECHO_WORKLOADS = ("echo-v1", "echo-v2")

GATEWAY_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: logs-edge}
spec:
  hosts: [logs.lab.example]
  gateways: [lab-gateway]
  http: [{route: [{destination: {host: echo}}]}]
"""


def trace_context() -> tuple[str, dict[str, str]]:
    """A fresh W3C trace id and the `traceparent` header that carries it."""
    trace = uuid.uuid4().hex
    return trace, {"traceparent": f"00-{trace}-{uuid.uuid4().hex[:16]}-01"}


def unique_path(what: str) -> str:
    return f"/{what}-{uuid.uuid4().hex[:8]}"


def records(lab: Lab, workloads: Sequence[str]) -> list[dict[str, Any]]:
    """Every JSON line in the access logs of these workloads' proxies (from the files
    `plait status` names)."""
    out = []
    for p in lab.mesh.status_proxies():
        if p["workload"] in workloads and p.get("accessLog"):
            path = Path(p["accessLog"])
            if path.exists():
                out += [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return out


async def logged(
    lab: Lab, workloads: Sequence[str], path: str, n: int, timeout: float = 15.0
) -> list[dict[str, Any]]:
    """The records for `path`, once there are n (Envoy flushes its log every second)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in records(lab, workloads) if r.get("path") == path]
        if len(found) >= n:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(found)} of {n} records for {path} in {workloads}")
        await asyncio.sleep(0.1)


async def test_both_sidecars_log_the_request_with_identities_and_the_trace_id(lab: Lab) -> None:
    trace, headers = trace_context()
    path = unique_path("both")
    replies = await lab.send(f"http://echo:8080{path}", 3, headers=headers)
    assert statuses(replies) == {200: 3}

    inbound = await logged(lab, ECHO_WORKLOADS, path, 3)
    for r in inbound:
        assert r["direction"] == "inbound"
        assert r["proxy"].startswith("sidecar~echo-v")
        assert (r["method"], r["response_code"], r["response_flags"]) == ("GET", 200, "-")
        assert r["downstream_peer_uri_san"] == CLIENT_ID  # the caller, from its certificate
        assert r["downstream_local_uri_san"] == ECHO_ID
        assert trace in r["traceparent"]
        assert trace_id_of(r) == trace
        assert isinstance(r["duration"], int)
        assert r["start_time"].endswith("Z")

    outbound = await logged(lab, ["client"], path, 3)
    for r in outbound:
        assert r["direction"] == "outbound"
        assert r["proxy"] == "sidecar~client-0.default"
        assert r["response_code"] == 200
        assert r["upstream_cluster"] == ECHO_CLUSTER
        assert r["upstream_peer_uri_san"] == ECHO_ID
        assert r["authority"] == "echo:8080"
        assert r["upstream_host"].startswith("127.0.0.1:")
        assert trace_id_of(r) == trace
    assert {r["request_id"] for r in inbound} == {r["request_id"] for r in outbound}


async def test_plait_logs_merges_the_replicas_as_json_and_as_lines(lab: Lab) -> None:
    trace, headers = trace_context()
    path = unique_path("cli")
    assert statuses(await lab.send(f"http://echo:8080{path}", 6, headers=headers)) == {200: 6}
    await logged(lab, ECHO_WORKLOADS, path, 6)
    root = str(lab.mesh.root)

    result = plait("logs", "echo", root, "-o", "json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    ours = [x for x in lines if x["path"] == path]
    assert len(ours) == 6
    assert all(x["trace_id"] == trace and x["response_code"] == 200 for x in ours)
    assert {x["replica"] for x in ours} <= {"echo-v1-0", "echo-v1-1", "echo-v2-0"}
    times = [x["start_time"] for x in lines]
    assert times == sorted(times)  # merged by time across replicas

    text = plait("logs", "echo", root, "--since", "5m")
    assert text.returncode == 0, text.stderr
    mine = [x for x in text.stdout.splitlines() if f" {path} " in x]
    assert len(mine) == 6
    assert all(f"trace={trace}" in x and f"peer={CLIENT_ID}" in x for x in mine), mine

    app = plait("logs", "echo-v1-0", root, "--app")
    assert app.returncode == 0, app.stderr
    assert all(x.startswith("[echo-v1-0] ") for x in app.stdout.splitlines())


async def test_the_gateway_logs_its_hop_with_the_same_trace_id(lab: Lab) -> None:
    trace, headers = trace_context()
    path = unique_path("edge")
    with lab.config("logs-edge", GATEWAY_VS):
        replies = await lab.send(
            path, 2, via="gateway", headers={**headers, "Host": "logs.lab.example"}
        )
    assert statuses(replies) == {200: 2}
    (edge, _) = await logged(lab, ["istio-ingressgateway"], path, 2)
    assert edge["direction"] == "gateway"
    assert edge["response_code"] == 200
    assert edge["upstream_cluster"] == ECHO_CLUSTER
    assert edge["upstream_peer_uri_san"] == ECHO_ID
    assert trace_id_of(edge) == trace
    inbound = await logged(lab, ECHO_WORKLOADS, path, 2)
    assert {r["downstream_peer_uri_san"] for r in inbound} == {GATEWAY_ID}
    assert {trace_id_of(r) for r in inbound} == {trace}
    result = plait("logs", "istio-ingressgateway", str(lab.mesh.root), "-o", "json")
    assert [x["path"] for x in map(json.loads, result.stdout.splitlines())].count(path) == 2


async def _line_with(stream: asyncio.StreamReader, needle: str, deadline: float) -> str:
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"`plait logs -f` printed no line with {needle!r} in time")
        raw = await asyncio.wait_for(stream.readline(), remaining)
        if not raw:
            raise AssertionError("`plait logs -f` ended")
        if needle in raw.decode():
            return raw.decode()


async def test_plait_logs_follow_prints_new_requests(lab: Lab) -> None:
    before, after = unique_path("before"), unique_path("after")
    assert statuses(await lab.send(f"http://echo:8080{before}")) == {200: 1}
    await logged(lab, ECHO_WORKLOADS, before, 1)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plait", "logs", "echo", str(lab.mesh.root), "-f", "-o", "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        await _line_with(proc.stdout, before, time.monotonic() + 20)  # what was there
        _, headers = trace_context()
        assert statuses(await lab.send(f"http://echo:8080{after}", headers=headers)) == {200: 1}
        line = json.loads(await _line_with(proc.stdout, after, time.monotonic() + 15))
        assert line["direction"] == "inbound"
        assert line["response_code"] == 200
        assert proc.returncode is None  # still following
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
