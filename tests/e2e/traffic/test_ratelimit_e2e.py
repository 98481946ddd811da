"""RateLimit (policy.plait.dev): local token buckets in the server's inbound sidecar.

Traffic goes to `echo` pinned to subset v2 (one replica, `echo-v2-0`), so one bucket sees
every request and the arithmetic is the token bucket's: over a saturated interval of D
seconds starting with a full bucket, admitted = burst + rate × D.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp
from labkit import Lab, statuses

ECHO = "http://echo:8080"
TO_V2 = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo-v2}
spec:
  hosts: [echo]
  http: [{route: [{destination: {host: echo, subset: v2}}]}]
"""
RATE, BURST = 20, 10
SERVICE_WIDE = f"""apiVersion: policy.plait.dev/v1alpha1
kind: RateLimit
metadata: {{name: echo-v2}}
spec:
  selector: {{matchLabels: {{app: echo, version: v2}}}}
  limits: [{{requests: {RATE}, unit: second, burst: {BURST}}}]
"""
PER_ROUTE = """apiVersion: policy.plait.dev/v1alpha1
kind: RateLimit
metadata: {name: echo-routes}
spec:
  targetRef: {kind: Service, name: echo}
  limits:
  - name: limited
    match: [{uri: {prefix: /limited}}, {uri: {prefix: /also-limited}}]
    requests: 6
    unit: hour
"""
LIMITED_STAT = "http_local_rate_limiter.http_local_rate_limit.rate_limited"
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


@dataclass(frozen=True)
class Shot:
    sent: float  # monotonic seconds
    status: int
    headers: dict[str, str]


async def sustained(lab: Lab, url: str, seconds: float, concurrency: int = 6) -> list[Shot]:
    """Requests back to back from `concurrency` workers for `seconds`, via the client sidecar."""
    shots: list[Shot] = []
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=10),
        connector=aiohttp.TCPConnector(limit=concurrency),
    ) as session:

        async def worker() -> None:
            while (sent := time.monotonic()) < deadline:
                async with session.get(url, proxy=lab.client_proxy) as r:
                    await r.read()
                    shots.append(Shot(sent, r.status, {k.lower(): v for k, v in r.headers.items()}))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(shots, key=lambda s: s.sent)


async def test_a_service_wide_limit_admits_its_rate_and_answers_429_beyond(lab: Lab) -> None:
    lab.reset_counts("echo-v2")
    before = lab.envoy_stats("echo-v2").get(LIMITED_STAT, 0)
    with lab.config("to-v2", TO_V2), lab.config("limit", SERVICE_WIDE):
        shots = await sustained(lab, f"{ECHO}/rate", 3.0)
    counted = Counter(s.status for s in shots)
    assert set(counted) == {200, 429}, counted
    start, end = shots[0].sent, shots[-1].sent
    admitted = [s for s in shots if s.status == 200]
    per_second = sorted(Counter(int(s.sent - start) for s in admitted).items())
    # burst + rate × duration, ±10%
    expected = BURST + RATE * (end - start)
    assert abs(len(admitted) - expected) <= 0.1 * expected, (len(admitted), expected, per_second)
    # after the first second (the burst), the rate itself, ±10%
    steady = [s for s in admitted if s.sent >= start + 1.0]
    steady_expected = RATE * (end - start - 1.0)
    assert abs(len(steady) - steady_expected) <= 0.1 * steady_expected, per_second
    limited = next(s for s in shots if s.status == 429)
    assert all(h in limited.headers for h in RATE_HEADERS), limited.headers
    assert limited.headers["x-ratelimit-limit"] == str(BURST)
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert limited.headers["x-local-rate-limit"] == "true"
    assert "x-ratelimit-limit" in admitted[0].headers
    # the sidecar answered the 429s: the app saw exactly the admitted requests
    (counts,) = lab.upstream_counts("echo-v2").values()
    assert counts.get("/rate") == len(admitted)
    assert lab.envoy_stats("echo-v2")[LIMITED_STAT] - before == counted[429]


async def test_a_per_route_limit_limits_only_its_paths_and_lifts_when_removed(lab: Lab) -> None:
    with lab.config("to-v2", TO_V2):
        with lab.config("routes", PER_ROUTE):
            limited = await lab.send(f"{ECHO}/limited/x", 10, concurrency=2)
            also = await lab.send(f"{ECHO}/also-limited", 10, concurrency=2)
            free = await lab.send(f"{ECHO}/free", 30)
        # one bucket for both alternatives of the limit: 6 in all, not 6 per path
        assert statuses(limited + also) == {200: 6, 429: 14}
        assert statuses(free) == {200: 30}
        assert not [h for h in free[0].headers if h.lower().startswith("x-ratelimit")]
        # removed: lifted at once, also on the connections the client's sidecar keeps open
        # (the inbound route table comes over RDS, which applies to open connections)
        lifted = await lab.send(f"{ECHO}/limited/x", 30)
    assert statuses(lifted) == {200: 30}
