"""The Kubernetes source's config half (plait.sources.kube.ObjectConfig): objects validated
as documents, and an object that turns invalid keeps its last good version (reported,
never pushed) until it is fixed or deleted; its workload half (`instances`) from what the
reflectors hold. The reflectors and the whole source run against the real API server in
tests/e2e/kube."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx

from plait.analysis import vet
from plait.api import VirtualService
from plait.api.kube import KubeService
from plait.errors import Severity
from plait.sources.kube import KubernetesSource, ObjectConfig


def vs(version: str, regex: str | None = None, weight: Any = None) -> dict[str, Any]:
    route: dict[str, Any] = {"destination": {"host": "web"}}
    if weight is not None:
        route["weight"] = weight
    http: dict[str, Any] = {"route": [route]}
    if regex:
        http["match"] = [{"uri": {"regex": regex}}]
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": version},
        "spec": {"hosts": ["web"], "http": [http]},
    }


KEY = ("VirtualService", "shop", "web")


def test_an_invalid_edit_keeps_the_last_good_version() -> None:
    config = ObjectConfig(vet)
    good = config.view({KEY: vs("1")})
    assert [r.resource.kind for r in good.resources] == ["VirtualService"]
    assert good.messages == ()

    bad = config.view({KEY: vs("2", regex="/(?=x)")})  # RE2 has no lookahead: vet refuses
    assert bad.resources == good.resources  # the last good one stays in force
    [error] = [m for m in bad.messages if m.severity is Severity.ERROR]
    assert error.file == "kubernetes:VirtualService/shop/web"
    assert error.path.startswith("spec.http[0].match[0].uri")
    assert bad.kept == ("VirtualService/shop/web (kubernetes:VirtualService/shop/web)",)

    schema = config.view({KEY: vs("3", weight="lots")})  # invalid for the model
    assert schema.resources == good.resources
    assert any(m.path == "spec.http[0].route[0].weight" for m in schema.messages)

    fixed = config.view({KEY: vs("4", weight=100)})
    [item] = fixed.resources
    assert isinstance(item.resource, VirtualService)
    assert item.resource.spec.http[0].route[0].weight == 100
    assert fixed.kept == ()

    assert config.view({}).resources == ()  # deleted: gone, and so is its last good version
    assert config.view({KEY: vs("5", regex="/(?=x)")}).resources == ()


def test_an_unchanged_version_is_not_parsed_again() -> None:
    calls = []

    def check(result: Any) -> Any:
        calls.append(result)
        return vet(result)

    config = ObjectConfig(check)
    config.view({KEY: vs("1")})
    config.view({KEY: vs("1")})
    assert len(calls) == 1
    config.view({KEY: vs("2")})
    assert len(calls) == 2


def service(name: str, namespace: str, cluster_ip: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"app": name}, "ports": [{"name": "http", "port": 80}]}
    if cluster_ip is not None:
        spec["clusterIP"], spec["clusterIPs"] = cluster_ip, [cluster_ip]  # as the API server has it
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "spec": spec,
    }


def test_a_headless_service_is_a_valid_service() -> None:
    view = ObjectConfig(vet).view({("Service", "shop", "db"): service("db", "shop", "None")})
    assert view.messages == ()
    [item] = view.resources
    assert isinstance(item.resource, KubeService)
    assert item.resource.spec.cluster_ip == "None"


def test_a_deleted_namespace_takes_its_config_with_it() -> None:
    """The API server deletes a namespace's objects; their delete events are all it takes."""
    config = ObjectConfig(vet)
    objects = {
        ("Service", "shop", "web"): service("web", "shop"),
        ("Service", "other", "web"): service("web", "other"),
        KEY: vs("1"),
    }
    assert len(config.view(objects).resources) == 3
    left = config.view({k: v for k, v in objects.items() if k[1] != "shop"}).resources
    assert [(r.resource.kind, r.resource.metadata.namespace) for r in left] == [
        ("Service", "other")
    ]


def test_instances_leave_out_terminating_endpoints() -> None:
    source = KubernetesSource(httpx.AsyncClient())
    for name in ("a", "b"):
        source.pods.items[("shop", name)] = {
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web"}]},
        }
    source.slices.items[("shop", "web-x1")] = {
        "metadata": {"name": "web-x1", "namespace": "shop"},
        "endpoints": [
            {
                "addresses": [f"10.0.0.{i}"],
                "conditions": {"ready": ready, "serving": True, "terminating": not ready},
                "targetRef": {"kind": "Pod", "name": name, "namespace": "shop"},
            }
            for i, (name, ready) in enumerate((("a", True), ("b", False)), 1)
        ],
    }
    event = source.instances()
    assert [(i.name, i.address) for i in event.instances] == [("a", "10.0.0.1")]
