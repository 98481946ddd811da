"""The Kubernetes models: Service ports and Deployment subset, defaults and rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from plait.api import KubeDeployment, KubeService


def locs(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str | int, ...]]:
    return [tuple(e["loc"]) for e in exc.value.errors()]


def test_kube_service_ports_and_target_port_int_or_name() -> None:
    svc = KubeService.model_validate(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "reviews", "labels": {"app": "reviews"}},
            "spec": {
                "selector": {"app": "reviews"},
                "type": "ClusterIP",
                "clusterIP": "10.0.0.1",
                "ipFamilyPolicy": "SingleStack",
                "ports": [
                    {"name": "http", "port": 9080, "targetPort": 8080, "appProtocol": "http"},
                    {"name": "grpc", "port": 9090, "targetPort": "grpc-port"},
                    {"name": "metrics", "port": 15020},
                ],
            },
        }
    )
    ports = svc.spec.ports
    assert [p.target_port for p in ports] == [8080, "grpc-port", None]
    assert [p.effective_target_port for p in ports] == [8080, "grpc-port", 15020]
    assert ports[0].protocol == "TCP" and ports[0].app_protocol == "http"
    assert svc.spec.cluster_ip == "10.0.0.1"
    assert svc.spec.model_extra == {"ipFamilyPolicy": "SingleStack"}


def test_kube_service_with_two_ports_must_name_them() -> None:
    with pytest.raises(ValidationError, match="must name every port"):
        KubeService.model_validate(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "a"},
                "spec": {"ports": [{"port": 80}, {"port": 81}]},
            }
        )


DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "reviews-v1", "namespace": "shop"},
    "spec": {
        "selector": {"matchLabels": {"app": "reviews"}},
        "strategy": {"type": "RollingUpdate"},
        "template": {
            "metadata": {"labels": {"app": "reviews", "version": "v1"}},
            "spec": {
                "serviceAccountName": "bookinfo-reviews",
                "containers": [
                    {
                        "name": "reviews",
                        "image": "docker.io/istio/examples-bookinfo-reviews-v1:1.20.1",
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "reviews.py"],
                        "args": ["--verbose"],
                        "env": [{"name": "LOG_DIR", "value": "/tmp/logs"}],
                        "ports": [{"containerPort": 9080, "name": "http"}],
                        "resources": {"requests": {"cpu": "100m"}},
                        "livenessProbe": {"httpGet": {"path": "/health", "port": 9080}},
                    }
                ],
            },
        },
    },
}


def test_kube_deployment_subset_and_defaults() -> None:
    dep = KubeDeployment.model_validate(DEPLOYMENT)
    assert dep.spec.replicas == 1
    assert dep.metadata.namespace == "shop"
    pod = dep.spec.template.spec
    assert pod.service_account_name == "bookinfo-reviews"
    container = pod.containers[0]
    assert container.command == ("python", "reviews.py") and container.args == ("--verbose",)
    assert [(e.name, e.value) for e in container.env] == [("LOG_DIR", "/tmp/logs")]
    assert container.ports[0].container_port == 9080

    minimal = {
        **DEPLOYMENT,
        "spec": {
            **DEPLOYMENT["spec"],
            "template": {
                "metadata": {"labels": {"app": "reviews"}},
                "spec": {"containers": [{"name": "app"}]},
            },
        },
    }
    assert KubeDeployment.model_validate(minimal).spec.template.spec.service_account_name == (
        "default"
    )


def test_kube_deployment_selector_must_match_template() -> None:
    bad = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "selector": {"matchLabels": {"app": "x"}}}}
    with pytest.raises(ValidationError, match="does not match 'template.metadata.labels'") as exc:
        KubeDeployment.model_validate(bad)
    assert locs(exc) == [("spec",)]


def _with_pod(**spec: object) -> dict[str, object]:
    template = DEPLOYMENT["spec"]["template"]
    pod = {**template["spec"], **spec}
    return {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "template": {**template, "spec": pod}}}


def test_kube_pod_dns_policy_and_config() -> None:
    dep = KubeDeployment.model_validate(
        _with_pod(
            dnsPolicy="None",
            dnsConfig={
                "nameservers": ["10.0.0.10"],
                "searches": ["corp.example"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
            },
        )
    )
    pod = dep.spec.template.spec
    assert pod.dns_policy == "None"
    assert pod.dns_config is not None
    assert pod.dns_config.nameservers == ("10.0.0.10",)
    assert [(o.name, o.value) for o in pod.dns_config.options] == [("ndots", "2"), ("edns0", None)]
    assert KubeDeployment.model_validate(DEPLOYMENT).spec.template.spec.dns_policy == "ClusterFirst"


def test_kube_pod_dns_errors_name_their_fields() -> None:
    with pytest.raises(ValidationError, match="needs at least one dnsConfig.nameservers"):
        KubeDeployment.model_validate(_with_pod(dnsPolicy="None"))
    with pytest.raises(ValidationError, match="nameserver 'dns.example' is not an IP") as exc:
        KubeDeployment.model_validate(_with_pod(dnsConfig={"nameservers": ["dns.example"]}))
    assert locs(exc)[0][-3:] == ("dnsConfig", "nameservers", 0)
    with pytest.raises(ValidationError) as exc:
        KubeDeployment.model_validate(_with_pod(dnsPolicy="ClusterLast"))
    assert locs(exc)[0][-1] == "dnsPolicy"
    four = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    with pytest.raises(ValidationError, match="at most 3"):
        KubeDeployment.model_validate(_with_pod(dnsConfig={"nameservers": four}))
