"""Istio's labels from access-log records: both reporters, the gateway, mTLS or not."""

from __future__ import annotations

from typing import Any

from plait.model.labels import Labels
from plait.model.registry import Service, ServicePort
from plait.telemetry.labels import LABEL_NAMES, MeshView, Workload, caller, request_labels

CLIENT = Workload("client", "default", "client", {"app": "client", "version": "v1"})
ECHO_V1 = Workload("echo-v1", "default", "echo", {"app": "echo", "version": "v1"})
ECHO_V2 = Workload("echo-v2", "default", "echo", {"app": "echo", "version": "v2"})
GATEWAY = Workload("istio-ingressgateway", "istio-system", "istio-ingressgateway-service-account")
ECHO = Service(
    "echo.default.svc.cluster.local",
    "echo",
    "default",
    (ServicePort("http", 8080),),
    Labels.of({"app": "echo"}),
)
VIEW = MeshView(
    (CLIENT, ECHO_V1, ECHO_V2, GATEWAY),
    {"127.0.0.1:1001": ECHO_V1, "127.0.0.1:1002": ECHO_V2, "127.0.0.1:1003": CLIENT},
    {ECHO.hostname: ECHO},
)
CLIENT_ID = "spiffe://cluster.local/ns/default/sa/client"
ECHO_ID = "spiffe://cluster.local/ns/default/sa/echo"
GATEWAY_ID = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"


def record(direction: str, **fields: Any) -> dict[str, Any]:
    return {
        "direction": direction,
        "response_code": 200,
        "response_flags": "-",
        "authority": "echo:8080",
        **fields,
    }


def inbound_mtls(**fields: Any) -> dict[str, Any]:
    defaults = {
        "downstream_peer_uri_san": CLIENT_ID,
        "downstream_local_uri_san": ECHO_ID,
        "requested_server_name": "outbound_.8080_._.echo.default.svc.cluster.local",
        "source_workload": "default/client",
        "upstream_cluster": "inbound|9000||",
    }
    return record("inbound", **(defaults | fields))


def test_an_inbound_mtls_request_is_reported_by_the_destination_with_both_identities() -> None:
    labels = request_labels(inbound_mtls(), ECHO_V2, ECHO_ID, VIEW)
    assert labels is not None
    assert list(labels) == list(LABEL_NAMES)
    assert {
        k: labels[k] for k in LABEL_NAMES if not k.endswith(("cluster", "canonical_revision"))
    } == {
        "reporter": "destination",
        "source_workload": "client",
        "source_workload_namespace": "default",
        "source_principal": CLIENT_ID,
        "source_app": "client",
        "source_version": "v1",
        "source_canonical_service": "client",
        "destination_workload": "echo-v2",
        "destination_workload_namespace": "default",
        "destination_principal": ECHO_ID,
        "destination_app": "echo",
        "destination_version": "v2",
        "destination_service": "echo.default.svc.cluster.local",
        "destination_service_name": "echo",
        "destination_service_namespace": "default",
        "destination_canonical_service": "echo",
        "request_protocol": "http",
        "response_code": "200",
        "response_flags": "-",
        "connection_security_policy": "mutual_tls",
    }


def test_a_plaintext_inbound_request_has_no_principals_and_policy_none() -> None:
    rec = record(
        "inbound", source_workload="default/client", response_code=503, response_flags="UF"
    )
    labels = request_labels(rec, ECHO_V1, ECHO_ID, VIEW)
    assert labels is not None
    assert labels["connection_security_policy"] == "none"
    assert labels["source_principal"] == labels["destination_principal"] == "unknown"
    assert labels["source_workload"] == "client"  # named by its sidecar, nothing contradicts it
    assert labels["destination_service"] == "echo.default.svc.cluster.local"  # from :authority
    assert (labels["response_code"], labels["response_flags"]) == ("503", "UF")


def test_a_caller_named_against_its_certificate_is_not_believed() -> None:
    spoofed = inbound_mtls(source_workload="default/echo-v1")  # client's cert, echo's name
    assert caller(spoofed, VIEW) == CLIENT  # the only workload the certificate can be
    shared = inbound_mtls(downstream_peer_uri_san=ECHO_ID, source_workload="default/client")
    assert (caller(shared, VIEW).name, caller(shared, VIEW).namespace) == ("unknown", "default")
    other_ns = inbound_mtls(source_workload="prod/client")
    assert caller(other_ns, VIEW) == CLIENT


def test_without_a_name_the_only_workload_under_the_identity_is_the_caller() -> None:
    from_gateway = inbound_mtls(downstream_peer_uri_san=GATEWAY_ID, source_workload=None)
    assert caller(from_gateway, VIEW) == GATEWAY
    shared = inbound_mtls(downstream_peer_uri_san=ECHO_ID, source_workload=None)
    assert caller(shared, VIEW).name == "unknown"  # echo-v1 and echo-v2 share `echo`


def test_an_unknown_plaintext_caller_is_unknown() -> None:
    labels = request_labels(record("inbound"), ECHO_V1, ECHO_ID, VIEW)
    assert labels is not None
    assert labels["source_workload"] == labels["source_workload_namespace"] == "unknown"
    assert labels["source_app"] == "unknown"


def test_an_outbound_request_is_reported_by_the_source_with_the_callee_from_its_address() -> None:
    rec = record(
        "outbound",
        upstream_cluster="outbound|8080|v1|echo.default.svc.cluster.local",
        upstream_host="127.0.0.1:1001",
        upstream_peer_uri_san=ECHO_ID,
        response_flags=None,
        duration=3,
    )
    labels = request_labels(rec, CLIENT, CLIENT_ID, VIEW)
    assert labels is not None
    assert labels["reporter"] == "source"
    assert (labels["source_workload"], labels["source_principal"]) == ("client", CLIENT_ID)
    assert (labels["destination_workload"], labels["destination_version"]) == ("echo-v1", "v1")
    assert labels["destination_principal"] == ECHO_ID
    assert labels["destination_service"] == "echo.default.svc.cluster.local"
    assert labels["connection_security_policy"] == "unknown"
    assert labels["response_flags"] == "-"


def test_an_outbound_request_without_mtls_names_no_principal() -> None:
    rec = record(
        "outbound",
        upstream_cluster="outbound|8080||echo.default.svc.cluster.local",
        upstream_host="127.0.0.1:1002",
    )
    labels = request_labels(rec, CLIENT, CLIENT_ID, VIEW)
    assert labels is not None
    assert labels["source_principal"] == labels["destination_principal"] == "unknown"
    assert labels["destination_workload"] == "echo-v2"


def test_a_request_that_never_left_the_proxy_has_code_0_and_an_unknown_destination() -> None:
    rec = record(
        "outbound",
        authority="nowhere.example.com",
        response_code=0,
        response_flags="UH",
        upstream_cluster=None,
    )
    labels = request_labels(rec, CLIENT, CLIENT_ID, VIEW)
    assert labels is not None
    assert (labels["response_code"], labels["response_flags"]) == ("0", "UH")
    assert labels["destination_workload"] == "unknown"
    assert labels["destination_service"] == "nowhere.example.com"
    assert labels["destination_service_namespace"] == "unknown"


def test_the_gateway_reports_as_source() -> None:
    rec = record(
        "gateway",
        authority="echo.lab.example",
        upstream_cluster="outbound|8080||echo.default.svc.cluster.local",
        upstream_host="127.0.0.1:1001",
        upstream_peer_uri_san=ECHO_ID,
        response_code=404,
        response_flags="NR",
    )
    labels = request_labels(rec, GATEWAY, GATEWAY_ID, VIEW)
    assert labels is not None
    assert labels["reporter"] == "source"
    assert labels["source_workload"] == "istio-ingressgateway"
    assert labels["source_workload_namespace"] == "istio-system"
    assert labels["source_principal"] == GATEWAY_ID
    assert labels["destination_workload"] == "echo-v1"
    assert labels["response_flags"] == "NR"


def test_grpc_is_told_apart_by_content_type() -> None:
    rec = inbound_mtls(content_type="application/grpc+proto", protocol="HTTP/2")
    labels = request_labels(rec, ECHO_V1, ECHO_ID, VIEW)
    assert labels is not None and labels["request_protocol"] == "grpc"


def test_a_record_of_no_known_direction_has_no_labels() -> None:
    assert request_labels({"response_code": 200}, CLIENT, CLIENT_ID, VIEW) is None
