"""Clusters, endpoints, secrets and the bootstrap of a config dump as readable rows."""

from __future__ import annotations

import datetime as dt

import pytest

from configdumpkit import (
    ECHO,
    LEAF_SERIAL,
    NOT_AFTER,
    NOT_BEFORE,
    ROOT_SERIAL,
    SPIFFE,
    certificate,
    certs_json,
    clusters_json,
    config_dump,
    eds_cluster,
    inline,
    upstream_tls,
)
from plait.local.configrows import (
    TlsMode,
    bootstrap_info,
    circuit_breakers,
    cluster_rows,
    cluster_tls,
    endpoint_rows,
    health_text,
    secret_rows,
)


def test_cluster_rows_show_type_endpoints_tls_and_limits() -> None:
    rows = {r.name: r for r in cluster_rows(config_dump())}
    echo = rows[ECHO]
    assert (echo.type, echo.eds, echo.endpoints, echo.tls, echo.circuit_breakers, echo.state) == (
        "EDS",
        True,
        2,
        TlsMode.AUTO_MTLS,
        "unlimited",
        "active",
    )
    inbound = rows["inbound|9000||"]
    assert (inbound.type, inbound.endpoints, inbound.tls) == ("STATIC", 1, TlsMode.PLAIN)
    assert (rows["xds-grpc"].state, rows["xds-grpc"].tls) == ("static", TlsMode.MTLS)


def test_an_eds_cluster_without_eds_in_the_dump_has_an_unknown_count() -> None:
    dump = config_dump()
    dump["configs"] = [c for c in dump["configs"] if not c["@type"].endswith("EndpointsConfigDump")]
    echo = next(r for r in cluster_rows(dump) if r.name == ECHO)
    assert echo.eds and echo.endpoints is None


@pytest.mark.parametrize(
    ("cluster", "mode"),
    [
        ({"transport_socket": upstream_tls()}, TlsMode.MTLS),  # DestinationRule ISTIO_MUTUAL
        ({"transport_socket": upstream_tls(cert="client-cred")}, TlsMode.TLS_CLIENT_CERT),
        ({"transport_socket": upstream_tls(cert=None)}, TlsMode.TLS),  # SIMPLE
        ({"transport_socket": {"name": "envoy.transport_sockets.raw_buffer"}}, TlsMode.PLAIN),
        ({}, TlsMode.PLAIN),
        (eds_cluster("x"), TlsMode.AUTO_MTLS),
    ],
)
def test_cluster_tls_mode(cluster: dict[str, object], mode: TlsMode) -> None:
    assert cluster_tls(cluster) == mode


def test_circuit_breakers_name_only_the_limits_that_limit() -> None:
    limited = {
        "circuit_breakers": {
            "thresholds": [
                {"max_connections": 100, "max_pending_requests": 4294967295, "max_retries": 3},
                {"priority": "HIGH", "max_connections": 5},
            ]
        }
    }
    assert circuit_breakers(limited) == "conn 100, retries 3"
    assert circuit_breakers({}) == "Envoy defaults"


def test_endpoints_carry_live_health_weight_and_tls_mode() -> None:
    rows = endpoint_rows(clusters_json(), config_dump())
    assert [(r.cluster, r.address, r.health, r.weight, r.tls_mode) for r in rows] == [
        (ECHO, "127.0.0.1:7001", "HEALTHY", 1, "istio"),
        (ECHO, "127.0.0.1:7002", "UNHEALTHY (outlier check)", 3, "istio"),
    ]


@pytest.mark.parametrize(
    ("status", "text"),
    [
        ({"eds_health_status": "HEALTHY"}, "HEALTHY"),
        ({"eds_health_status": "DRAINING"}, "DRAINING"),
        (
            {
                "eds_health_status": "HEALTHY",
                "failed_active_health_check": True,
                "failed_outlier_check": True,
            },
            "UNHEALTHY (outlier check, active health check)",
        ),
        ({"failed_active_degraded_check": True}, "DEGRADED (active health check)"),
        (
            {"eds_health_status": "HEALTHY", "pending_dynamic_removal": True},
            "HEALTHY, removal pending",
        ),
    ],
)
def test_health_text(status: dict[str, object], text: str) -> None:
    assert health_text(status) == text


def test_secrets_show_san_serial_and_validity_and_whether_envoy_uses_them() -> None:
    rows = secret_rows(config_dump(), certs_json("6ec89df4c8cca0d5a3425aa148395dacb3fb02bc"))
    default, root = rows
    assert (default.name, default.kind, default.status, default.sans) == (
        "default",
        "cert chain",
        "ACTIVE",
        (SPIFFE,),
    )
    assert default.serial == f"{LEAF_SERIAL:x}" and default.in_use
    assert (default.not_before, default.not_after) == (NOT_BEFORE, NOT_AFTER)
    assert default.valid_at(NOT_BEFORE + dt.timedelta(hours=1))
    assert not default.valid_at(NOT_AFTER + dt.timedelta(seconds=1))
    # the root's serial keeps its leading zero, as Envoy's /certs prints it
    assert (root.name, root.kind, root.serial, root.in_use) == (
        "ROOTCA",
        "CA bundle",
        "0467f7ea1b2a75fac159cab9b4130b9f6e8115d6",
        False,
    )
    assert root.serial == f"{ROOT_SERIAL:040x}"


def test_secret_rows_never_carry_the_private_key() -> None:
    rows = secret_rows(config_dump(), certs_json())
    assert "W3JlZGFjdGVkXQ" not in repr(rows)


def test_a_trust_bundle_gives_a_row_per_root_and_a_chain_only_its_leaf() -> None:
    leaf, intermediate = certificate(11, uri=SPIFFE), certificate(12, ca=True)
    old_root, new_root = certificate(21, ca=True), certificate(22, ca=True)
    secrets = [
        {
            "name": "default",
            "secret": {
                "name": "default",
                "tls_certificate": {"certificate_chain": inline(leaf, intermediate)},
            },
        },
        {
            "name": "ROOTCA",
            "secret": {
                "name": "ROOTCA",
                "validation_context": {"trusted_ca": inline(old_root, new_root)},
            },
        },
    ]
    rows = secret_rows(config_dump(secrets=secrets), certs_json("0b", "16"))
    assert [(r.name, r.serial, r.in_use) for r in rows] == [
        ("default", "0b", True),
        ("ROOTCA", "15", False),
        ("ROOTCA", "16", True),
    ]


def test_a_secret_without_a_certificate_yet_still_gets_a_row() -> None:
    rows = secret_rows(config_dump(secrets=[{"name": "default"}]), certs_json())
    assert [(r.name, r.serial, r.not_after) for r in rows] == [("default", "-", None)]


def test_bootstrap_info_names_the_node_and_the_xds_server() -> None:
    info = bootstrap_info(config_dump())
    assert (info.node_id, info.node_cluster, info.envoy_version, info.admin) == (
        "sidecar~client-0.default",
        "client",
        "1.40.0",
        "127.0.0.1:0",
    )
    assert info.xds == "127.0.0.1:15010 (cluster xds-grpc, TLS)"
    assert info.metadata["LABELS"] == {"app": "client"}
