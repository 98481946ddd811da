"""The Kubernetes source's config half (plait.sources.kube.ObjectConfig): objects validated
as documents, and an object that turns invalid keeps its last good version (reported,
never pushed) until it is fixed or deleted. The reflectors and the whole source run
against the real API server in tests/e2e/kube."""

from __future__ import annotations

from typing import Any

from plait.analysis import vet
from plait.api import VirtualService
from plait.errors import Severity
from plait.sources.kube import ObjectConfig


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
