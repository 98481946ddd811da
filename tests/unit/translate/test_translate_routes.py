"""VirtualService HTTP rules → Envoy routes: order, matches, destinations, retries, timeouts."""

from __future__ import annotations

import pytest
from envoy.config.route.v3 import route_components_pb2 as rc
from translate_kit import REVIEWS, REVIEWS_SERVICE, snapshot

from plait.api import VirtualService
from plait.api.virtualservice import Destination
from plait.model.snapshot import MeshSnapshot
from plait.translate.routes import (
    DEFAULT_RETRY_ON,
    RouteContext,
    default_retry_policy,
    default_route,
    destination_cluster,
    vs_routes,
)

MESH = (
    REVIEWS_SERVICE
    + """apiVersion: v1
kind: Service
metadata: {name: multi, namespace: team}
spec:
  selector: {app: multi}
  ports: [{name: http, port: 80}, {name: grpc, port: 9000}]
"""
)


def vs(http: str, namespace: str = "default") -> tuple[MeshSnapshot, VirtualService]:
    snap = snapshot(
        MESH
        + f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: rules, namespace: {namespace}}}
spec:
  hosts: [reviews]
  http:
{http}"""
    )
    (loaded,) = snap.virtual_services
    return snap, loaded.resource  # type: ignore[return-value]


def routes(http: str, namespace: str = "default", port: int | None = 8080) -> list[rc.Route]:
    snap, service = vs(http, namespace)
    return vs_routes(RouteContext(snap, namespace, port), service)


def test_default_retry_policy_is_istios() -> None:
    policy = default_retry_policy()
    assert policy.retry_on == DEFAULT_RETRY_ON
    assert DEFAULT_RETRY_ON == (
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    )
    assert policy.num_retries.value == 2
    assert list(policy.retriable_status_codes) == [503]
    assert policy.host_selection_retry_max_attempts == 5
    (pred,) = policy.retry_host_predicate
    assert pred.name == "envoy.retry_host_predicates.previous_hosts"
    assert not policy.HasField("per_try_timeout")


def test_rules_keep_order_and_each_match_is_one_route() -> None:
    out = routes(
        """
  - match:
    - uri: {exact: /health}
    - uri: {prefix: /api/}
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews}}]
"""
    )
    assert [r.name for r in out] == [
        "default/rules/http[0]/match[0]",
        "default/rules/http[0]/match[1]",
        "default/rules/http[1]/match[0]",
    ]
    assert out[0].match.path == "/health"
    assert out[1].match.prefix == "/api/"
    assert out[2].match.prefix == "/"
    assert [r.route.cluster for r in out] == [
        f"outbound|8080|v2|{REVIEWS}",
        f"outbound|8080|v2|{REVIEWS}",
        f"outbound|8080||{REVIEWS}",
    ]


def test_regex_uri_headers_and_method() -> None:
    (route,) = routes(
        """
  - match:
    - uri: {regex: "/items/[0-9]+"}
      headers:
        X-User: {exact: jason}
        accept: {prefix: "text/"}
        cookie: {regex: ".*canary.*"}
      method: {exact: GET}
    route: [{destination: {host: reviews}}]
"""
    )
    assert route.match.safe_regex.regex == "/items/[0-9]+"
    got = {h.name: h.string_match for h in route.match.headers}
    # names lower-cased and sorted (Istio), pseudo-headers last
    assert list(got) == ["accept", "cookie", "x-user", ":method"]
    assert got["x-user"].exact == "jason"
    assert got["accept"].prefix == "text/"
    assert got["cookie"].safe_regex.regex == ".*canary.*"
    assert got[":method"].exact == "GET"


def test_weighted_destinations_and_zero_weights_are_dropped() -> None:
    (route,) = routes(
        """
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
    - {destination: {host: reviews, subset: v3}, weight: 0}
"""
    )
    got = [(c.name, c.weight.value) for c in route.route.weighted_clusters.clusters]
    assert got == [(f"outbound|8080|v1|{REVIEWS}", 90), (f"outbound|8080|v2|{REVIEWS}", 10)]
    assert not route.route.cluster


def test_a_single_remaining_destination_is_a_plain_cluster() -> None:
    (route,) = routes(
        """
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 100}
    - {destination: {host: reviews, subset: v2}, weight: 0}
"""
    )
    assert route.route.cluster == f"outbound|8080|v1|{REVIEWS}"
    assert not route.route.HasField("weighted_clusters")


def test_no_timeout_and_default_retries_unless_set() -> None:
    (route,) = routes("  - route: [{destination: {host: reviews}}]\n")
    assert route.route.timeout.seconds == 0 and route.route.timeout.nanos == 0
    assert route.route.retry_policy == default_retry_policy()


def test_timeout_and_retries() -> None:
    (route,) = routes(
        """
  - route: [{destination: {host: reviews}}]
    timeout: 1.5s
    retries: {attempts: 4, perTryTimeout: 250ms, retryOn: "5xx, 503,gateway-error,429"}
"""
    )
    action = route.route
    assert (action.timeout.seconds, action.timeout.nanos) == (1, 500_000_000)
    policy = action.retry_policy
    assert policy.num_retries.value == 4
    assert (policy.per_try_timeout.seconds, policy.per_try_timeout.nanos) == (0, 250_000_000)
    assert policy.retry_on == "5xx,gateway-error,retriable-status-codes"
    assert list(policy.retriable_status_codes) == [503, 429]
    assert policy.host_selection_retry_max_attempts == 5


def test_retry_on_without_codes_clears_the_default_503() -> None:
    (route,) = routes(
        "  - route: [{destination: {host: reviews}}]\n    retries: {attempts: 1, retryOn: reset}\n"
    )
    assert route.route.retry_policy.retry_on == "reset"
    assert list(route.route.retry_policy.retriable_status_codes) == []


def test_zero_attempts_disables_retries() -> None:
    (route,) = routes("  - route: [{destination: {host: reviews}}]\n    retries: {attempts: 0}\n")
    assert not route.route.HasField("retry_policy")


def test_unknown_destination_names_a_cluster_that_does_not_exist() -> None:
    """Envoy then answers 503 (no cluster), as Istio does."""
    (route,) = routes("  - route: [{destination: {host: nowhere, subset: v1}}]\n")
    assert route.route.cluster == "outbound|8080|v1|nowhere.default.svc.cluster.local"


@pytest.mark.parametrize(
    ("destination", "port", "expected"),
    [
        ({"host": "reviews"}, None, f"outbound|8080||{REVIEWS}"),  # the only port
        ({"host": "reviews", "subset": "v1"}, 9999, f"outbound|8080|v1|{REVIEWS}"),
        ({"host": "multi.team"}, 9000, "outbound|9000||multi.team.svc.cluster.local"),
        (
            {"host": "multi.team", "port": {"number": 80}},
            9000,
            "outbound|80||multi.team.svc.cluster.local",
        ),
        ({"host": "multi.team"}, None, None),  # several ports, none chosen
        ({"host": "multi.team"}, 1234, None),
        ({"host": "reviews", "port": {"number": 1234}}, None, None),
        ({"host": "nowhere"}, 8080, None),
    ],
)
def test_destination_cluster(
    destination: dict[str, object], port: int | None, expected: str | None
) -> None:
    snap = snapshot(MESH)
    ctx = RouteContext(snap, "default", port)
    assert destination_cluster(ctx, Destination.model_validate(destination)) == expected


def test_short_hosts_resolve_in_the_virtual_service_namespace() -> None:
    (route,) = routes("  - route: [{destination: {host: multi}}]\n", namespace="team", port=80)
    assert route.route.cluster == "outbound|80||multi.team.svc.cluster.local"


def test_default_route() -> None:
    snap = snapshot(MESH)
    service = snap.service(REVIEWS)
    assert service is not None
    route = default_route(service, 8080)
    assert route.match.prefix == "/"
    assert route.route.cluster == f"outbound|8080||{REVIEWS}"
    assert route.route.retry_policy == default_retry_policy()
    assert route.route.timeout.seconds == 0


def test_a_lone_destination_takes_all_traffic_whatever_its_weight() -> None:
    (route,) = routes(
        """
  - route:
    - {destination: {host: reviews, subset: v2}, weight: 0}
"""
    )
    assert route.route.cluster == f"outbound|8080|v2|{REVIEWS}"
