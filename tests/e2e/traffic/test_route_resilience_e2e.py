"""Resilience on routes through real Envoys: fault injection (abort, delay), retries that
the upstream's own counters show, timeouts, and the DestinationRule extension."""

from __future__ import annotations

from labkit import Lab, statuses, within

ECHO = "http://echo:8080"
ONLY_V2 = "route: [{destination: {host: echo, subset: v2}}]"  # one replica: exact counts


def vs(rule: str) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: echo}}
spec:
  hosts: [echo]
  http:
  - {rule}
"""


async def test_a_50_percent_abort_within_5_percent(lab: Lab) -> None:
    rule = f"""{ONLY_V2}
    fault: {{abort: {{httpStatus: 503, percentage: {{value: 50}}}}}}
    retries: {{attempts: 0}}"""
    lab.reset_counts("echo-v2")
    with lab.config("abort", vs(rule)):
        replies = await lab.send(f"{ECHO}/abort", 2000, concurrency=16)
    got = statuses(replies)
    assert set(got) == {200, 503}
    assert within(got[503] / 2000, 0.5, 0.05), got
    # aborted requests never reached the app
    (counts,) = lab.upstream_counts("echo-v2").values()
    assert counts.get("/abort", 0) == got[200]


def delays_injected(lab: Lab) -> int:
    """Delays the client's sidecar injected so far (its fault filter's own counter)."""
    stats = lab.envoy_stats("client")
    return sum(v for k, v in stats.items() if k.endswith(".fault.delays_injected"))


async def test_a_fixed_delay_for_its_share_of_requests(lab: Lab) -> None:
    rule = f"""{ONLY_V2}
    fault: {{delay: {{fixedDelay: 300ms, percentage: {{value: 50}}}}}}"""
    n = 400
    with lab.config("delay", vs(rule)):
        before = delays_injected(lab)
        replies = await lab.send(f"{ECHO}/delay", n, concurrency=16)
        injected = delays_injected(lab) - before
    assert statuses(replies) == {200: n}
    # the share is counted by Envoy, not guessed from timings a loaded machine can stretch
    assert within(injected / n, 0.5, 0.075), injected
    seconds = sorted(r.seconds for r in replies)
    # every delayed request waited the delay (Envoy's timers run off the event loop's
    # cached clock, so one may fire a few milliseconds before 300 ms of wall time)...
    assert sum(1 for s in seconds if s >= 0.28) >= injected, seconds
    # ...and the others were not held back: most of them answered well under it
    assert seconds[(n - injected) // 2] < 0.25, seconds[(n - injected) // 2]


async def test_retries_turn_every_other_failure_into_success(lab: Lab) -> None:
    rule = f"""{ONLY_V2}
    retries: {{attempts: 3, retryOn: "5xx", backoff: 5ms}}"""
    lab.reset_counts("echo-v2")
    n = 200
    with lab.config("retries", vs(rule)):
        replies = await lab.send(
            f"{ECHO}/flaky", n, headers={"x-echo-fail-every": "2"}, concurrency=1
        )
    assert statuses(replies) == {200: n}
    (counts,) = lab.upstream_counts("echo-v2").values()
    assert counts["/flaky"] == 2 * n  # each request: one failure, then one retry that worked


async def test_without_retries_the_failures_reach_the_caller(lab: Lab) -> None:
    rule = f"""{ONLY_V2}
    retries: {{attempts: 0}}"""
    lab.reset_counts("echo-v2")
    with lab.config("no-retries", vs(rule)):
        replies = await lab.send(
            f"{ECHO}/flaky", 100, headers={"x-echo-fail-every": "2"}, concurrency=1
        )
    assert statuses(replies) == {503: 50, 200: 50}


async def test_a_timeout_answers_504_well_before_the_upstream(lab: Lab) -> None:
    rule = f"""{ONLY_V2}
    timeout: 200ms"""
    with lab.config("timeout", vs(rule)):
        replies = await lab.send(f"{ECHO}/slow", 8, headers={"x-echo-delay-ms": "3000"})
    assert statuses(replies) == {504: 8}
    assert max(r.seconds for r in replies) < 1.5


async def test_the_destination_rule_extension_applies_when_the_route_sets_none(lab: Lab) -> None:
    dr = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo-ext}
spec:
  host: echo
  trafficPolicy:
    timeout: {http: 200ms}
    retryPolicy: {attempts: 3, retryOn: "5xx"}
"""
    lab.reset_counts("echo-v2")
    with lab.config("echo-ext", dr), lab.config("plain", vs(ONLY_V2)):
        slow = await lab.send(f"{ECHO}/slow", 4, headers={"x-echo-delay-ms": "3000"})
        flaky = await lab.send(
            f"{ECHO}/flaky-ext", 50, headers={"x-echo-fail-every": "2"}, concurrency=1
        )
    assert statuses(slow) == {504: 4} and max(r.seconds for r in slow) < 1.5
    assert statuses(flaky) == {200: 50}
    (counts,) = lab.upstream_counts("echo-v2").values()
    assert counts["/flaky-ext"] == 100
