"""The chart's ingress gateway runs `plait proxy router`: its rendered args parse into
the router's options (each Service port on its targetPort, the status port left out) and
its env gives the pod that the control plane's PodAdmission will find (workload, labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from test_charts_render import objects, template

from plait.cli.proxy import app as proxy_app
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
