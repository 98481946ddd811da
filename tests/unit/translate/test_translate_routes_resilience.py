"""Timeouts, retries (Istio's and the DestinationRule extension), faults and CORS."""

from __future__ import annotations

import pytest
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.retry.priority.previous_priorities.v3 import (
    previous_priorities_config_pb2,
)
from envoy.type.v3 import percent_pb2
from routes_kit import one

from plait.translate.faults import grpc_status
from plait.translate.httpfilters import CORS, FAULT
from plait.translate.resilience import PREVIOUS_HOSTS, PREVIOUS_PRIORITIES

HUNDRED = percent_pb2.FractionalPercent.HUNDRED
MILLION = percent_pb2.FractionalPercent.MILLION
TO_REVIEWS = "route: [{destination: {host: reviews}}]"


def seconds(d: object) -> float:
    return d.seconds + d.nanos / 1e9  # type: ignore[attr-defined]


def test_timeout_also_caps_a_grpc_timeout_header() -> None:
    action = one(f"  - {TO_REVIEWS}\n    timeout: 1.5s\n").route
    assert seconds(action.timeout) == 1.5
    assert seconds(action.max_grpc_timeout) == 1.5
    # max_stream_duration would make Envoy ignore the route timeout
    assert not action.HasField("max_stream_duration")


def test_no_timeout_means_none() -> None:
    action = one(f"  - {TO_REVIEWS}\n").route
    assert action.HasField("timeout") and seconds(action.timeout) == 0


@pytest.mark.parametrize(
    ("retry_on", "conditions", "codes"),
    [
        ("5xx,gateway-error,reset", "5xx,gateway-error,reset", []),
        (
            "connect-failure,refused-stream,retriable-4xx",
            "connect-failure,refused-stream,retriable-4xx",
            [],
        ),
        ("503, 429", "retriable-status-codes", [503, 429]),
        ("retriable-status-codes,502", "retriable-status-codes", [502]),
        (
            "cancelled,deadline-exceeded,internal,resource-exhausted,unavailable",
            "cancelled,deadline-exceeded,internal,resource-exhausted,unavailable",
            [],
        ),
    ],
)
def test_retry_on(retry_on: str, conditions: str, codes: list[int]) -> None:
    policy = one(
        f'  - {TO_REVIEWS}\n    retries: {{attempts: 3, retryOn: "{retry_on}"}}\n'
    ).route.retry_policy
    assert policy.retry_on == conditions
    assert list(policy.retriable_status_codes) == codes
    assert policy.num_retries.value == 3


def test_retry_attempts_per_try_timeout_backoff_and_remote_localities() -> None:
    policy = one(
        f"""
  - {TO_REVIEWS}
    retries:
      attempts: 4
      perTryTimeout: 250ms
      backoff: 40ms
      retryRemoteLocalities: true
"""
    ).route.retry_policy
    assert policy.num_retries.value == 4
    assert seconds(policy.per_try_timeout) == 0.25
    assert seconds(policy.retry_back_off.base_interval) == 0.04
    assert policy.retry_priority.name == PREVIOUS_PRIORITIES
    config = previous_priorities_config_pb2.PreviousPrioritiesConfig()
    assert policy.retry_priority.typed_config.Unpack(config) and config.update_frequency == 2
    # fields not set keep Istio's defaults
    assert list(policy.retriable_status_codes) == [503]
    assert [p.name for p in policy.retry_host_predicate] == [PREVIOUS_HOSTS]


def test_retry_ignore_previous_hosts_false_drops_the_predicate() -> None:
    policy = one(
        f"  - {TO_REVIEWS}\n    retries: {{attempts: 2, retryIgnorePreviousHosts: false}}\n"
    ).route.retry_policy
    assert not policy.retry_host_predicate


def test_retries_without_attempts_disable_retrying() -> None:
    action = one(f"  - {TO_REVIEWS}\n    retries: {{perTryTimeout: 1s}}\n").route
    assert not action.HasField("retry_policy")


DR_EXTENSION = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    retryPolicy: {attempts: 5, retryOn: "5xx"}
    timeout: {http: 3s, connectTimeout: 1s}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      timeout: {http: 7s}
---
"""


def test_destination_rule_extension_applies_when_the_rule_sets_nothing() -> None:
    action = one(f"  - {TO_REVIEWS}\n", extra=DR_EXTENSION).route
    assert seconds(action.timeout) == 3
    assert action.retry_policy.num_retries.value == 5
    assert action.retry_policy.retry_on == "5xx"


def test_the_subset_policy_of_the_destination_is_used() -> None:
    route = one("  - route: [{destination: {host: reviews, subset: v2}}]\n", extra=DR_EXTENSION)
    assert seconds(route.route.timeout) == 7  # the subset's policy replaces `timeout` whole
    assert route.route.retry_policy.num_retries.value == 5


def test_the_virtual_service_wins_over_the_extension() -> None:
    action = one(
        f"  - {TO_REVIEWS}\n    timeout: 1s\n    retries: {{attempts: 1}}\n", extra=DR_EXTENSION
    ).route
    assert seconds(action.timeout) == 1
    assert action.retry_policy.num_retries.value == 1


def fault_of(route: rc.Route) -> fault_pb2.HTTPFault:
    out = fault_pb2.HTTPFault()
    assert route.typed_per_filter_config[FAULT].Unpack(out)
    return out


def test_fault_delay_and_abort_with_percentages() -> None:
    fault = fault_of(
        one(
            f"""
  - {TO_REVIEWS}
    fault:
      delay: {{fixedDelay: 2s, percentage: {{value: 0.1}}}}
      abort: {{httpStatus: 503, percentage: {{value: 50}}}}
"""
        )
    )
    assert seconds(fault.delay.fixed_delay) == 2
    assert (fault.delay.percentage.numerator, fault.delay.percentage.denominator) == (1000, MILLION)
    assert fault.abort.http_status == 503
    assert (fault.abort.percentage.numerator, fault.abort.percentage.denominator) == (
        500_000,
        MILLION,
    )


def test_fault_deprecated_integer_percent_and_grpc_abort() -> None:
    fault = fault_of(
        one(
            f"""
  - {TO_REVIEWS}
    fault:
      delay: {{fixedDelay: 100ms, percent: 30}}
      abort: {{grpcStatus: UNAVAILABLE}}
"""
        )
    )
    assert (fault.delay.percentage.numerator, fault.delay.percentage.denominator) == (30, HUNDRED)
    assert fault.abort.grpc_status == 14
    assert fault.abort.percentage.numerator == 0  # unset: nothing is aborted (Istio)


def test_unsupported_faults_leave_no_fault_config() -> None:
    route = one(
        f"""
  - {TO_REVIEWS}
    fault:
      delay: {{exponentialDelay: 1s, percentage: {{value: 10}}}}
      abort: {{http2Error: REFUSED_STREAM}}
"""
    )
    assert FAULT not in route.typed_per_filter_config


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("OK", 0),
        ("cancelled", 1),
        ("UNAUTHENTICATED", 16),
        ("14", 14),
        ("NOPE", None),
        ("17", None),
    ],
)
def test_grpc_status_names(name: str, code: int | None) -> None:
    assert grpc_status(name) == code


def cors_of(route: rc.Route) -> cors_pb2.CorsPolicy:
    out = cors_pb2.CorsPolicy()
    assert route.typed_per_filter_config[CORS].Unpack(out)
    return out


def test_cors_policy() -> None:
    cors = cors_of(
        one(
            f"""
  - {TO_REVIEWS}
    corsPolicy:
      allowOrigins: [{{exact: "https://shop.example"}}, {{regex: "https://.*[.]test"}}]
      allowMethods: [GET, POST]
      allowHeaders: [x-user, content-type]
      exposeHeaders: [x-trace]
      maxAge: 24h
      allowCredentials: true
"""
        )
    )
    origins = cors.allow_origin_string_match
    assert (origins[0].exact, origins[1].safe_regex.regex) == (
        "https://shop.example",
        "https://.*[.]test",
    )
    assert (cors.allow_methods, cors.allow_headers, cors.expose_headers) == (
        "GET,POST",
        "x-user,content-type",
        "x-trace",
    )
    assert cors.max_age == "86400"
    assert cors.allow_credentials.value is True
    assert cors.forward_not_matching_preflights.value is True
    assert cors.filter_enabled.default_value.numerator == 100


def test_cors_deprecated_allow_origin_and_ignored_preflights() -> None:
    cors = cors_of(
        one(
            f"""
  - {TO_REVIEWS}
    corsPolicy: {{allowOrigin: ["https://a.example"], unmatchedPreflights: IGNORE}}
"""
        )
    )
    assert [o.exact for o in cors.allow_origin_string_match] == ["https://a.example"]
    assert cors.forward_not_matching_preflights.value is False
    assert not cors.HasField("allow_credentials") and not cors.max_age
