"""The CRDs generated from plait's API models: in sync with the chart, structural, Istio's versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import Field

from plait.api.common import IstioModel
from plait.api.kinds import KINDS
from plait.kube import crds

REPO = Path(__file__).resolve().parents[3]
CHECKED_IN = REPO / "charts" / "base" / "files" / "crd-all.gen.yaml"
ISTIO_STORAGE = {  # Istio's manifests/charts/base/files/crd-all.gen.yaml
    "VirtualService": ("v1", {"v1", "v1beta1", "v1alpha3"}),
    "DestinationRule": ("v1", {"v1", "v1beta1", "v1alpha3"}),
    "Gateway": ("v1", {"v1", "v1beta1", "v1alpha3"}),
    "ServiceEntry": ("v1", {"v1", "v1beta1", "v1alpha3"}),
    "Sidecar": ("v1", {"v1", "v1beta1", "v1alpha3"}),
    "AuthorizationPolicy": ("v1", {"v1", "v1beta1"}),
    "PeerAuthentication": ("v1", {"v1", "v1beta1"}),
    "RequestAuthentication": ("v1", {"v1", "v1beta1"}),
    "Telemetry": ("v1", {"v1", "v1alpha1"}),
    "RateLimit": ("v1alpha1", {"v1alpha1"}),
}


def test_checked_in_crds_match_the_models() -> None:
    assert CHECKED_IN.read_text() == crds.render(), (
        "charts/base/files/crd-all.gen.yaml is out of date with src/plait/api: run\n"
        "  .venv/bin/python -m plait.kube.crds > charts/base/files/crd-all.gen.yaml"
    )


def test_every_custom_kind_has_a_crd_with_istios_versions() -> None:
    docs = {d["spec"]["names"]["kind"]: d for d in yaml.safe_load_all(CHECKED_IN.read_text())}
    custom = {k for k, info in KINDS.items() if info.model is not None} - {
        "Service",
        "Deployment",
        "ConfigMap",
    }
    assert set(docs) == custom == set(ISTIO_STORAGE)
    for kind, (storage, served) in ISTIO_STORAGE.items():
        versions = docs[kind]["spec"]["versions"]
        assert {v["name"] for v in versions if v["served"]} == served, kind
        assert [v["name"] for v in versions if v["storage"]] == [storage], kind
        # one schema for every version, as in Istio (the API is the same in each)
        schemas = [v["schema"]["openAPIV3Schema"] for v in versions]
        assert all(s == schemas[0] for s in schemas), kind


def _walk(node: dict[str, Any], path: str) -> list[str]:
    """Violations of Kubernetes' structural-schema rules under `node`."""
    bad = []
    for key in ("$ref", "anyOf", "oneOf", "allOf", "not", "$defs", "const", "prefixItems"):
        if key in node:
            bad.append(f"{path}: {key}")
    typed = (
        "type" in node
        or node.get("x-kubernetes-int-or-string")
        or node.get("x-kubernetes-preserve-unknown-fields")
    )
    if not typed:
        bad.append(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        bad.append(f"{path}: properties with additionalProperties")
    if node.get("additionalProperties") is False:
        bad.append(f"{path}: additionalProperties false")
    for name, sub in node.get("properties", {}).items():
        bad += _walk(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        bad += _walk(node["additionalProperties"], f"{path}.*")
    if "items" in node:
        bad += _walk(node["items"], f"{path}[]")
    return bad


@pytest.mark.parametrize("kind", sorted(crds.NAMES))
def test_schemas_are_structural(kind: str) -> None:
    schema = crds.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _walk(schema, kind) == []


def test_schema_keeps_what_a_schema_can_check() -> None:
    spec = crds.spec_schema("VirtualService")["properties"]["spec"]
    http = spec["properties"]["http"]
    assert http["type"] == "array"
    route = http["items"]["properties"]["route"]["items"]["properties"]
    assert route["weight"] == {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
    assert route["destination"]["required"] == ["host"]
    pa = crds.spec_schema("PeerAuthentication")["properties"]["spec"]["properties"]
    assert pa["mtls"]["properties"]["mode"]["enum"] == ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]
    rl = crds.spec_schema("RateLimit")
    assert rl["required"] == ["spec"]
    assert rl["properties"]["spec"]["properties"]["limits"]["minItems"] == 1


class _Leaf(IstioModel):
    n: int | str


class _Tree(IstioModel):
    children: tuple[_Tree, ...] = ()


class _Union(IstioModel):
    a: _Leaf | _Tree


class _Consts(IstioModel):
    kind: Literal["Service"]
    labels: dict[str, Any] = Field(default_factory=dict)


def _convert(model: type[IstioModel]) -> dict[str, Any]:
    full = model.model_json_schema(by_alias=True)
    defs = full.pop("$defs", {})
    return crds.structural(full, defs, "spec")


def test_int_or_string_const_and_free_maps() -> None:
    assert _convert(_Leaf)["properties"]["n"] == {"x-kubernetes-int-or-string": True}
    out = _convert(_Consts)
    assert out["properties"]["kind"] == {"enum": ["Service"], "type": "string"}
    assert out["properties"]["labels"] == {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }


def test_recursive_models_and_object_unions_are_refused() -> None:
    with pytest.raises(crds.SchemaError, match="recursive type _Tree"):
        _convert(_Tree)
    with pytest.raises(crds.SchemaError, match=r"spec\.a: a union of \['object'\]"):
        _convert(_Union)
