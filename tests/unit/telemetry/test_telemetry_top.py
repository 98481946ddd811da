"""`plait top`'s figures from two synthetic scrapes: rates, success rates and PromQL's
histogram_quantile over bucket increases, counter resets, new series and empty windows.
Scrapes are what the exporter serves for a proxy whose Envoy counted the requests
(`istiokit.FakeProxy`)."""

from __future__ import annotations

import math

import pytest

from istiokit import FakeProxy
from plait.telemetry.top import (
    Scrape,
    compute,
    histogram_quantile,
    increase,
    parse_proxy,
    scrape_of,
    top_json,
)


def labels(
    reporter: str = "destination", service: str = "echo", source: str = "client", code: str = "200"
) -> dict[str, str]:
    return dict(
        reporter=reporter,
        source_workload=source,
        source_workload_namespace="default",
        destination_service_name=service,
        destination_service_namespace="default",
        response_code=code,
    )


class Proxy(FakeProxy):
    def observe(self, n: int, duration_ms: float, **kw: str) -> Proxy:
        self.count(n, duration_ms, labels(**kw))
        return self


def test_parse_keeps_the_istio_request_samples_only() -> None:
    samples = parse_proxy(Proxy().observe(3, 7).text())
    ((key, value),) = samples.requests.items()
    assert value == 3 and dict(key)["destination_service_name"] == "echo"
    (buckets,) = samples.buckets.values()
    assert buckets[5.0] == 0 and buckets[10.0] == 3 and buckets[math.inf] == 3


def test_rps_success_rate_and_quantiles_over_the_window() -> None:
    echo = Proxy().observe(10, 3)
    prev = scrape_of(100.0, {"echo-0": echo.text()})
    echo.observe(90, 3).observe(10, 30, code="503")  # 100 new requests in 2 s
    top = compute(prev, scrape_of(102.0, {"echo-0": echo.text()}))
    (row,) = top.services
    g = row.golden
    assert (row.service, row.namespace) == ("echo", "default")
    assert g.requests == 100 and g.rps == pytest.approx(50.0)
    assert g.success_rate == pytest.approx(0.9)
    # 90 in (1, 5], 10 in (25, 50]: p50 = 1 + 4 * 50/90; p99 (rank 99) = 25 + 25 * 9/10
    assert g.p50_ms == pytest.approx(1 + 4 * 50 / 90)
    assert g.p99_ms == pytest.approx(25 + 25 * 0.9)
    (edge,) = top.edges
    assert (edge.source, edge.service, edge.golden.requests) == ("client", "echo", 100)


def test_only_the_destination_reporter_counts_and_replicas_add_up() -> None:
    a, b, client = Proxy(), Proxy(), Proxy()
    prev = scrape_of(0.0, {"a": a.text(), "b": b.text(), "client": client.text()})
    a.observe(4, 2)
    b.observe(6, 2, code="500")
    client.observe(10, 2, reporter="source")  # the same requests seen by the caller
    cur = scrape_of(1.0, {"a": a.text(), "b": b.text(), "client": client.text()})
    (row,) = compute(prev, cur).services
    assert row.golden.requests == 10 and row.golden.success_rate == pytest.approx(0.4)


def test_services_sorted_by_rps_and_edges_by_source() -> None:
    echo, shop = Proxy(), Proxy()
    prev = scrape_of(0.0, {"echo": echo.text(), "shop": shop.text()})
    echo.observe(3, 1)
    shop.observe(5, 1, service="shop").observe(2, 1, service="shop", source="gateway")
    top = compute(prev, scrape_of(1.0, {"echo": echo.text(), "shop": shop.text()}))
    assert [r.service for r in top.services] == ["shop", "echo"]
    assert [(e.source, e.service, e.golden.requests) for e in top.edges] == [
        ("client", "shop", 5),
        ("client", "echo", 3),
        ("gateway", "shop", 2),
    ]


def test_a_counter_reset_counts_the_new_value() -> None:
    old = Proxy().observe(50, 3)
    prev = scrape_of(0.0, {"echo-0": old.text()})
    restarted = Proxy().observe(5, 30)  # the exporter restarted: counters begin again
    (row,) = compute(prev, scrape_of(1.0, {"echo-0": restarted.text()})).services
    assert row.golden.requests == 5
    assert row.golden.p50_ms is not None and 25 < row.golden.p50_ms <= 50


def test_a_new_series_counts_from_zero_but_a_new_proxy_has_no_baseline() -> None:
    echo, late = Proxy().observe(1, 1), Proxy()
    prev = scrape_of(0.0, {"echo-0": echo.text()})  # `late` unreachable then
    echo.observe(2, 1, code="503")  # a new label set on a known proxy
    late.observe(40, 1)
    top = compute(prev, scrape_of(1.0, {"echo-0": echo.text(), "late": late.text()}))
    (row,) = top.services
    assert row.golden.requests == 2 and row.golden.success_rate == 0.0


def test_an_empty_window_lists_the_service_without_figures() -> None:
    echo = Proxy().observe(5, 1)
    prev = scrape_of(0.0, {"echo-0": echo.text()})
    top = compute(prev, scrape_of(2.0, {"echo-0": echo.text()}))
    (row,) = top.services
    assert row.golden.rps == 0 and row.golden.requests == 0
    assert row.golden.success_rate is None and row.golden.p50_ms is None
    assert top.edges == ()
    data = top_json(top)
    assert data["services"] == [
        {
            "service": "echo",
            "namespace": "default",
            "requests": 0,
            "rps": 0,
            "successRate": None,
            "p50Ms": None,
            "p99Ms": None,
        }
    ]


def test_no_proxies_no_rows() -> None:
    top = compute(Scrape(0.0, {}), Scrape(1.0, {}))
    assert top.services == () and top.edges == ()


def test_increase() -> None:
    assert increase(None, 4) == 4
    assert increase(3, 7) == 4
    assert increase(9, 2) == 2  # reset


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, {1.0: 0, 2.0: 10, math.inf: 10}, 1.5),
        (0.5, {1.0: 10, 2.0: 10, math.inf: 10}, 0.5),  # first bucket: lower bound 0
        (0.99, {1.0: 0, 2.0: 0, math.inf: 10}, 2.0),  # in +Inf: the second-highest bound
        (0.25, {-1.0: 5, 1.0: 20, math.inf: 20}, -1.0),  # first bucket, bound <= 0
        (0.5, {1.0: 4, 2.0: 3, math.inf: 10}, 2.0),  # non-monotonic: made monotonic
        (0.5, {1.0: 0, math.inf: 0}, None),  # no observation
        (0.5, {1.0: 3, 2.0: 3}, None),  # no +Inf bucket
        (0.5, {math.inf: 3}, None),  # fewer than two buckets
    ],
)
def test_histogram_quantile_as_promql(
    q: float, buckets: dict[float, float], expected: float | None
) -> None:
    got = histogram_quantile(q, buckets)
    assert got == (None if expected is None else pytest.approx(expected))
