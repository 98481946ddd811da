"""Istio's standard metrics on a running mesh: each proxy's `metrics` URL (plait status)
serves Envoy's own stats and istio_requests_total / istio_request_* with Istio's labels,
counted from real requests client → echo."""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from collections.abc import Iterable
from typing import Any

from labkit import Lab, statuses
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

ECHO_FQDN = "echo.default.svc.cluster.local"
CLIENT_ID = "spiffe://cluster.local/ns/default/sa/client"
ECHO_ID = "spiffe://cluster.local/ns/default/sa/echo"


def scrape(url: str) -> tuple[str, dict[str, list[Sample]]]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    families: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        families.setdefault(family.name, []).extend(family.samples)
    return text, families


def total(samples: Iterable[Sample], **match: str) -> float:
    return sum(
        s.value
        for s in samples
        if s.name == "istio_requests_total" and all(s.labels.get(k) == v for k, v in match.items())
    )


def requests_of(urls: list[str], **match: str) -> float:
    return sum(total(scrape(u)[1].get("istio_requests", []), **match) for u in urls)


async def counted(urls: list[str], expected: float, timeout: float = 15.0, **match: str) -> None:
    """Wait until the istio_requests_total series matching `match` (summed over `urls`)
    reach `expected` (Envoy flushes its access log every second)."""
    deadline = time.monotonic() + timeout
    while (found := requests_of(urls, **match)) < expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{found} of {expected} requests counted for {match}")
        await asyncio.sleep(0.2)
    assert found == expected, f"{found} counted for {match}, {expected} sent"


def metrics_urls(lab: Lab, *workloads: str) -> list[str]:
    return [str(p["metrics"]) for w in workloads for p in lab.replicas(w)]


async def test_source_and_destination_reports_count_every_request_with_istio_labels(
    lab: Lab,
) -> None:
    ok_path, fail_path = (f"/metrics-{what}-{uuid.uuid4().hex[:8]}" for what in ("ok", "fail"))
    ok = await lab.send(f"http://echo:8080{ok_path}", 7)
    failed = await lab.send(f"http://echo:8080{fail_path}", 4, headers={"x-echo-status": "503"})
    assert statuses(ok) == {200: 7} and statuses(failed) == {503: 4}
    # The client's sidecar retries a 503 (Istio's default retry policy): the destination
    # reports every attempt the echo replicas received, the source each answer it gave.
    attempts = sum(
        counts.get(fail_path, 0)
        for w in ("echo-v1", "echo-v2")
        for counts in lab.upstream_counts(w).values()
    )
    assert attempts > 4

    client = metrics_urls(lab, "client")
    echo = metrics_urls(lab, "echo-v1", "echo-v2")
    assert client[0] != f"http://{lab.proxy('client')['admin']}/stats/prometheus"
    common = {
        "source_workload": "client",
        "source_workload_namespace": "default",
        "source_app": "client",
        "source_version": "v1",
        "destination_service": ECHO_FQDN,
        "destination_service_name": "echo",
        "destination_service_namespace": "default",
        "destination_workload_namespace": "default",
        "destination_app": "echo",
        "request_protocol": "http",
    }
    # the source reports the client's answers; after retries a 503 carries URX
    for code, n, received in (("200", 7, 7), ("503", 4, attempts)):
        await counted(
            echo,
            received,
            reporter="destination",
            response_code=code,
            response_flags="-",
            connection_security_policy="mutual_tls",
            source_principal=CLIENT_ID,
            destination_principal=ECHO_ID,
            **common,
        )
        await counted(
            client,
            n,
            reporter="source",
            response_code=code,
            **({"response_flags": "-"} if code == "200" else {}),
            connection_security_policy="unknown",
            source_principal=CLIENT_ID,
            destination_principal=ECHO_ID,
            **common,
        )

    # every series names a real echo workload, on both sides
    _, families = scrape(client[0])
    series = [s for s in families["istio_requests"] if s.labels["destination_service"] == ECHO_FQDN]
    assert {s.labels["destination_workload"] for s in series} <= {"echo-v1", "echo-v2"}
    for url in echo:
        _, echo_families = scrape(url)
        for s in echo_families.get("istio_requests", []):
            assert s.labels["destination_workload"] in ("echo-v1", "echo-v2")
            assert s.labels["destination_version"] in ("v1", "v2")


async def test_duration_and_size_histograms_and_envoy_stats_share_the_endpoint(lab: Lab) -> None:
    url = metrics_urls(lab, "client")[0]
    match = {"reporter": "source", "destination_service": ECHO_FQDN, "response_code": "200"}
    before = requests_of([url], **match)
    replies = await lab.send("http://echo:8080/histograms", 3)
    assert statuses(replies) == {200: 3}
    await counted([url], before + 3, **match)
    text, families = scrape(url)
    assert any(name.startswith("envoy_") for name in families), "Envoy's own stats are missing"
    duration: list[Any] = families["istio_request_duration_milliseconds"]
    buckets = {s.labels["le"] for s in duration if s.name.endswith("_bucket")}
    assert {"0.5", "1", "5", "100", "3600000", "+Inf"} <= buckets
    counts = [s for s in duration if s.name.endswith("_count")]
    assert sum(s.value for s in counts) >= 3
    for name in ("istio_request_bytes", "istio_response_bytes"):
        assert any(s.name == f"{name}_bucket" for s in families[name])
    response = [s for s in families["istio_response_bytes"] if s.name == "istio_response_bytes_sum"]
    assert sum(s.value for s in response) > 0  # echo answers with a JSON body
    assert "# TYPE istio_requests_total counter" in text


def promql_sum(
    urls: list[str], family: str, sample: str, **match: str
) -> dict[tuple[str, str], float]:
    """`sum by (destination_service, response_code) (SAMPLE{match})` over `urls`' scrapes."""
    sums: dict[tuple[str, str], float] = {}
    for url in urls:
        for s in scrape(url)[1].get(family, []):
            if s.name == sample and all(s.labels.get(k) == v for k, v in match.items()):
                key = (s.labels["destination_service"], s.labels["response_code"])
                sums[key] = sums.get(key, 0.0) + s.value
    return sums


async def test_metrics_are_complete_within_two_seconds_of_the_last_request(lab: Lab) -> None:
    """Envoy counts each request when it ends; histograms reach the endpoint at Envoy's
    next stats flush (1 s), so every family is complete within 2 s."""
    echo = metrics_urls(lab, "echo-v1", "echo-v2")
    wanted = {"reporter": "destination"}
    families = (
        ("istio_requests", "istio_requests_total"),
        ("istio_request_duration_milliseconds", "istio_request_duration_milliseconds_count"),
        ("istio_response_bytes", "istio_response_bytes_count"),
    )

    def settled() -> dict[str, dict[tuple[str, str], float]] | None:
        """Every family's sums, once earlier tests' histograms have caught up with the
        counters (they reach the endpoint at Envoy's next stats flush)."""
        sums = {f: promql_sum(echo, f, s, **wanted) for f, s in families}
        return sums if all(v == sums["istio_requests"] for v in sums.values()) else None

    deadline = time.monotonic() + 10
    while (found := settled()) is None:
        assert time.monotonic() < deadline, "histograms never caught up with the counters"
        await asyncio.sleep(0.2)
    before = found
    path = f"/complete-{uuid.uuid4().hex[:8]}"
    ok = await lab.send(f"http://echo:8080{path}", 12)
    missing = await lab.send(f"http://echo:8080{path}", 5, headers={"x-echo-status": "404"})
    assert statuses(ok) == {200: 12} and statuses(missing) == {404: 5}
    last = time.monotonic()
    sent = {(ECHO_FQDN, "200"): 12.0, (ECHO_FQDN, "404"): 5.0}

    def increase(family: str, sample: str) -> dict[tuple[str, str], float]:
        now = promql_sum(echo, family, sample, **wanted)
        keys = set(now) | set(before[family])
        return {k: now.get(k, 0.0) - before[family].get(k, 0.0) for k in keys if k[0] == ECHO_FQDN}

    while True:
        seen = {f: {k: v for k, v in increase(f, s).items() if v} for f, s in families}
        if all(v == sent for v in seen.values()):
            break
        assert time.monotonic() - last < 2.0, f"not complete 2 s after the last request: {seen}"
        await asyncio.sleep(0.1)
