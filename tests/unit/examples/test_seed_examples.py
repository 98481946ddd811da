"""The founding articles' YAML (examples/seeds) loads and does what it says once translated."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from plait.api import load_text
from plait.errors import Severity
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind, node_id
from plait.model.snapshot import build_snapshot
from plait.translate import typeurls
from plait.translate.proxy import Translator

M = TypeVar("M", bound=Message)

SEEDS = Path(__file__).resolve().parents[3] / "examples" / "seeds"
HOST = "reviews.default.svc.cluster.local"
CALLER = Proxy(
    id=node_id(ProxyKind.SIDECAR, "orders-0", "default"),
    kind=ProxyKind.SIDECAR,
    workload="orders",
    namespace="default",
    labels=Labels.of({"app": "orders"}),
    inbound_port=21001,
    app_port=21002,
    outbound_port=21003,
)


def translate(
    example: str,
) -> tuple[dict[str, route_pb2.RouteConfiguration], dict[str, cluster_pb2.Cluster], list[str]]:
    text = (SEEDS / "services.yaml").read_text() + "\n---\n" + (SEEDS / example).read_text()
    result = load_text(text, example)
    errors = [str(m) for m in result.messages if m.severity == Severity.ERROR]
    assert not errors, errors
    snap = build_snapshot(result.resources, [], 1, result.messages)
    config = Translator(snap).config_for(CALLER)
    routes = {
        n: _unpack(r.body, route_pb2.RouteConfiguration())
        for n, r in config.resources(typeurls.ROUTE).items()
    }
    clusters = {
        n: _unpack(r.body, cluster_pb2.Cluster())
        for n, r in config.resources(typeurls.CLUSTER).items()
    }
    warnings = [f"{m.path}: {m.message}" for m in snap.messages if m.severity == Severity.WARNING]
    return routes, clusters, warnings


def _unpack(body: bytes, message: M) -> M:
    wrapped = any_pb2.Any()
    wrapped.ParseFromString(body)
    assert wrapped.Unpack(message)
    return message


def reviews_routes(routes: dict[str, route_pb2.RouteConfiguration]) -> list[rc.Route]:
    (vhost,) = [v for v in routes["outbound"].virtual_hosts if v.name == f"{HOST}:9080"]
    return list(vhost.routes)


@pytest.mark.parametrize(
    "example", sorted(p.name for p in SEEDS.glob("*.yaml") if p.name != "services.yaml")
)
def test_every_seed_example_loads_without_errors(example: str) -> None:
    translate(example)


@pytest.mark.parametrize("example", ["traffic-splitting.yaml", "canary-port.yaml"])
def test_canary_header_goes_to_v2_and_the_rest_to_v1(example: str) -> None:
    routes, _, _ = translate(example)
    canary, rest = reviews_routes(routes)
    (header,) = canary.match.headers
    assert (header.name, header.string_match.exact) == ("canary", "true")
    assert canary.route.cluster == f"outbound|9080|v2|{HOST}"
    assert rest.route.cluster == f"outbound|9080|v1|{HOST}"


def test_the_hostless_fault_example_delays_half_of_reviews_calls_by_5s() -> None:
    routes, _, warnings = translate("fault-injection.yaml")
    (route,) = reviews_routes(routes)
    fault = fault_pb2.HTTPFault()
    route.typed_per_filter_config["envoy.filters.http.fault"].Unpack(fault)
    assert fault.delay.fixed_delay.seconds == 5
    pct = fault.delay.percentage
    assert pct.numerator / {0: 100, 1: 10_000, 2: 1_000_000}[pct.denominator] == 0.5
    assert any(w.startswith("spec.hosts") and "reviews" in w for w in warnings), warnings


def test_the_circuit_breaker_example_sets_limits_and_outlier_detection() -> None:
    _, clusters, _ = translate("circuit-breaker.yaml")
    cluster = clusters[f"outbound|9080||{HOST}"]
    (t,) = cluster.circuit_breakers.thresholds
    assert t.max_connections.value == 100
    assert t.max_pending_requests.value == 50
    assert t.max_requests.value == 100
    od = cluster.outlier_detection
    assert od.consecutive_5xx.value == 5
    assert od.interval.seconds == 30 and od.base_ejection_time.seconds == 30
    assert od.max_ejection_percent.value == 50


def test_the_destination_rule_retry_example_retries_routes_to_reviews() -> None:
    routes, _, warnings = translate("retry.yaml")
    (route,) = reviews_routes(routes)
    policy = route.route.retry_policy
    assert policy.num_retries.value == 3
    assert policy.per_try_timeout.seconds == 2
    assert set(policy.retry_on.split(",")) >= {"5xx", "connect-failure", "refused-stream"}
    assert any("spec.http[].retries" in w for w in warnings), warnings


def test_the_destination_rule_timeout_example_bounds_requests_and_connects() -> None:
    routes, clusters, _ = translate("timeout.yaml")
    (route,) = reviews_routes(routes)
    assert route.route.timeout.seconds == 5
    assert clusters[f"outbound|9080||{HOST}"].connect_timeout.seconds == 3
