"""The chart's ingress gateway runs `plait proxy router`: its rendered args parse into
the router's options (each Service port on its targetPort, the status port left out) and
its env gives the pod that the control plane's PodAdmission will find (workload, labels);
its pod carries the injector's scrape annotations; its Service is a LoadBalancer by
default, with node ports that may be fixed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from test_charts_render import objects, template

from plait.cli.proxy import app as proxy_app
from plait.inject.settings import MERGED_METRICS_PORT, METRICS_PATH
from plait.podproxy import pod_info


def gateway_pod(*sets: str) -> dict[str, Any]:
    deploy = objects(template("plait", *sets))[("Deployment", "istio-ingressgateway")]
    pod: dict[str, Any] = deploy["spec"]["template"]
    return pod


def test_the_gateway_runs_the_router_with_each_service_port_on_its_target_port() -> None:
    pod = gateway_pod("meshConfig.trustDomain=example.org")
    [container] = pod["spec"]["containers"]
    assert container["args"][:2] == ["proxy", "router"]
    router = typer.main.get_command(proxy_app).commands["router"]  # type: ignore[attr-defined]
    params = router.make_context("router", container["args"][2:]).params
    assert params["xds_address"] == "plaitd.istio-system.svc:15010"
    assert params["ca_address"] == "https://plaitd.istio-system.svc:15012"
    assert params["trust_domain"] == "example.org"
    assert sorted(params["port"]) == ["443:8443", "80:8080"]  # not the status port
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert Path(params["token_file"]).parent.as_posix() in mounts
    assert Path(params["ca_root_file"]).parent.as_posix() in mounts
    assert "/var/run/plait" in mounts  # the run dir: the root filesystem is read-only
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["istio-ca-root-cert"]["configMap"]["name"] == "istio-ca-root-cert"


def test_the_gateways_env_names_its_pod_as_admission_will_find_it() -> None:
    pod = gateway_pod()
    [container] = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    refs = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container["env"]
        if "valueFrom" in e
    }
    assert refs == {
        "POD_NAME": "metadata.name",
        "POD_NAMESPACE": "metadata.namespace",
        "INSTANCE_IP": "status.podIP",
        "SERVICE_ACCOUNT": "spec.serviceAccountName",
    }
    literal = {k: v for k, v in env.items() if v is not None}
    info = pod_info(literal | {"POD_NAME": "gw-1-a", "POD_NAMESPACE": "istio-system",
                               "INSTANCE_IP": "10.0.0.2"})  # fmt: skip
    assert info.workload == "istio-ingressgateway"
    labels = pod["metadata"]["labels"]
    assert info.labels.as_dict().items() <= labels.items()  # PodAdmission: a subset
    assert info.labels.as_dict() == {"app": "istio-ingressgateway", "istio": "ingressgateway"}


def gateway_service(*sets: str) -> dict[str, Any]:
    service: dict[str, Any] = objects(template("plait", *sets))[("Service", "istio-ingressgateway")]
    return service


def test_the_gateway_pod_is_scraped_where_the_router_serves_istio_metrics() -> None:
    pod = gateway_pod()
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(MERGED_METRICS_PORT),  # what the injector writes
        "prometheus.io/path": METRICS_PATH,
    }
    [container] = pod["spec"]["containers"]
    ports = {p["containerPort"]: p["name"] for p in container["ports"]}
    assert ports[MERGED_METRICS_PORT] == "http-merged"  # the router serves it (podproxy)


def test_the_gateway_service_is_a_load_balancer_with_node_ports_that_may_be_fixed() -> None:
    spec = gateway_service()["spec"]
    assert spec["type"] == "LoadBalancer"  # Istio's default; Kubernetes allocates nodePorts
    assert not any("nodePort" in p for p in spec["ports"])
    fixed = ("gateway.service.ports[0].name=http2", "gateway.service.ports[0].port=80",
             "gateway.service.ports[0].targetPort=8080", "gateway.service.ports[0].protocol=TCP",
             "gateway.service.ports[0].nodePort=30080")  # fmt: skip
    for kind in ("NodePort", "LoadBalancer"):
        spec = gateway_service(f"gateway.service.type={kind}", *fixed)["spec"]
        assert (spec["type"], spec["ports"]) == (kind, [
            {"name": "http2", "port": 80, "targetPort": 8080, "protocol": "TCP",
             "nodePort": 30080}])  # fmt: skip
    # a ClusterIP Service cannot have one: the value is left out rather than refused
    spec = gateway_service("gateway.service.type=ClusterIP", *fixed)["spec"]
    assert spec["type"] == "ClusterIP" and "nodePort" not in spec["ports"][0]
