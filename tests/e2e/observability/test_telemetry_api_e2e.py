"""The Telemetry API on running proxies: a namespace-level Telemetry turning tracing
sampling to 0 and one turning access logging off take effect without restarting
anything, and a workload-level Telemetry overrides the namespace's for its workload.

Absence is checked against a later positive control, never a bare wait: Envoy writes a
proxy's access log in order and its tracer posts spans in order, so once a later line or
span has arrived an earlier one that was going to arrive would have."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from labkit import Lab, statuses
from meshkit import get_json

ECHO = "http://echo:8080"
TELEMETRY = """apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: {name}}}
spec: {spec}
"""
NO_SAMPLING = TELEMETRY.format(name="ns-tracing", spec="{tracing: [{randomSamplingPercentage: 0}]}")
CLIENT_SAMPLES = TELEMETRY.format(
    name="client-tracing",
    spec="{selector: {matchLabels: {app: client}}, tracing: [{randomSamplingPercentage: 100}]}",
)
NO_LOGS = TELEMETRY.format(name="ns-logs", spec="{accessLogging: [{disabled: true}]}")
ECHO_LOGS = TELEMETRY.format(
    name="echo-logs",
    spec="{selector: {matchLabels: {app: echo}}, accessLogging: [{disabled: false}]}",
)


def traces_url(lab: Lab, trace_id: str) -> str:
    state = json.loads((lab.mesh.root / ".plait" / "state.json").read_text())
    return str(state["status_url"]).replace("/status", f"/traces/{trace_id}")


def stored(lab: Lab, trace_id: str) -> bool:
    try:
        return int(get_json(traces_url(lab, trace_id))["spanCount"]) > 0
    except OSError:
        return False  # 404: no span of that trace


async def until(check: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.1)


async def send_traced(lab: Lab, via: str) -> tuple[str, bool]:
    """One request from `via`'s sidecar without a trace context: the trace id its
    sidecar started and whether it sampled it (the W3C flags the app received)."""
    (reply,) = await lab.send(f"{ECHO}/t-{uuid.uuid4().hex[:8]}", via=via)
    assert reply.status == 200
    headers = {k.lower(): v for k, v in reply.body["headers"].items()}
    _version, trace_id, _span, flags = headers["traceparent"].split("-")
    return trace_id, flags == "01"


def logged_paths(lab: Lab, workload_prefix: str) -> set[str]:
    paths: set[str] = set()
    for p in lab.mesh.status_proxies():
        log = p.get("accessLog")
        if p["workload"].startswith(workload_prefix) and log and Path(log).exists():
            paths |= {json.loads(line).get("path") for line in Path(log).read_text().splitlines()}
    return paths


async def test_namespace_sampling_zero_and_a_workload_override(lab: Lab) -> None:
    with lab.config("ns-tracing", NO_SAMPLING):
        unsampled, sampled = await send_traced(lab, "client")
        assert not sampled
        from_echo, echo_sampled = await send_traced(lab, "echo-v1")
        assert not echo_sampled
        with lab.config("client-tracing", CLIENT_SAMPLES):
            control, client_sampled = await send_traced(lab, "client")
            assert client_sampled  # the workload's 100% overrides the namespace's 0
            _id, echo_sampled = await send_traced(lab, "echo-v1")
            assert not echo_sampled  # other workloads keep the namespace's setting
            await until(lambda: stored(lab, control), f"the sampled trace {control} stored")
        assert not stored(lab, unsampled) and not stored(lab, from_echo)
    # without the Telemetries, the mesh default (100%) is back
    _id, sampled = await send_traced(lab, "client")
    assert sampled


async def test_namespace_access_logging_off_and_a_workload_override(lab: Lab) -> None:
    quiet, loud = f"/quiet-{uuid.uuid4().hex[:8]}", f"/loud-{uuid.uuid4().hex[:8]}"
    with lab.config("ns-logs", NO_LOGS):
        assert statuses(await lab.send(f"{ECHO}{quiet}", 2)) == {200: 2}
        with lab.config("echo-logs", ECHO_LOGS):
            assert statuses(await lab.send(f"{ECHO}{loud}", 2)) == {200: 2}
            # echo's workload-level Telemetry turned its log back on
            await until(lambda: loud in logged_paths(lab, "echo"), f"{loud} in echo's log")
    # with logging back on everywhere, a later request is logged by the client's sidecar
    after = f"/after-{uuid.uuid4().hex[:8]}"
    assert statuses(await lab.send(f"{ECHO}{after}", 1)) == {200: 1}
    await until(lambda: after in logged_paths(lab, "client"), f"{after} in client's log")
    await until(lambda: after in logged_paths(lab, "echo"), f"{after} in echo's log")
    client, echo = logged_paths(lab, "client"), logged_paths(lab, "echo")
    assert quiet not in client and quiet not in echo  # the namespace's Telemetry held
    assert loud not in client  # the client stayed under the namespace's setting
