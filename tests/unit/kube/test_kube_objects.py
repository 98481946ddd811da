"""API objects → config documents and workload instances (plait.kube.objects)."""

from __future__ import annotations

from typing import Any

import pytest

from plait.api.loader import load_object
from plait.kube.objects import (
    Health,
    config_document,
    endpoint_health,
    source_name,
    workload_instances,
    workload_name,
)
from plait.model.registry import ServicePort
from plait.model.snapshot import build_snapshot


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


@pytest.mark.parametrize(
    ("conditions", "health"),
    [
        ({}, Health.HEALTHY),  # conditions unset: ready
        ({"ready": True, "serving": True, "terminating": False}, Health.HEALTHY),
        # publishNotReadyAddresses: the API server reports ready even while terminating
        ({"ready": True, "serving": False, "terminating": True}, Health.HEALTHY),
        # terminating and still serving: istiod's DRAINING, for persistent sessions only
        ({"ready": False, "serving": True, "terminating": True}, Health.TERMINATING),
        ({"ready": False, "serving": False, "terminating": True}, Health.TERMINATING),
        ({"ready": False}, Health.TERMINATING),  # terminating unset counts, as in istiod
        ({"ready": False, "serving": False, "terminating": False}, Health.UNHEALTHY),
    ],
)
def test_endpoint_health_follows_istiod(conditions: dict[str, bool], health: Health) -> None:
    assert endpoint_health(endpoint("a", "10.0.0.1", **conditions)) == health


def test_a_terminating_endpoint_leaves_the_instances() -> None:
    pods = {("shop", n): pod(n) for n in ("a", "b")}

    def slice_with(**b: bool) -> list[dict[str, Any]]:
        return [
            {
                "metadata": {"namespace": "shop"},
                "endpoints": [
                    endpoint("a", "10.0.0.1", ready=True),
                    endpoint("b", "10.0.0.2", **b),
                ],
            }
        ]

    ready = workload_instances(pods, slice_with(ready=True, serving=True, terminating=False))
    assert [i.name for i in ready] == ["a", "b"]
    draining = workload_instances(pods, slice_with(ready=False, serving=True, terminating=True))
    assert [i.name for i in draining] == ["a"]
    gone = workload_instances(pods, slice_with(ready=False, serving=False, terminating=True))
    assert [i.name for i in gone] == ["a"]


def test_a_headless_service_gets_its_pods_as_endpoints() -> None:
    """clusterIP None: no virtual IP, and EDS holds the ready pods at the target port."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "3"},
        "spec": {
            "clusterIP": "None",
            "clusterIPs": ["None"],
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http-web"}],
        },
    }
    loaded = load_object(config_document(service), source_name(service))
    assert loaded.messages == ()
    pods = {("shop", n): pod(n) for n in ("a", "b")}
    slices = [
        {
            "metadata": {"namespace": "shop"},
            "endpoints": [
                endpoint("a", "10.0.0.1", ready=True),
                endpoint("b", "10.0.0.2", ready=False, serving=True, terminating=True),
            ],
        }
    ]
    snap = build_snapshot(loaded.resources, list(workload_instances(pods, slices)), 1)
    svc = snap.services["web.shop.svc.cluster.local"]
    assert svc.cluster_ip is None
    endpoints = snap.endpoints_for("web.shop.svc.cluster.local", 80)
    assert [(e.address, e.port) for e in endpoints] == [("10.0.0.1", 8080)]
