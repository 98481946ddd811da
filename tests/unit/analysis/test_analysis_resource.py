"""Per-resource errors: regexes Envoy rejects, Istio's delegation rules, weights; and `vet`."""

from __future__ import annotations

import pytest
from analysis_kit import problems, vs

from plait.analysis import vet
from plait.api import load_text
from plait.errors import Severity

LOOKAHEAD = "'^/(?!admin).*'"


def paths(text: str, severity: Severity = Severity.ERROR) -> list[str]:
    return [m.path for m in problems(text) if m.severity is severity]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (
            f"  http:\n  - match: [{{uri: {{regex: {LOOKAHEAD}}}}}]\n    route: [{{destination: {{host: reviews}}}}]",
            "spec.http[0].match[0].uri.regex",
        ),
        (
            f"  http:\n  - route: [{{destination: {{host: reviews}}}}]\n  - match: [{{uri: {{prefix: /a}}}}, {{headers: {{x-user: {{regex: {LOOKAHEAD}}}}}}}]\n    route: [{{destination: {{host: reviews}}}}]",
            "spec.http[1].match[1].headers.x-user.regex",
        ),
        (
            f"  http:\n  - match: [{{queryParams: {{q: {{regex: {LOOKAHEAD}}}}}}}]\n    route: [{{destination: {{host: reviews}}}}]",
            "spec.http[0].match[0].queryParams.q.regex",
        ),
        (
            f"  http:\n  - match: [{{withoutHeaders: {{x.y: {{regex: {LOOKAHEAD}}}}}}}]\n    route: [{{destination: {{host: reviews}}}}]",
            'spec.http[0].match[0].withoutHeaders["x.y"].regex',
        ),
        (
            f"  http:\n  - match: [{{authority: {{regex: {LOOKAHEAD}}}}}]\n    route: [{{destination: {{host: reviews}}}}]",
            "spec.http[0].match[0].authority.regex",
        ),
        (
            f"  http:\n  - rewrite: {{uriRegexRewrite: {{match: {LOOKAHEAD}, rewrite: /}}}}\n    route: [{{destination: {{host: reviews}}}}]",
            "spec.http[0].rewrite.uriRegexRewrite.match",
        ),
        (
            f"  http:\n  - corsPolicy: {{allowOrigins: [{{exact: a}}, {{regex: {LOOKAHEAD}}}]}}\n    route: [{{destination: {{host: reviews}}}}]",
            "spec.http[0].corsPolicy.allowOrigins[1].regex",
        ),
    ],
)
def test_a_regex_envoy_rejects_is_an_error_at_its_exact_path(body: str, path: str) -> None:
    [error] = [m for m in problems(vs("r", body)) if m.severity is Severity.ERROR]
    assert error.path == path
    assert (error.kind, error.name, error.document) == ("VirtualService", "r", 0)
    assert "invalid perl operator: (?!" in error.message


def test_a_regex_over_envoys_program_size_is_an_error() -> None:
    big = "/[^/]{1,1000}" * 11
    body = f"  http:\n  - match: [{{uri: {{regex: '{big}'}}}}]\n    route: [{{destination: {{host: reviews}}}}]"
    [error] = problems(vs("r", body))
    assert error.path == "spec.http[0].match[0].uri.regex"
    assert "program size 33004 > 32768" in error.message


def test_valid_regexes_and_header_presence_pass() -> None:
    body = (
        "  http:\n  - match: [{uri: {regex: '/api/v[0-9]+/.*'}, headers: {x: {regex: '*'}},"
        " queryParams: {q: {regex: '*'}}}]\n"
        "    rewrite: {uriRegexRewrite: {match: '^/api/(.*)', rewrite: '/\\1'}}\n"
        "    route: [{destination: {host: reviews}}]"
    )
    assert problems(vs("r", body)) == []


def test_uri_regex_star_is_a_regex_not_presence() -> None:
    body = "  http:\n  - match: [{uri: {regex: '*'}}]\n    route: [{destination: {host: reviews}}]"
    assert paths(vs("r", body)) == ["spec.http[0].match[0].uri.regex"]


def test_an_empty_regex_is_an_error() -> None:
    body = "  http:\n  - match: [{headers: {x: {regex: ''}}}]\n    route: [{destination: {host: reviews}}]"
    [error] = problems(vs("r", body))
    assert error.path == "spec.http[0].match[0].headers.x.regex"
    assert "empty" in error.message


def test_a_delegate_virtual_service_cannot_delegate_again() -> None:
    body = "  http:\n  - route: [{destination: {host: reviews}}]\n  - delegate: {name: other}"
    assert paths(vs("child", body, hosts="[]")) == ["spec.http[1].delegate"]


def test_a_root_virtual_service_may_delegate() -> None:
    body = "  http:\n  - match: [{uri: {prefix: /r}}]\n    delegate: {name: child}"
    assert problems(vs("root", body)) == []


def test_regex_matches_are_refused_in_delegation() -> None:
    root = "  http:\n  - match: [{uri: {regex: '/r.*'}}]\n    delegate: {name: child}"
    child = "  http:\n  - match: [{headers: {x: {regex: 'a.*'}}}]\n    route: [{destination: {host: reviews}}]"
    for text, path in (
        (vs("root", root), "spec.http[0].match[0].uri.regex"),
        (vs("child", child, hosts="[]"), "spec.http[0].match[0].headers.x.regex"),
    ):
        [error] = problems(text)
        assert error.path == path
        assert "delegation" in error.message


@pytest.mark.parametrize(
    ("weights", "shares"),
    [((80, 30), ("72.73%", "27.27%")), ((1, 1), ("50%", "50%")), ((90, 0), ("100%", "0%"))],
)
def test_weights_not_adding_up_to_100_warn_with_the_real_shares(
    weights: tuple[int, int], shares: tuple[str, str]
) -> None:
    body = (
        "  http:\n  - route:\n"
        f"    - {{destination: {{host: reviews, subset: v1}}, weight: {weights[0]}}}\n"
        f"    - {{destination: {{host: reviews, subset: v2}}, weight: {weights[1]}}}"
    )
    [warning] = problems(vs("r", body))
    assert (warning.severity, warning.path) == (Severity.WARNING, "spec.http[0].route")
    assert f"reviews/v1 {shares[0]}" in warning.message
    assert f"reviews/v2 {shares[1]}" in warning.message


def test_weights_adding_up_to_100_are_fine() -> None:
    body = (
        "  http:\n  - route:\n"
        "    - {destination: {host: reviews, subset: v1}, weight: 99}\n"
        "    - {destination: {host: reviews, subset: v2}, weight: 1}\n"
        "  tcp:\n  - route:\n"
        "    - {destination: {host: reviews, subset: v1}, weight: 50}\n"
        "    - {destination: {host: reviews, subset: v2}, weight: 50}"
    )
    assert problems(vs("r", body)) == []


def test_a_lone_destination_with_a_weight_warns_that_it_is_ignored() -> None:
    body = "  tcp:\n  - route:\n    - {destination: {host: reviews}, weight: 30}"
    [warning] = problems(vs("r", body))
    assert (warning.severity, warning.path) == (Severity.WARNING, "spec.tcp[0].route[0].weight")


def test_weights_above_what_envoy_can_add_are_an_error() -> None:
    big = 2**31 - 1
    body = "  http:\n  - route:\n" + "".join(
        f"    - {{destination: {{host: reviews, subset: v{i}}}, weight: {big}}}\n" for i in range(3)
    )
    [error] = problems(vs("r", body))
    assert (error.severity, error.path) == (Severity.ERROR, "spec.http[0].route")
    assert "4294967295" in error.message


def test_vet_drops_only_the_resources_with_errors() -> None:
    good = vs("good", "  http:\n  - route: [{destination: {host: reviews}}]")
    bad = vs(
        "bad",
        "  http:\n  - match: [{uri: {regex: '(?<=a)b'}}]\n    route: [{destination: {host: reviews}}]",
    )
    warned = vs("warned", "  tcp:\n  - route: [{destination: {host: reviews}, weight: 5}]")
    loaded = load_text(good + bad + warned, "mesh.yaml")
    result = vet(loaded)
    assert [item.resource.metadata.name for item in result.resources] == ["good", "warned"]
    assert result.messages[: len(loaded.messages)] == loaded.messages
    assert [(m.name, m.severity) for m in result.messages[len(loaded.messages) :]] == [
        ("bad", Severity.ERROR),
        ("warned", Severity.WARNING),
    ]


def test_regexes_of_other_kinds_are_checked_too() -> None:
    """The walk is generic: plait's RateLimit sends its matches to Envoy as well."""
    text = """
apiVersion: policy.plait.dev/v1alpha1
kind: RateLimit
metadata: {name: reviews}
spec:
  selector: {matchLabels: {app: reviews}}
  limits:
  - match: [{uri: {prefix: /a}}, {headers: {x-user: {regex: '(?!bot).*'}}}]
    requests: 10
    unit: second
"""
    loaded = load_text(text, "mesh.yaml")
    assert loaded.errors == ()
    [error] = problems(text)
    assert (error.kind, error.path) == ("RateLimit", "spec.limits[0].match[1].headers.x-user.regex")
