"""Listeners (a row per filter chain) and routes (a row per route) of a config dump."""

from __future__ import annotations

import pytest

from configdumpkit import ADMIN, ECHO, config_dump, hcm, socket
from plait.local.listenerrows import (
    listener_rows,
    match_text,
    route_action_text,
    route_match_text,
    route_rows,
)


def test_each_filter_chain_is_a_row_with_its_match_filters_and_route() -> None:
    rows = listener_rows(config_dump())
    assert [(r.listener, r.address, r.state, r.chain, r.match) for r in rows] == [
        ("virtualInbound", "127.0.0.1:7000", "active", "inbound-mtls", "transport_protocol=tls"),
        (
            "virtualInbound",
            "127.0.0.1:7000",
            "active",
            "inbound-plaintext",
            "transport_protocol=raw_buffer",
        ),
    ]
    mtls = rows[0]
    assert mtls.filters == ("http_connection_manager",)
    assert mtls.route == "inbound|9000||"
    assert mtls.http_filters == ("rbac", "router")


def _listeners(*dynamic: dict[str, object]) -> dict[str, object]:
    return {
        "configs": [{"@type": ADMIN + "ListenersConfigDump", "dynamic_listeners": list(dynamic)}]
    }


def test_a_rejected_listener_shows_envoys_reason_next_to_the_active_one() -> None:
    good = {
        "name": "gw",
        "address": socket(8080),
        "filter_chains": [{"filters": [hcm("http.8080")]}],
    }
    bad = {**good, "address": socket(1)}
    dump = _listeners(
        {
            "name": "gw",
            "active_state": {"listener": good},
            "error_state": {"failed_configuration": bad, "details": "cannot bind '127.0.0.1:1'"},
        }
    )
    rows = listener_rows(dump)
    assert [(r.address, r.state, r.chain) for r in rows] == [
        ("127.0.0.1:8080", "active", "#0"),
        ("127.0.0.1:1", "rejected: cannot bind '127.0.0.1:1'", "#0"),
    ]


def test_default_chain_tcp_proxy_and_a_listener_without_chains() -> None:
    tcp = {"name": "envoy.filters.network.tcp_proxy", "typed_config": {"cluster": "c"}}
    listener = {"name": "l", "address": socket(1), "default_filter_chain": {"filters": [tcp]}}
    empty = {"name": "e", "address": {"pipe": {"path": "/run/x.sock"}}}
    rows = listener_rows(
        _listeners(
            {"name": "l", "warming_state": {"listener": listener}},
            {"name": "e", "draining_state": {"listener": empty}},
        )
    )
    assert [(r.listener, r.state, r.chain, r.filters, r.route, r.address) for r in rows] == [
        ("l", "warming", "default", ("tcp_proxy",), "", "127.0.0.1:1"),
        ("e", "draining", "-", (), "", "unix:/run/x.sock"),
    ]


def test_match_text_lists_every_condition() -> None:
    match = {
        "destination_port": 8443,
        "server_names": ["a.example", "b.example"],
        "prefix_ranges": [{"address_prefix": "10.0.0.0", "prefix_len": 8}],
    }
    assert (
        match_text(match)
        == "destination_port=8443, server_names=a.example,b.example, prefix_ranges=10.0.0.0/8"
    )
    assert match_text(None) == match_text({}) == "any"


def test_route_rows_name_config_virtual_host_domains_match_and_cluster() -> None:
    (row,) = route_rows(config_dump())
    assert (row.route_config, row.virtual_host, row.domains, row.name, row.match, row.action) == (
        "outbound",
        "echo.default.svc.cluster.local:8080",
        ("echo.default.svc.cluster.local:8080", "echo:8080"),
        "default",
        "/*",
        ECHO,
    )


@pytest.mark.parametrize(
    ("match", "text"),
    [
        ({"prefix": "/api"}, "/api*"),
        ({"prefix": ""}, "/*"),
        ({"path": "/login"}, "/login"),
        ({"safe_regex": {"regex": "^/v[0-9]+"}}, "~^/v[0-9]+"),
        ({"path_separated_prefix": "/shop"}, "/shop/*"),
        (
            {
                "prefix": "/",
                "headers": [{"name": "end-user"}],
                "query_parameters": [{"name": "debug"}],
            },
            "/* headers: end-user query: debug",
        ),
    ],
)
def test_route_match_text(match: dict[str, object], text: str) -> None:
    assert route_match_text(match) == text


@pytest.mark.parametrize(
    ("route", "text"),
    [
        ({"route": {"cluster": "c"}}, "c"),
        (
            {
                "route": {
                    "weighted_clusters": {
                        "clusters": [{"name": "v1", "weight": 80}, {"name": "v2", "weight": 20}]
                    }
                }
            },
            "v1 (80), v2 (20)",
        ),
        ({"redirect": {"https_redirect": True}}, "redirect https_redirect=True"),
        ({"direct_response": {"status": 404}}, "direct response 404"),
    ],
)
def test_route_action_text(route: dict[str, object], text: str) -> None:
    assert route_action_text(route) == text
