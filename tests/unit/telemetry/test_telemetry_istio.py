"""Envoy's istiocustom stats rewritten under Istio's names and labels, parsed with
prometheus_client's parser; the caller is believed only when its certificate vouches."""

from __future__ import annotations

from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

from istiokit import FakeProxy
from plait.telemetry.istio import caller, rewrite
from plait.translate.metrics import LABEL_NAMES

CLIENT = "spiffe://cluster.local/ns/default/sa/client"
CLAIM = "default;client;client;client;v1;client;v1"


def families(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    return {
        f.name: [(s.name, s.labels, s.value) for s in f.samples]
        for f in text_string_to_metric_families(text)
    }


def envoy_line(value: float, **tags: str) -> str:
    pairs = ",".join(f'{k}="{v}"' for k, v in tags.items())
    return f"envoy_istiocustom_istio_requests_total{{{pairs}}} {value}"


def test_names_types_label_order_and_envoys_own_stats_pass_through() -> None:
    proxy = FakeProxy().count(3, 7, {"reporter": "source", "response_code": "200"})
    text = proxy.text()
    assert "# TYPE istio_requests_total counter" in text
    assert "# TYPE istio_request_duration_milliseconds histogram" in text
    assert "envoy_istiocustom" not in text
    found = families(text)
    assert found["envoy_cluster_upstream_rq"][0][2] == 99  # Envoy's own, unchanged
    ((name, labels, value),) = found["istio_requests"]
    assert name == "istio_requests_total" and value == 3
    assert list(labels) == list(LABEL_NAMES)
    buckets = {
        s[1]["le"]: s[2] for s in found["istio_request_duration_milliseconds"] if "le" in s[1]
    }
    assert buckets["5"] == 0 and buckets["10"] == 3 and buckets["3600000"] == 3


def test_a_claim_is_believed_only_when_the_certificate_vouches() -> None:
    named = caller(CLAIM, CLIENT)
    assert named["source_workload"] == "client" and named["source_version"] == "v1"
    assert named["source_principal"] == CLIENT and named["source_cluster"] == "Kubernetes"
    # another service account (or namespace) than the certificate's: not believed
    other = caller(CLAIM, "spiffe://cluster.local/ns/default/sa/intruder")
    assert other["source_workload"] == "unknown" and other["source_app"] == "unknown"
    assert other["source_workload_namespace"] == "default"
    assert other["source_principal"] == "spiffe://cluster.local/ns/default/sa/intruder"
    # no certificate (plain text): nobody, whatever the header said
    assert set(caller(CLAIM, "").values()) == {"unknown"}
    assert caller("", CLIENT)["source_workload"] == "unknown"
    assert caller("garbage", CLIENT)["source_workload"] == "unknown"


def test_empty_values_become_istios_defaults_and_collapsed_series_are_summed() -> None:
    common = {"reporter": "destination", "source_principal": CLIENT, "response_flags": "-"}
    text = "\n".join(
        [
            "# TYPE envoy_istiocustom_istio_requests_total counter",
            envoy_line(2, source_peer="", response_code="", request_protocol="", **common),
            envoy_line(5, source_peer="x;y", response_code="", request_protocol="", **common),
            envoy_line(
                4, source_peer=CLAIM, response_code="200", request_protocol="grpc",
                grpc_response_status="14", **common,
            ),
            envoy_line(
                1, source_peer=CLAIM, response_code="200", request_protocol="",
                grpc_response_status="0", **common,
            ),
        ]
    )  # fmt: skip
    samples = families(rewrite(text))["istio_requests"]
    by = {(s[1]["source_workload"], s[1]["request_protocol"]): s for s in samples}
    assert len(samples) == 3
    unknown = by[("unknown", "http")]
    assert unknown[2] == 7 and unknown[1]["response_code"] == "0"
    assert unknown[1]["destination_workload"] == "unknown"
    assert by[("client", "grpc")][1]["grpc_response_status"] == "14"
    assert by[("client", "http")][1]["grpc_response_status"] == ""


def test_promql_sum_by_destination_service_and_response_code() -> None:
    a, b = FakeProxy(), FakeProxy()
    for proxy, n, code in ((a, 7, "200"), (a, 4, "503"), (b, 5, "200")):
        proxy.count(
            n,
            1,
            {
                "reporter": "destination",
                "destination_service": "echo.default.svc.cluster.local",
                "response_code": code,
            },
        )  # noqa: E501
    b.count(
        2,
        1,
        {
            "reporter": "destination",
            "destination_service": "x.default.svc.cluster.local",
            "response_code": "200",
        },
    )  # noqa: E501
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for proxy in (a, b):
        for _, labels, value in families(proxy.text())["istio_requests"]:
            sums[labels["destination_service"], labels["response_code"]] += value
    assert dict(sums) == {
        ("echo.default.svc.cluster.local", "200"): 12,
        ("echo.default.svc.cluster.local", "503"): 4,
        ("x.default.svc.cluster.local", "200"): 2,
    }


def test_tcp_families_get_istios_tcp_labels_and_the_caller_by_certificate() -> None:
    from plait.translate.tcpmetrics import TCP_LABEL_NAMES

    tags = (
        f'reporter="destination",source_peer="unknown",source_principal="{CLIENT}",'
        'request_protocol="tcp",response_flags="",connection_security_policy="mutual_tls"'
    )
    text = rewrite(
        f"envoy_istiocustom_istio_tcp_sent_bytes_total{{{tags}}} 36\n"
        f"envoy_istiocustom_istio_tcp_connections_opened_total{{{tags}}} 2\n"
    )
    assert "# TYPE istio_tcp_sent_bytes_total counter" in text
    found = families(text)
    ((name, labels, value),) = found["istio_tcp_sent_bytes"]
    assert (name, value) == ("istio_tcp_sent_bytes_total", 36)
    assert list(labels) == list(TCP_LABEL_NAMES)
    assert labels["source_principal"] == CLIENT and labels["source_workload_namespace"] == "default"
    assert labels["source_workload"] == "unknown" and labels["request_protocol"] == "tcp"
    assert labels["response_flags"] == "-"
    assert found["istio_tcp_connections_opened"][0][2] == 2
