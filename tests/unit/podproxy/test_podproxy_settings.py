"""The proxy in a pod: its pod from the injected environment, the Proxy it announces,
and the local agent's options it runs with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from plait.errors import PodProxyError
from plait.inject import InjectSettings, inject
from plait.model.proxy import ProxyKind, Traffic
from plait.podproxy import PodProxyOptions, pod_info, pod_proxy
from plait.podproxy.settings import sidecar_options

ENV = {
    "POD_NAME": "reviews-v1-7d9f8c-abcde",
    "POD_NAMESPACE": "shop",
    "INSTANCE_IP": "10.1.2.3",
    "SERVICE_ACCOUNT": "reviews",
    "ISTIO_META_WORKLOAD_NAME": "reviews-v1",
    "ISTIO_METAJSON_LABELS": '{"app": "reviews", "version": "v1"}',
    "ISTIO_META_POD_PORTS": '[{"name":"grpc","containerPort":9090,"protocol":"UDP"},'
    '{"name":"http","containerPort":9080}]',
}


def options(kind: ProxyKind = ProxyKind.SIDECAR, **kw: Any) -> PodProxyOptions:
    return PodProxyOptions(
        kind,
        "plaitd.istio-system.svc:15010",
        "https://plaitd.istio-system.svc:15012",
        "cluster.local",
        Path("/var/run/secrets/tokens/plait-token"),
        Path("/var/run/secrets/istio/root-cert.pem"),
        **kw,
    )


def test_the_pod_comes_from_the_injected_environment() -> None:
    pod = pod_info(ENV)
    assert (pod.name, pod.namespace, pod.ip, pod.service_account, pod.workload) == (
        "reviews-v1-7d9f8c-abcde",
        "shop",
        "10.1.2.3",
        "reviews",
        "reviews-v1",
    )
    assert pod.labels.as_dict() == {"app": "reviews", "version": "v1"}
    assert pod.app_port == 9080  # the first TCP port; UDP is not captured


def test_what_the_injector_writes_is_what_the_agent_reads() -> None:
    """Round trip: the injected container's literal env (plus the downward API's values)."""
    raw = {
        "metadata": {
            "name": "reviews-v1-7d9f8c-abcde",
            "namespace": "shop",
            "labels": {"app": "reviews", "pod-template-hash": "7d9f8c"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "reviews-v1-7d9f8c"}],
        },
        "spec": {"containers": [{"name": "r", "image": "r", "ports": [{"containerPort": 9080}]}]},
    }
    proxy = inject(raw, InjectSettings())["spec"]["initContainers"][1]
    env = {e["name"]: e["value"] for e in proxy["env"] if "value" in e}
    pod = pod_info({**env, "POD_NAME": "p", "POD_NAMESPACE": "shop", "INSTANCE_IP": "10.0.0.9"})
    assert pod.workload == "reviews-v1"
    assert pod.labels.as_dict()["pod-template-hash"] == "7d9f8c"
    assert pod.labels.as_dict()["security.istio.io/tlsMode"] == "istio"
    assert pod.app_port == 9080
    assert pod.service_account == "default"


def test_without_the_injectors_metadata_the_pod_name_gives_the_workload() -> None:
    env = {k: v for k, v in ENV.items() if not k.startswith("ISTIO_META")}
    pod = pod_info(env)
    assert pod.workload == "reviews-v1"
    assert pod.labels.as_dict() == {}
    assert pod.app_port is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"POD_NAME": ""}, "POD_NAME is not set"),
        ({"INSTANCE_IP": " "}, "INSTANCE_IP is not set"),
        ({"ISTIO_METAJSON_LABELS": "{app"}, "ISTIO_METAJSON_LABELS is not JSON"),
        ({"ISTIO_METAJSON_LABELS": '{"a": 1}'}, "must map strings to strings"),
        ({"ISTIO_META_POD_PORTS": '{"a": 1}'}, "must be a list of ports"),
        ({"ISTIO_META_POD_PORTS": '[{"containerPort": 70000}]'}, "70000 is not a port"),
    ],
)
def test_a_missing_or_malformed_variable_is_named(change: dict[str, str], message: str) -> None:
    with pytest.raises(PodProxyError, match=message):
        pod_info(ENV | change)


def test_a_sidecar_announces_its_pod_captured() -> None:
    proxy = pod_proxy(options(), pod_info(ENV))
    assert proxy.id == "sidecar~reviews-v1-7d9f8c-abcde.shop"  # what PodAdmission looks up
    assert proxy.kind is ProxyKind.SIDECAR and proxy.traffic is Traffic.CAPTURED
    assert (proxy.workload, proxy.namespace, proxy.service_account) == (
        "reviews-v1",
        "shop",
        "reviews",
    )
    assert (proxy.address, proxy.app_port, proxy.inbound_port) == ("10.1.2.3", 9080, None)


def test_a_router_serves_gateway_ports_on_its_container_ports() -> None:
    opts = options(ProxyKind.GATEWAY, gateway_ports=((80, 8080), (443, 8443)))
    proxy = pod_proxy(opts, pod_info(ENV))
    assert proxy.id == "gateway~reviews-v1-7d9f8c-abcde.shop"
    assert proxy.traffic is Traffic.EXPLICIT and proxy.app_port is None
    assert proxy.host_port_for_gateway_port(80) == 8080
    assert proxy.host_port_for_gateway_port(443) == 8443


def test_the_local_agent_runs_with_the_pods_identity_and_fixed_ports() -> None:
    sidecar = sidecar_options(options(), pod_info(ENV), "10.96.0.10")
    assert sidecar.ca.identity.uri == "spiffe://cluster.local/ns/shop/sa/reviews"
    assert sidecar.ca.token_file == Path("/var/run/secrets/tokens/plait-token")
    assert (sidecar.xds_host, sidecar.xds_port, sidecar.xds_tls) == ("10.96.0.10", 15010, True)
    assert (sidecar.admin_host, sidecar.admin_port) == ("127.0.0.1", 15000)
    boot = sidecar.bootstrap()
    assert boot.prometheus_port == 15090 and boot.xds_identity is not None
    assert str(sidecar.sds_socket).startswith("/var/run/plait/")
    assert len(str(sidecar.sds_socket)) < 100


@pytest.mark.parametrize("address", ["plaitd", "plaitd:http", ":15010", "plaitd:0"])
def test_a_malformed_xds_address_is_refused(address: str) -> None:
    opts = PodProxyOptions(
        ProxyKind.SIDECAR, address, "https://ca:1", "cluster.local", Path("/t"), Path("/r")
    )
    with pytest.raises(PodProxyError, match="--xds-address"):
        opts.xds_host_port()


def test_a_plain_http_ca_is_refused() -> None:
    opts = PodProxyOptions(
        ProxyKind.SIDECAR, "cp:15010", "http://ca:1", "cluster.local", Path("/t"), Path("/r")
    )
    with pytest.raises(PodProxyError, match="--ca-address"):
        sidecar_options(opts, pod_info(ENV), "10.0.0.1")


def test_labels_round_trip_through_json() -> None:
    pod = pod_info(ENV | {"ISTIO_METAJSON_LABELS": json.dumps({"a/b": "c"})})
    assert pod.labels.as_dict() == {"a/b": "c"}
