"""Rules and matches that can never be reached in one VirtualService."""

from __future__ import annotations

import pytest
from analysis_kit import vs, warnings_of

DEST = "    route: [{destination: {host: reviews}}]\n"


def rules(*matches: str | None) -> str:
    """An `http` list, one rule per entry: its `match` flow list, or no match for None."""
    out = "  http:\n"
    for m in matches:
        out += (f"  - match: {m}\n" if m is not None else "  -") + DEST
    return out.replace("  -    route", "  - route")


@pytest.mark.parametrize(
    "catch_all",
    [
        None,
        "[{uri: {prefix: /}}]",
        "[{uri: {prefix: ''}}]",
        "[{uri: {regex: '.*'}}]",
        "[{name: all, ignoreUriCase: true}]",
        "[{uri: {prefix: /x}}, {uri: {prefix: /}}]",
    ],
)
def test_rules_after_a_catch_all_are_never_used(catch_all: str | None) -> None:
    text = vs("r", rules("[{uri: {prefix: /a}}]", catch_all, "[{uri: {prefix: /b}}]", None))
    found = warnings_of(text)
    assert [(n, p) for n, p, _ in found] == [("r", "spec.http[2]"), ("r", "spec.http[3]")]
    assert "spec.http[1]" in found[0][2]


@pytest.mark.parametrize(
    "narrower",
    [
        "[{uri: {prefix: /}, headers: {x-canary: {exact: 'yes'}}}]",
        "[{uri: {prefix: /}, method: {exact: GET}}]",
        "[{uri: {prefix: /}, port: 8080}]",
        "[{uri: {prefix: /}, gateways: [mesh]}]",
        "[{uri: {prefix: /}, sourceLabels: {app: frontend}}]",
        "[{uri: {exact: /}}]",
        "[{uri: {regex: '/a.*'}}]",
    ],
)
def test_a_rule_with_a_narrower_match_is_no_catch_all(narrower: str) -> None:
    assert warnings_of(vs("r", rules(narrower, "[{uri: {prefix: /b}}]"))) == []


def test_a_delegating_rule_is_no_catch_all() -> None:
    body = "  http:\n  - delegate: {name: child}\n" + rules("[{uri: {prefix: /b}}]")[8:]
    child = vs("child", "  http:\n  - match: [{uri: {prefix: /a}}]\n" + DEST, hosts="[]")
    assert warnings_of(vs("r", body) + child) == []


def test_a_repeated_match_is_never_used() -> None:
    text = vs(
        "r",
        rules(
            "[{uri: {prefix: /a}, headers: {x: {exact: '1'}}}]",
            "[{uri: {prefix: /b}}, {name: again, uri: {prefix: /a}, headers: {x: {exact: '1'}}}]",
        ),
    )
    [(_, path, message)] = warnings_of(text)
    assert path == "spec.http[1].match[1]"
    assert "spec.http[0].match[0]" in message


def test_tcp_rules_after_one_without_match_are_never_used() -> None:
    body = (
        "  tcp:\n  - match: [{port: 9000}]\n    route: [{destination: {host: reviews}}]\n"
        "  - route: [{destination: {host: reviews}}]\n"
        "  - match: [{port: 9001}]\n    route: [{destination: {host: reviews}}]"
    )
    assert [p for _, p, _ in warnings_of(vs("r", body))] == ["spec.tcp[2]"]
