"""Protocols through the mesh: gRPC (h2c at both ends, grpc-status aware retries) and
WebSocket upgrades, client → client sidecar → server sidecar → app.

The test plays the `client` app. A gRPC client cannot use an HTTP proxy (it would send
CONNECT), so, as the local-mode contract says (docs/traffic/protocols.md), it dials the
sidecar's outbound listener (`PLAIT_OUTBOUND`, the `outbound` address in `plait status`)
and names the service in `:authority`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2, wrappers_pb2
from labkit import Lab

pytestmark = pytest.mark.e2e

GRPC_LAB = """
apiVersion: v1
kind: Service
metadata: {name: greeter}
spec:
  selector: {app: greeter}
  ports: [{name: grpc, port: 8080, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: greeter}
spec:
  replicas: 1
  selector: {matchLabels: {app: greeter}}
  template:
    metadata: {labels: {app: greeter, version: v1}}
    spec:
      serviceAccountName: greeter
      containers:
        - {name: greeter, image: plait/lab, command: [python, grpc_echo.py]}
"""
LAB_FILES = {"greeter.yaml": GRPC_LAB}

GREETER = "greeter:8080"
SAY = "/lab.Echo/Say"
FAIL_EVERY_OTHER = (("x-echo-fail-every", "2"),)


def _channel(address: str, authority: str | None = None) -> grpc.aio.Channel:
    options: list[tuple[str, Any]] = [("grpc.enable_http_proxy", 0)]
    if authority is not None:
        options.append(("grpc.default_authority", authority))
    return grpc.aio.insecure_channel(address, options=options)


async def say_through_mesh(
    lab: Lab, n: int, metadata: Sequence[tuple[str, str]] = ()
) -> list[tuple[grpc.StatusCode, dict[str, Any]]]:
    """n calls to greeter, one after another, from the client app through its sidecar."""
    out: list[tuple[grpc.StatusCode, dict[str, Any]]] = []
    async with _channel(lab.proxy("client")["outbound"], GREETER) as channel:
        say = channel.unary_unary(
            SAY,
            request_serializer=wrappers_pb2.StringValue.SerializeToString,
            response_deserializer=struct_pb2.Struct.FromString,
        )
        for i in range(n):
            try:
                reply = await say(
                    wrappers_pb2.StringValue(value=f"hello {i}"), metadata=metadata, timeout=10
                )
            except grpc.aio.AioRpcError as exc:
                out.append((exc.code(), {"details": exc.details()}))
            else:
                out.append((grpc.StatusCode.OK, json_format.MessageToDict(reply)))
    return out


async def _direct(lab: Lab, method: str) -> dict[str, Any]:
    """Call the greeter app itself (not through the mesh): its own counters."""
    async with _channel(lab.proxy("greeter")["app"]) as channel:
        call = channel.unary_unary(
            f"/lab.Echo/{method}",
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=struct_pb2.Struct.FromString,
        )
        doc: dict[str, Any] = json_format.MessageToDict(await call(empty_pb2.Empty(), timeout=5))
        return doc


async def greeter_calls(lab: Lab) -> int:
    return int((await _direct(lab, "Stats"))["counts"].get("Say", 0))


async def reset_greeter(lab: Lab) -> None:
    async with _channel(lab.proxy("greeter")["app"]) as channel:
        call = channel.unary_unary(
            "/lab.Echo/Reset",
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=empty_pb2.Empty.FromString,
        )
        await call(empty_pb2.Empty(), timeout=5)


def codes(results: list[tuple[grpc.StatusCode, dict[str, Any]]]) -> Counter[str]:
    return Counter(code.name for code, _ in results)


def retries_vs(retries: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: greeter}}
spec:
  hosts: [greeter]
  http:
  - route: [{{destination: {{host: greeter}}}}]
    retries: {retries}
"""


async def test_grpc_call_crosses_two_sidecars_over_h2c(lab: Lab) -> None:
    before = lab.envoy_stats("client")
    results = await say_through_mesh(lab, 5)

    assert codes(results) == {"OK": 5}, results
    greeter = lab.proxy("greeter")
    for i, (_, reply) in enumerate(results):
        assert reply["message"] == f"hello {i}"
        assert reply["replica"] == "greeter-0"
        # the inbound route of greeter's sidecar set this header: the call crossed it
        assert reply["sidecar"] == greeter["name"]
    # and the client's sidecar routed it to greeter's cluster, as HTTP/2
    after = lab.envoy_stats("client")
    cluster = "cluster.outbound|8080||greeter.default.svc.cluster.local"
    assert after[f"{cluster}.upstream_rq_200"] - before.get(f"{cluster}.upstream_rq_200", 0) == 5
    assert after[f"{cluster}.upstream_cx_http2_total"] >= 1
    # greeter's sidecar speaks h2c to the app (a gRPC server answers nothing else)
    app_port = greeter["app"].rsplit(":", 1)[1]
    inbound = lab.envoy_stats("greeter")
    assert inbound[f"cluster.inbound|{app_port}||.upstream_cx_http2_total"] >= 1
    assert inbound.get(f"cluster.inbound|{app_port}||.upstream_cx_http1_total", 0) == 0


async def test_grpc_status_aware_retries_turn_every_other_failure_into_success(lab: Lab) -> None:
    n = 20
    # No retries: every other call fails with UNAVAILABLE (in grpc-status, HTTP 200).
    with lab.config("greeter-vs", retries_vs("{attempts: 0}")):
        await reset_greeter(lab)
        results = await say_through_mesh(lab, n, FAIL_EVERY_OTHER)
        assert codes(results) == {"OK": n // 2, "UNAVAILABLE": n // 2}
        assert await greeter_calls(lab) == n

    # `5xx` looks at the HTTP status only: a gRPC failure is not retried.
    with lab.config("greeter-vs", retries_vs("{attempts: 3, retryOn: 5xx}")):
        await reset_greeter(lab)
        results = await say_through_mesh(lab, n, FAIL_EVERY_OTHER)
        assert codes(results) == {"OK": n // 2, "UNAVAILABLE": n // 2}
        assert await greeter_calls(lab) == n

    # `unavailable` reads grpc-status: every call succeeds, the upstream saw each twice.
    with lab.config("greeter-vs", retries_vs("{attempts: 3, retryOn: unavailable}")):
        await reset_greeter(lab)
        results = await say_through_mesh(lab, n, FAIL_EVERY_OTHER)
        assert codes(results) == {"OK": n}, results
        assert await greeter_calls(lab) == 2 * n
        assert all(reply["count"] % 2 == 0 for _, reply in results)


async def test_websocket_upgrade_crosses_the_mesh(lab: Lab) -> None:
    before = lab.envoy_stats("client")
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.ws_connect("http://echo:8080/ws", proxy=lab.client_proxy) as ws,
    ):
        replies = []
        for i in range(5):
            await ws.send_str(f"message {i}")
            replies.append(await asyncio.wait_for(ws.receive_str(), 5))
    replica = replies[0].split(":", 1)[0]
    assert replica.startswith("echo-v"), replies
    # one connection, one replica, every message echoed in order
    assert replies == [f"{replica}: message {i}" for i in range(5)]
    after = lab.envoy_stats("client")
    upgrades = "http.outbound_http_proxy.downstream_cx_upgrades_total"
    assert after[upgrades] - before.get(upgrades, 0) == 1
