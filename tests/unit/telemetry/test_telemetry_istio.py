"""The istio_request* families of one proxy, parsed with prometheus_client's parser."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from plait.telemetry.istio import DURATION_BUCKETS_MS, RequestMetrics
from plait.telemetry.labels import LABEL_NAMES


def labels(code: str) -> dict[str, str]:
    return {name: "x" for name in LABEL_NAMES} | {"response_code": code}


def scrape(metrics: RequestMetrics) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    text = generate_latest(registry).decode()
    return {
        f.name: [(s.name, s.labels, s.value) for s in f.samples]
        for f in text_string_to_metric_families(text)
    }


def test_nothing_is_exported_before_the_first_request() -> None:
    assert scrape(RequestMetrics()) == {}


def test_requests_are_counted_per_label_set_with_histograms() -> None:
    metrics = RequestMetrics()
    for duration in (0.2, 3, 7000):
        metrics.observe(
            labels("200"), {"duration": duration, "bytes_received": 0, "bytes_sent": 50}
        )
    metrics.observe(labels("503"), {"duration": 1, "bytes_received": None, "bytes_sent": "x"})
    families = scrape(metrics)

    totals = {s[1]["response_code"]: s[2] for s in families["istio_requests"]}
    assert totals == {"200": 3.0, "503": 1.0}
    assert all(name == "istio_requests_total" for name, _, _ in families["istio_requests"])

    duration = [
        s for s in families["istio_request_duration_milliseconds"] if s[1]["response_code"] == "200"
    ]
    buckets = {s[1]["le"]: s[2] for s in duration if s[0].endswith("_bucket")}
    assert len(buckets) == len(DURATION_BUCKETS_MS) + 1
    assert (buckets["0.5"], buckets["1"], buckets["5"], buckets["5000"], buckets["10000"]) == (
        1,
        1,
        2,
        2,
        3,
    )
    assert buckets["+Inf"] == 3
    assert next(s[2] for s in duration if s[0].endswith("_sum")) == 7003.2
    response = {
        s[1]["le"]: s[2]
        for s in families["istio_response_bytes"]
        if s[0].endswith("_bucket") and s[1]["response_code"] == "200"
    }
    assert (response["10"], response["100"]) == (0, 3)
    assert "istio_request_bytes" in families
