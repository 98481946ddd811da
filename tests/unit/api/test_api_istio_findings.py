"""Issue 15's findings: valid Istio config plait refused, config Envoy would refuse that
plait passed, Istio's checks plait skipped, and a crash. Each case is a verdict of
`plait analyze` (load, vet, snapshot, analyze) on one YAML text."""

from __future__ import annotations

from typing import get_args

import pytest
from istio_kit import error_texts, messages

from plait.analysis import vet
from plait.api import load_text
from plait.api.security import AuthorizationPolicy, is_dry_run
from plait.api.serviceentry import Resolution

SE = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: se}}
spec:
{spec}"""
AP = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: ap, namespace: foo{meta}}}
spec:
{spec}"""
RA = """apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: ra, namespace: foo}}
spec:
{spec}"""
VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs}}
spec:
{spec}"""
DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: dr}}
spec:
{spec}"""
GW = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
{spec}"""


def ap(rule: str, meta: str = "") -> str:
    return AP.format(meta=meta, spec=f"  rules:\n  - {rule}")


def ra(rule: str) -> str:
    return RA.format(spec=f"  jwtRules:\n  - {rule}")


def route(extra: str) -> str:
    return VS.format(spec="  hosts: [r]\n  http:\n  - route: [{destination: {host: r}}]\n" + extra)


VALID = {
    "dynamic dns": SE.format(
        spec="  hosts: ['*.example.com']\n  resolution: DYNAMIC_DNS\n"
        "  ports: [{number: 80, name: http, protocol: HTTP}]"
    ),
    "issuer only": ra("{issuer: https://accounts.example.com}"),
    "path template one segment": ap("{to: [{operation: {paths: ['/path/{*}']}}]}"),
    "path template any suffix": ap("{to: [{operation: {paths: ['/{**}/x']}}]}"),
    "trust domains": ap(
        "{from: [{source: {trustDomains: [td1, '*.td'], notTrustDomains: [bad.td]}}]}"
    ),
    "source.trustDomain": ap("{when: [{key: source.trustDomain, values: [td1]}]}"),
    "experimental filter key": ap(
        "{when: [{key: 'experimental.envoy.filters.a.b[c]', values: [x]}]}"
    ),
    "jwt presence and space-delimited claims": ra(
        "{issuer: a, jwksUri: 'https://a/k', presence: REQUIRED, "
        "spaceDelimitedClaims: [custom_scope]}"
    ),
    "bare service account": ap("{from: [{source: {serviceAccounts: [sa1]}}]}"),
    "empty issuer with jwksUri": ra("{issuer: '', jwksUri: 'https://a/k'}"),
    "IPv6 ending in :: in a flow list": SE.format(
        spec="  hosts: [a.example.com]\n  addresses: [1.2.3.4, 001:db8::]\n"
        "  ports: [{number: 80, name: http, protocol: HTTP}]"
    ),
    "dry-run t": ap(
        "{to: [{operation: {methods: [GET]}}]}", ", annotations: {istio.io/dry-run: t}"
    ),
}


@pytest.mark.parametrize("text", VALID.values(), ids=VALID.keys())
def test_valid_istio_config_passes(text: str) -> None:
    assert error_texts(text) == []


INVALID = {
    # Envoy would refuse these (a NACK); analyze must say so first
    "empty header name in add": (
        route("    headers: {request: {add: {'': x}}}"),
        "header name",
    ),
    "empty header name in remove": (
        route("    headers: {response: {remove: ['']}}"),
        "header name",
    ),
    "bad % in a header value": (
        route("    headers: {request: {set: {x-a: 'abc%123'}}}"),
        "%",
    ),
    "maglev table size not prime": (
        DR.format(
            spec="  host: r\n  trafficPolicy: {loadBalancer: {consistentHash: "
            "{httpHeaderName: x, maglev: {tableSize: 1000}}}}"
        ),
        "prime",
    ),
    # Istio's checks
    "host syntax": (
        VS.format(spec="  hosts: ['foo.ba!r']\n  http: [{route: [{destination: {host: r}}]}]"),
        "foo.ba!r",
    ),
    "wildcard in the middle of a host": (
        VS.format(spec="  hosts: ['foo.*.bar.com']\n  http: [{route: [{destination: {host: r}}]}]"),
        "foo.*.bar.com",
    ),
    "gateway host ns1/*": (
        VS.format(
            spec="  hosts: [r]\n  gateways: ['ns1/*']\n  http: [{route: [{destination: {host: r}}]}]"
        ),
        "ns1/*",
    ),
    "rewrite authority with :authority header": (
        route("    rewrite: {authority: a}\n    headers: {request: {set: {':authority': b}}}"),
        "authority",
    ),
    "serviceAccounts with namespaces": (
        ap("{from: [{source: {serviceAccounts: [a/b], namespaces: [a]}}]}"),
        "serviceAccounts",
    ),
    "insecureSkipVerify with subjectAltNames": (
        DR.format(
            spec="  host: r\n  trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true, "
            "subjectAltNames: [a]}}"
        ),
        "insecureSkipVerify",
    ),
    "retries attempts 0 with perTryTimeout": (
        route("    retries: {attempts: 0, perTryTimeout: 1s}"),
        "attempts",
    ),
    "empty header match key": (
        VS.format(
            spec="  hosts: [r]\n  http: [{match: [{headers: {'': {exact: a}}}], "
            "route: [{destination: {host: r}}]}]"
        ),
        "header",
    ),
    "empty selector key": (
        ap("{to: [{operation: {methods: [GET]}}]}").replace(
            "spec:\n", "spec:\n  selector: {matchLabels: {'': a}}\n"
        ),
        "selector",
    ),
    "CORS method": (
        route("    corsPolicy: {allowOrigins: [{exact: a}], allowMethods: [PUTT]}"),
        "PUTT",
    ),
    "dry-run value": (
        ap("{to: [{operation: {methods: [GET]}}]}", ", annotations: {istio.io/dry-run: 'yes'}"),
        "dry-run",
    ),
    "typo in a kind of an Istio group": (
        "apiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata: {name: a}\n",
        "did you mean VirtualService",
    ),
}


@pytest.mark.parametrize(("text", "needle"), INVALID.values(), ids=INVALID.keys())
def test_invalid_config_is_an_error(text: str, needle: str) -> None:
    found = error_texts(text)
    assert found, "accepted"
    assert any(needle in f for f in found), found


def test_unknown_kind_of_another_group_stays_a_warning() -> None:
    text = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: a}\n"
    assert error_texts(text) == []
    assert [m.severity.value for m in messages(text)] == ["warning"]


def test_every_resolution_the_api_accepts_reaches_the_model() -> None:
    for resolution in get_args(Resolution):
        hosts = "['*.example.com']" if resolution in ("NONE", "DYNAMIC_DNS") else "[a.example.com]"
        text = SE.format(
            spec=f"  hosts: {hosts}\n  resolution: {resolution}\n"
            "  ports: [{number: 80, name: http, protocol: HTTP}]"
        )
        assert error_texts(text) == [], resolution


def test_dry_run_reads_values_as_go_parse_bool() -> None:
    for value, dry in (
        ("t", True),
        ("T", True),
        ("1", True),
        ("TRUE", True),
        ("f", False),
        ("0", False),
        ("False", False),
    ):
        text = ap(
            "{to: [{operation: {methods: [GET]}}]}",
            f", annotations: {{istio.io/dry-run: '{value}'}}",
        )
        (item,) = vet(load_text(text, "t.yaml")).resources
        assert isinstance(item.resource, AuthorizationPolicy)
        assert is_dry_run(item.resource) is dry, value
