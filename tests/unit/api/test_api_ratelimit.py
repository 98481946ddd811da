"""RateLimit (policy.plait.dev/v1alpha1): what loads, and the message and path for what not."""

from __future__ import annotations

import pytest

from plait.api import load_text
from plait.api.ratelimit import RateLimit

HEAD = """apiVersion: policy.plait.dev/v1alpha1
kind: RateLimit
metadata: {name: reviews, namespace: shop}
spec:
"""

GOOD = (
    HEAD
    + """  selector: {matchLabels: {app: reviews}}
  statusCode: 503
  limits:
  - name: search
    match:
    - uri: {prefix: /search}
      method: {exact: GET}
      headers: {x-tier: {exact: free}}
    - uri: {regex: "/items/[0-9]+"}
    requests: 10
    interval: 500ms
    burst: 40
  - requests: 100
    unit: minute
"""
)


def load_one(text: str) -> RateLimit:
    result = load_text(text, "rl.yaml")
    assert not result.messages, [str(m) for m in result.messages]
    (loaded,) = result.resources
    assert isinstance(loaded.resource, RateLimit)
    return loaded.resource


def test_a_full_rate_limit_loads_with_every_field_applied() -> None:
    rl = load_one(GOOD)
    assert (rl.metadata.namespace, rl.metadata.name) == ("shop", "reviews")
    assert rl.spec.selector is not None and rl.spec.selector.match_labels == {"app": "reviews"}
    assert rl.spec.status_code == 503
    search, rest = rl.spec.limits
    assert search.name == "search" and search.match is not None
    assert search.match[0].uri is not None and search.match[0].uri.prefix == "/search"
    assert search.match[0].headers["x-tier"].exact == "free"
    assert (search.requests, search.interval_ms, search.max_tokens) == (10, 500, 40)
    assert rest.match is None
    assert (rest.requests, rest.interval_ms, rest.max_tokens) == (100, 60_000, 100)


def test_defaults_status_429_and_burst_equal_to_requests() -> None:
    rl = load_one(
        HEAD
        + "  targetRef: {kind: Service, name: reviews}\n  limits: [{requests: 7, unit: hour}]\n"
    )
    assert rl.spec.status_code == 429
    assert rl.spec.target_ref is not None and rl.spec.target_ref.name == "reviews"
    (limit,) = rl.spec.limits
    assert (limit.max_tokens, limit.interval_ms) == (7, 3_600_000)


def test_neither_selector_nor_target_ref_is_allowed() -> None:
    rl = load_one(HEAD + "  limits: [{requests: 1, unit: day}]\n")
    assert rl.spec.selector is None and rl.spec.target_ref is None


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ("limits: [{requests: 0, unit: second}]", "spec.limits[0].requests", "at least 1"),
        (
            "limits: [{requests: '20', unit: second}]",
            "spec.limits[0].requests",
            "remove the quotes",
        ),
        ("limits: [{requests: 2, unit: second, burst: 0}]", "spec.limits[0].burst", "at least 1"),
        ("limits: [{requests: 2}]", "spec.limits[0]", "one of 'unit' or 'interval' is required"),
        (
            "limits: [{requests: 2, unit: second, interval: 1s}]",
            "spec.limits[0]",
            "set only one of 'unit' or 'interval'",
        ),
        ("limits: [{requests: 2, unit: minutes}]", "spec.limits[0].unit", "did you mean 'minute'?"),
        (
            "limits: [{requests: 2, interval: 10ms}]",
            "spec.limits[0].interval",
            "at most every 50ms",
        ),
        ("limits: [{requests: 2, interval: 2}]", "spec.limits[0].interval", "'2s'"),
        (
            "limits: [{request: 2, unit: second}]",
            "spec.limits[0].request",
            "did you mean 'requests'?",
        ),
        ("limits: []", "spec.limits", "at least 1 item"),
        (
            "limits: [{requests: 2, unit: second}, "
            "{requests: 1, unit: second, match: [{uri: {prefix: /a}}]}]",
            "spec.limits",
            "limits[0] has no 'match'",
        ),
        (
            "limits: [{name: a, requests: 2, unit: second, match: [{uri: {prefix: /a}}]}, "
            "{name: a, requests: 2, unit: second}]",
            "spec.limits",
            "limit name 'a' is used more than once",
        ),
        (
            "limits: [{requests: 2, unit: second, match: [{}]}]",
            "spec.limits[0].match[0]",
            "empty match",
        ),
        (
            "limits: [{requests: 2, unit: second, match: []}]",
            "spec.limits[0].match",
            "at least 1 item",
        ),
        (
            "limits: [{requests: 2, unit: second, match: [{uri: {exact: /a, prefix: /b}}]}]",
            "spec.limits[0].match[0].uri",
            "set only one of 'exact', 'prefix' or 'regex'",
        ),
        (
            "limits: [{requests: 2, unit: second, match: [{headers: {'x y': {exact: a}}}]}]",
            "spec.limits[0].match[0].headers",
            "'x y' is not a valid header name",
        ),
        (
            "limits: [{requests: 2, unit: second, match: [{path: {prefix: /a}}]}]",
            "spec.limits[0].match[0].path",
            "unknown field 'path'",
        ),
        (
            "statusCode: 200\n  limits: [{requests: 2, unit: second}]",
            "spec.statusCode",
            "4xx or 5xx",
        ),
        (
            "statusCode: 420\n  limits: [{requests: 2, unit: second}]",
            "spec.statusCode",
            "4xx or 5xx",
        ),
        (
            "selector: {matchLabels: {app: a}}\n  targetRef: {kind: Service, name: a}\n"
            "  limits: [{requests: 2, unit: second}]",
            "spec",
            "set only one of 'selector' or 'targetRef'",
        ),
        (
            "targetRef: {kind: Deployment, name: a}\n  limits: [{requests: 2, unit: second}]",
            "spec.targetRef.kind",
            "use one of Service",
        ),
        (
            "selector: {matchLabels: {app: '*'}}\n  limits: [{requests: 2, unit: second}]",
            "spec.selector.matchLabels",
            "wildcards are not allowed",
        ),
    ],
)
def test_invalid_rate_limits_are_reported_at_their_field(
    spec: str, path: str, message: str
) -> None:
    result = load_text(HEAD + "  " + spec + "\n", "rl.yaml")
    assert not result.resources
    errors = [(m.path, m.message) for m in result.errors]
    assert any(p == path and message in text for p, text in errors), errors
    assert all(m.file == "rl.yaml" and m.document == 0 for m in result.errors)


def test_a_wrong_version_of_the_plait_group_is_an_error() -> None:
    result = load_text(GOOD.replace("v1alpha1", "v1"), "rl.yaml")
    (error,) = result.errors
    assert error.path == "apiVersion"
    assert "use one of policy.plait.dev/v1alpha1" in error.message
