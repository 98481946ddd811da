"""API objects → config documents and workload instances (plait.kube.objects)."""

from __future__ import annotations

from typing import Any

from plait.kube.objects import config_document, source_name, workload_instances, workload_name
from plait.model.registry import ServicePort


def pod(
    name: str, *, sa: str = "web", sidecar: bool = False, owner: str = "web-5d9f"
) -> dict[str, Any]:
    containers: list[dict[str, Any]] = [
        {
            "name": "app",
            "ports": [{"name": "http-web", "containerPort": 8080}, {"containerPort": 9}],
        }
    ]
    if sidecar:
        containers.append({"name": "istio-proxy"})
    return {
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": {"app": "web", "pod-template-hash": "5d9f"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": owner}],
        },
        "spec": {"serviceAccountName": sa, "containers": containers},
        "status": {"podIP": "10.0.0.9"},
    }


def endpoint(name: str, address: str, **conditions: bool) -> dict[str, Any]:
    return {
        "addresses": [address],
        "conditions": conditions,
        "targetRef": {"kind": "Pod", "name": name, "namespace": "shop"},
    }


def test_ready_endpoints_become_instances_with_named_ports() -> None:
    pods = {("shop", n): pod(n, sidecar=n == "b") for n in ("a", "b", "c", "d")}
    slices = [
        {
            "metadata": {"namespace": "shop"},
            "endpoints": [
                endpoint("a", "10.0.0.1", ready=True, serving=True, terminating=False),
                endpoint("b", "10.0.0.2"),  # conditions unset: ready
                endpoint("c", "10.0.0.3", ready=False, serving=True, terminating=True),
                endpoint("d", "10.0.0.4", ready=False),
                endpoint("gone", "10.0.0.5", ready=True),  # its Pod event has not come yet
            ],
        },
        {"metadata": {"namespace": "shop"}, "endpoints": [endpoint("a", "10.0.0.1", ready=True)]},
    ]
    instances = workload_instances(pods, slices)
    assert [(i.name, i.address, i.sidecar) for i in instances] == [
        ("a", "10.0.0.1", False),
        ("b", "10.0.0.2", True),
    ]
    a = instances[0]
    assert (a.workload, a.namespace, a.service_account) == ("web", "shop", "web")
    assert a.ports.target(ServicePort("http", 80, target_port="http-web")) == 8080
    assert a.ports.target(ServicePort("http", 80, target_port="grpc")) is None
    assert a.ports.target(ServicePort("http", 80, target_port=9000)) == 9000
    assert a.ports.target(ServicePort("http", 80)) == 80


def test_workload_names() -> None:
    assert workload_name(pod("a")) == "web"
    assert workload_name(pod("a", owner="batch")) == "batch"
    bare = pod("solo")
    del bare["metadata"]["ownerReferences"]
    assert workload_name(bare) == "solo"


def test_config_document_keeps_what_a_file_would_hold() -> None:
    obj = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "x",
            "resourceVersion": "9",
            "managedFields": [{}],
            "labels": {"a": "b"},
        },
        "spec": {"hosts": ["web"]},
        "status": {"validationMessages": []},
    }
    assert config_document(obj) == {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"a": "b"}},
        "spec": {"hosts": ["web"]},
    }
    assert source_name(obj) == "kubernetes:VirtualService/shop/web"
