"""The dashboard's graph and services documents from synthetic scrapes made by the
exporter's own collector: workload edges (not services), window figures, idle edges kept,
mTLS from connection_security_policy, nodes from the state file, sparkline history."""

from __future__ import annotations

from istiokit import FakeProxy
from plait.dashboard.model import ServiceHistory, Workload, by_workload, graph_json
from plait.telemetry.top import compute, scrape_of


class Proxy(FakeProxy):
    def observe(
        self,
        n: int,
        source: str,
        workload: str,
        service: str,
        code: str = "200",
        mtls: str = "mutual_tls",
        reporter: str = "destination",
        ms: float = 10.0,
    ) -> Proxy:
        labels = dict(
            reporter=reporter,
            source_workload=source,
            source_workload_namespace="default",
            destination_workload=workload,
            destination_workload_namespace="default",
            destination_service_name=service,
            destination_service_namespace="default",
            response_code=code,
            connection_security_policy=mtls,
        )
        self.count(n, ms, labels)
        return self


def test_edges_join_workloads_with_the_windows_figures_and_mtls() -> None:
    v1, v2, orders = Proxy(), Proxy(), Proxy()
    v1.observe(2, "frontend", "reviews-v1", "reviews")
    orders.observe(1, "frontend", "orders", "orders", mtls="none")
    prev = scrape_of(0.0, {"v1": v1.text(), "v2": v2.text(), "orders": orders.text()})
    v1.observe(8, "frontend", "reviews-v1", "reviews", ms=40.0)
    v1.observe(2, "frontend", "reviews-v1", "reviews", code="503")
    v2.observe(5, "frontend", "reviews-v2", "reviews", mtls="none")
    v2.observe(5, "frontend", "reviews-v2", "reviews")
    v2.observe(7, "frontend", "reviews-v2", "reviews", reporter="source")  # not counted
    cur = scrape_of(2.0, {"v1": v1.text(), "v2": v2.text(), "orders": orders.text()})

    gateway = Workload("istio-ingressgateway", "istio-system", "gateway")
    graph = graph_json(prev, cur, [gateway])

    edges = {e["id"]: e for e in graph["edges"]}
    assert set(edges) == {
        "frontend.default->reviews-v1.default",
        "frontend.default->reviews-v2.default",
        "frontend.default->orders.default",
    }
    v1_edge = edges["frontend.default->reviews-v1.default"]
    assert v1_edge["rps"] == 5.0 and v1_edge["totalRequests"] == 12
    assert v1_edge["errorRate"] == round(2 / 10, 4)
    assert v1_edge["p99Ms"] is not None and v1_edge["p99Ms"] > 25
    assert v1_edge["mtls"] == "mutual_tls"
    assert edges["frontend.default->reviews-v2.default"]["mtls"] == "mixed"
    idle = edges["frontend.default->orders.default"]  # no request in this window: kept, idle
    assert (idle["rps"], idle["errorRate"], idle["p99Ms"], idle["mtls"]) == (
        0.0,
        None,
        None,
        "none",
    )
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes["istio-ingressgateway.istio-system"]["kind"] == "gateway"  # no traffic yet
    assert nodes["frontend.default"]["kind"] == "external"  # seen only as a caller here
    assert nodes["reviews-v2.default"]["inbound"]["rps"] == 5.0
    assert graph["windowSeconds"] == 2.0


def test_by_workload_sums_series_that_differ_only_in_their_service() -> None:
    proxy = Proxy().observe(3, "a", "multi", "svc-one").observe(4, "a", "multi", "svc-two")
    samples = by_workload(scrape_of(0.0, {"p": proxy.text()})).proxies["p"]
    [(labels, value)] = samples.requests.items()
    assert dict(labels)["destination_service_name"] == "multi" and value == 7


def test_services_keep_a_bounded_history_busiest_first() -> None:
    proxy = Proxy()
    history = ServiceHistory(points=3)
    prev = scrape_of(0.0, {"p": proxy.text()})
    for i in range(1, 6):
        proxy.observe(i, "frontend", "orders", "orders").observe(1, "frontend", "inv", "inventory")
        cur = scrape_of(float(i), {"p": proxy.text()})
        history.add(compute(prev, cur), at=float(i))
        prev = cur
    doc = history.to_json()
    assert [s["service"] for s in doc["services"]] == ["orders", "inventory"]
    orders = doc["services"][0]
    assert orders["rps"] == 5.0 and orders["successRate"] == 1.0
    assert [p["rps"] for p in orders["history"]] == [3.0, 4.0, 5.0]
    assert [p["at"] for p in orders["history"]] == [3.0, 4.0, 5.0]
