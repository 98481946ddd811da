"""Validation messages: YAML paths, what was expected, and what to write instead."""

from __future__ import annotations

import pytest

from plait.api import load_text
from plait.api.destinationrule import LoadBalancerSettings
from plait.api.messages import closest, format_path, model_at
from plait.api.virtualservice import HTTPRetry, VirtualService

HEAD = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"


def errors_for(spec: str) -> list[tuple[str, str]]:
    result = load_text(HEAD + "spec:\n" + spec, "vs.yaml")
    assert result.resources == ()
    for m in result.messages:
        assert (m.file, m.document, m.kind, m.name) == ("vs.yaml", 0, "VirtualService", "r")
    return [(m.path, m.message) for m in result.errors]


def test_format_path_uses_yaml_names_and_indexes() -> None:
    assert format_path(("spec", "http", 0, "route", 1, "weight")) == "spec.http[0].route[1].weight"
    assert format_path(("spec", "http", 0, "match", 0, "headers", "x-user")) == (
        "spec.http[0].match[0].headers.x-user"
    )
    assert format_path(("metadata", "labels", "app.kubernetes.io/name")) == (
        'metadata.labels["app.kubernetes.io/name"]'
    )


def test_model_at_follows_lists_maps_and_optionals() -> None:
    assert model_at(VirtualService, ("spec", "http", 0, "retries")) is HTTPRetry
    loc = ("spec", "trafficPolicy", "portLevelSettings", 2, "loadBalancer")
    from plait.api import DestinationRule

    assert model_at(DestinationRule, loc) is LoadBalancerSettings
    assert model_at(VirtualService, ("spec", "hosts", 0)) is None
    assert model_at(VirtualService, ("spec", "nope")) is None


def test_weight_path_and_type() -> None:
    spec = """  hosts: [r]
  http:
  - route:
    - destination: {host: r, subset: v1}
      weight: 80
    - destination: {host: r, subset: v2}
      weight: twenty
"""
    assert errors_for(spec) == [
        ("spec.http[0].route[1].weight", "expected a whole number, got the string 'twenty'")
    ]


def test_unknown_field_suggests_the_closest() -> None:
    spec = "  hosts: [r]\n  http:\n  - route: [{destination: {host: r}}]\n    retryPolcy: {}\n"
    assert errors_for(spec) == [
        ("spec.http[0].retryPolcy", "unknown field 'retryPolcy'; did you mean 'retries'?")
    ]


def test_unknown_field_without_a_close_match_lists_the_valid_ones() -> None:
    [(path, message)] = errors_for("  hosts: [r]\n  zzz: 1\n")
    assert path == "spec.zzz"
    assert message == (
        "unknown field 'zzz'; expected one of: hosts, gateways, http, tls, tcp, exportTo"
    )


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        (
            "  hosts: reviews\n",
            "spec.hosts",
            "expected a list, got the string 'reviews'; write each item on its own line "
            "starting with '- '",
        ),
        (
            "  hosts: [80]\n",
            "spec.hosts[0]",
            'expected a string, got the number 80; quote it: "80"',
        ),
        (
            "  hosts: [r]\n  http:\n  - route: [{destination: {host: r, port: {number: '80'}}}]\n",
            "spec.http[0].route[0].destination.port.number",
            "expected a whole number, got the string '80'; remove the quotes",
        ),
        (
            "  hosts: [r]\n  http:\n  - route: [{destination: {host: r, port: {number: 0}}}]\n",
            "spec.http[0].route[0].destination.port.number",
            "must be at least 1, got 0",
        ),
        (
            "  hosts: [r]\n  http:\n  - route: [{destination: {host: r}}]\n    timeout: 10\n",
            "spec.http[0].timeout",
            "expected a duration with a unit such as '10s', got the number 10",
        ),
        (
            "  hosts: [r]\n  http:\n  - route: [{destination: {host: r}}]\n    timeout: 10 s\n",
            "spec.http[0].timeout",
            "'10 s' is not a duration; write a number with a unit, e.g. '1s', '500ms', '1.5s', "
            "'1m' or '1h'",
        ),
        (
            "  hosts: [r]\n  http:\n  - match: [{uri: {}}]\n    route: [{destination: {host: r}}]\n",
            "spec.http[0].match[0].uri",
            "one of 'exact', 'prefix' or 'regex' is required",
        ),
        (
            "  hosts: [r]\n  http:\n  - route: [{destination: {host: r}}]\n"
            "    retries: {attempts: 2, retryOn: '5xx,gateway-eror'}\n",
            "spec.http[0].retries.retryOn",
            "'gateway-eror' is not a retry condition; did you mean 'gateway-error'?",
        ),
        (
            "  hosts: [r]\n  http:\n  - route: [{destination: {host: r}}]\n"
            "    fault: {abort: {percentage: {value: 150}, httpStatus: 503}}\n",
            "spec.http[0].fault.abort.percentage.value",
            "must be at most 100.0, got 150",
        ),
        (
            "  hosts: ['*']\n  http:\n  - route: [{destination: {host: r}}]\n",
            "spec",
            "host '*' is not allowed for rules that apply to the mesh (sidecars); bind the "
            "VirtualService to a Gateway with 'gateways' or name the hosts",
        ),
    ],
)
def test_messages_name_the_field_and_say_what_to_do(spec: str, path: str, message: str) -> None:
    assert errors_for(spec) == [(path, message)]


def test_enum_values_are_listed_with_a_suggestion() -> None:
    text = (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
        "spec:\n  host: d\n  trafficPolicy:\n    tls: {mode: istio_mutual}\n"
    )
    [error] = load_text(text, "dr.yaml").messages
    assert error.path == "spec.trafficPolicy.tls.mode"
    assert error.message == (
        "'istio_mutual' is not allowed here; use one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL; "
        "did you mean 'ISTIO_MUTUAL'?"
    )


def test_required_fields_and_metadata() -> None:
    result = load_text("apiVersion: v1\nkind: Service\nmetadata: {namespace: Shop}\n", "s.yaml")
    assert [(m.path, m.message) for m in result.errors] == [
        ("metadata.name", "'name' is required"),
        (
            "metadata.namespace",
            "'Shop' is not a valid DNS label: use lowercase letters, digits and '-', starting and "
            "ending with a letter or digit (at most 63 characters)",
        ),
    ]


def test_a_misspelt_key_without_a_value_is_still_reported() -> None:
    assert errors_for("  hosts: [r]\n  gatewys:\n") == [
        ("spec.gatewys", "unknown field 'gatewys'; did you mean 'gateways'?")
    ]


def test_label_values_must_be_strings() -> None:
    result = load_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: s, labels: {version: 1, beta: yes}}\n",
        "s.yaml",
    )
    assert [(m.path, m.message) for m in result.errors] == [
        ("metadata.labels.version", 'expected a string, got the number 1; quote it: "1"'),
        ("metadata.labels.beta", 'expected a string, got the boolean true; quote it: "true"'),
    ]


def test_closest_prefers_a_shared_start() -> None:
    assert closest("retryPolcy", ["corsPolicy", "retries"]) == "retries"
    assert closest("hots", ["hosts", "gateways"]) == "hosts"
    assert closest("xyz", ["hosts", "gateways"]) is None
