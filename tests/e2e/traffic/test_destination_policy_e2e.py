"""DestinationRule traffic policies, proven by real traffic through the client's sidecar:
outlier detection ejects and readmits a replica, a connection pool overflows fast,
consistent hashing pins keys, other balancers spread, connections are recycled after
maxRequestsPerConnection, and TLS is originated to an external HTTPS server."""

from __future__ import annotations

import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from labkit import Lab, eventually, replicas_of, statuses
from meshkit import get_json

from testpki import self_signed

ECHO = "http://echo:8080"
HOST = "echo.default.svc.cluster.local"
FAIL_V1_0 = {"x-echo-status": "503", "x-echo-fail-replica": "echo-v1-0"}


def dr(name: str, policy: str, host: str = "echo") -> str:
    """A DestinationRule for `host` with `policy` (YAML flow text) as its trafficPolicy."""
    return f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}}}
spec:
  host: {host}
  trafficPolicy: {policy}
"""


def to_subset(subset: str) -> str:
    """A VirtualService sending echo to one subset, without retries (each try is visible)."""
    return f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: echo-{subset}}}
spec:
  hosts: [echo]
  http: [{{route: [{{destination: {{host: echo, subset: {subset}}}}}], retries: {{attempts: 0}}}}]
"""


def stat(lab: Lab, subset: str, name: str) -> int:
    return lab.envoy_stats("client").get(f"cluster.outbound|8080|{subset}|{HOST}.{name}", 0)


def active_cluster(lab: Lab, name: str) -> dict[str, Any]:
    admin = lab.proxy("client")["admin"]
    dump = get_json(f"http://{admin}/config_dump?resource=dynamic_active_clusters")
    found = [c["cluster"] for c in dump["configs"] if c["cluster"]["name"] == name]
    assert found, f"no active cluster {name}"
    return dict(found[0])


async def test_outlier_detection_ejects_a_failing_replica_and_readmits_it(lab: Lab) -> None:
    base = 5.0
    policy = (
        "{outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 5s,"
        " maxEjectionPercent: 100}}"
    )
    with lab.config("od", dr("echo-od", policy) + to_subset("v1")):
        lab.reset_counts("echo-v1")
        started = time.monotonic()
        failing = await lab.send(f"{ECHO}/od", 8, headers=FAIL_V1_0, concurrency=1)
        assert statuses(failing)[503] >= 2  # echo-v1-0 failed twice in a row: ejected
        await eventually(
            lambda: stat(lab, "v1", "outlier_detection.ejections_active") == 1, 5, "an ejection"
        )
        ejected_seen = time.monotonic()
        # while ejected, every request goes to echo-v1-1, even ones echo-v1-0 would fail
        lab.reset_counts("echo-v1")
        during = await lab.send(f"{ECHO}/od", 20, headers=FAIL_V1_0, concurrency=4)
        assert statuses(during) == {200: 20}
        assert set(replicas_of(during)) == {"echo-v1-1"}
        assert time.monotonic() - started < base, "too slow to observe the ejection window"

        async def v1_0_serves_again() -> bool:
            await lab.send(f"{ECHO}/back", 4, concurrency=1)
            counts = lab.upstream_counts("echo-v1")
            return any("echo-v1-0" in name and c.get("/back", 0) for name, c in counts.items())

        await eventually(v1_0_serves_again, base + 8, "echo-v1-0 readmitted", interval=0.1)
        readmitted = time.monotonic()
        assert readmitted - started >= base  # not before baseEjectionTime
        assert readmitted - ejected_seen <= base + 1 + 3  # base + one interval + margin
        assert stat(lab, "v1", "outlier_detection.ejections_active") == 0


async def test_connection_pool_limit_overflows_fast_instead_of_queueing(lab: Lab) -> None:
    policy = "{connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}}"
    with lab.config("pool", dr("echo-pool", policy) + to_subset("v2")):
        before = stat(lab, "v2", "upstream_rq_pending_overflow")
        replies = await lab.send(
            f"{ECHO}/slow", 8, headers={"x-echo-delay-ms": "1500"}, concurrency=8
        )
        counts = statuses(replies)
        overflowed = [r for r in replies if r.status == 503]
        # one request on the one connection, one waiting; the rest are refused at once
        assert 1 <= counts[200] <= 3 and counts[200] + counts[503] == 8, counts
        assert len(overflowed) >= 5
        assert all(r.headers.get("x-envoy-overloaded") == "true" for r in overflowed)
        assert all(r.seconds < 1.0 for r in overflowed), [r.seconds for r in overflowed]
        assert all(r.seconds >= 1.4 for r in replies if r.status == 200)
        assert stat(lab, "v2", "upstream_rq_pending_overflow") - before == len(overflowed)


async def test_consistent_hash_pins_each_header_value_to_one_replica(lab: Lab) -> None:
    policy = "{loadBalancer: {consistentHash: {httpHeaderName: x-user}}}"
    with lab.config("hash", dr("echo-hash", policy)):
        assert active_cluster(lab, f"outbound|8080||{HOST}")["lb_policy"] == "RING_HASH"
        pinned: dict[str, str] = {}
        for user in (f"user-{i}" for i in range(12)):
            replies = await lab.send(f"{ECHO}/h", 6, headers={"x-user": user}, concurrency=3)
            seen = set(replicas_of(replies))
            assert len(seen) == 1, (user, seen)
            pinned[user] = seen.pop()
        assert len(set(pinned.values())) >= 2, pinned  # different keys spread


async def test_cookie_and_source_ip_hashing(lab: Lab) -> None:
    policy = "{loadBalancer: {consistentHash: {httpCookie: {name: sticky, path: /, ttl: 60s}}}}"
    with lab.config("cookie", dr("echo-cookie", policy)):
        (first,) = await lab.send(f"{ECHO}/c")
        assert "sticky=" in first.headers.get("Set-Cookie", ""), first.headers  # Envoy made it
        pinned = set()
        for _ in range(6):
            cookie = f"sticky={uuid.uuid4().hex}"
            replies = await lab.send(f"{ECHO}/c", 5, headers={"cookie": cookie}, concurrency=5)
            seen = set(replicas_of(replies))
            assert len(seen) == 1, (cookie, seen)
            pinned |= seen
        assert len(pinned) >= 2
    with lab.config(
        "source", dr("echo-source", "{loadBalancer: {consistentHash: {useSourceIp: true}}}")
    ):
        # every caller here is 127.0.0.1: one replica takes all
        assert len(set(replicas_of(await lab.send(f"{ECHO}/s", 30)))) == 1


async def test_least_request_and_random_balancers_spread_traffic(lab: Lab) -> None:
    for simple in ("LEAST_REQUEST", "RANDOM"):
        with lab.config("lb", dr("echo-lb", f"{{loadBalancer: {{simple: {simple}}}}}")):
            assert active_cluster(lab, f"outbound|8080||{HOST}")["lb_policy"] == simple
            replies = await lab.send(f"{ECHO}/lb", 60, concurrency=4)
            assert statuses(replies) == {200: 60}
            assert set(replicas_of(replies)) == {"echo-v1-0", "echo-v1-1", "echo-v2-0"}


async def test_max_requests_per_connection_recycles_upstream_connections(lab: Lab) -> None:
    async def new_connections(n: int) -> int:
        before = stat(lab, "", "upstream_cx_total")
        assert statuses(await lab.send(f"{ECHO}/m", n, concurrency=1)) == {200: n}
        return stat(lab, "", "upstream_cx_total") - before

    assert await new_connections(20) < 10  # kept-alive connections are reused
    policy = "{connectionPool: {http: {maxRequestsPerConnection: 1}}}"
    with lab.config("mrpc", dr("echo-mrpc", policy)):
        closed = stat(lab, "", "upstream_cx_max_requests")
        assert await new_connections(20) >= 20  # one connection per request
        assert stat(lab, "", "upstream_cx_max_requests") - closed >= 19


# --- TLS origination to an external HTTPS server --------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def https_server(cert: Path, key: Path) -> AsyncIterator[int]:
    """An HTTPS server in this test's event loop that answers with the SNI it was sent."""
    sni: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: sni.append(name)

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"secure": request.secure, "sni": sni[-1] if sni else None})

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield port
    finally:
        await runner.cleanup()


def external(port: int) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: secure}}
spec:
  hosts: [secure.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 8443, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]
"""


async def test_tls_simple_originates_tls_to_an_external_service(lab: Lab, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "secure.test")
    async with https_server(cert, key) as port:
        url = "http://secure.test:8443/hello"
        with lab.config("secure", external(port)):
            (plain,) = await lab.send(url)
            assert plain.status != 200  # plain HTTP to a TLS server fails
        tls = f"{{mode: SIMPLE, caCertificates: {cert}, sni: secure.test}}"
        with lab.config(
            "secure", external(port) + "---\n" + dr("secure", f"{{tls: {tls}}}", "secure.test")
        ):
            replies = await lab.send(url, 5)
            assert statuses(replies) == {200: 5}
            assert replies[0].body == {"secure": True, "sni": "secure.test"}
        # without `sni`, the request's host is sent and the certificate checked against it
        auto = f"{{tls: {{mode: SIMPLE, caCertificates: {cert}}}}}"
        with lab.config("secure", external(port) + "---\n" + dr("secure", auto, "secure.test")):
            (reply,) = await lab.send(url)
            assert (reply.status, reply.body["sni"]) == (200, "secure.test")
        # verification is real: a name the certificate does not carry is refused
        wrong = f"{{tls: {{mode: SIMPLE, caCertificates: {cert}, subjectAltNames: [other.test]}}}}"
        with lab.config("secure", external(port) + "---\n" + dr("secure", wrong, "secure.test")):
            (reply,) = await lab.send(url)
            assert reply.status == 503
