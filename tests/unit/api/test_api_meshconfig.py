"""The mesh ConfigMap (`istio-system/istio`): MeshConfig in `data.mesh`, errors with paths
into that embedded YAML, warnings for fields plait does not apply; other ConfigMaps are
ignored silently."""

from __future__ import annotations

import pytest

from plait.api import load_text
from plait.api.meshconfig import ConfigMap
from plait.errors import Severity


def mesh_map(mesh: str, name: str = "istio", namespace: str = "istio-system") -> str:
    body = "\n".join(f"    {line}" for line in mesh.splitlines())
    return f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: {namespace}}}
data:
  mesh: |
{body}
"""


def loaded_config_map(text: str) -> ConfigMap:
    result = load_text(text, "mesh.yaml")
    assert not result.errors, [str(m) for m in result.errors]
    (item,) = result.resources
    assert isinstance(item.resource, ConfigMap)
    return item.resource


@pytest.mark.parametrize(
    ("mesh", "mode"),
    [
        ("outboundTrafficPolicy: {mode: REGISTRY_ONLY}", "REGISTRY_ONLY"),
        ("outboundTrafficPolicy: {mode: ALLOW_ANY}", "ALLOW_ANY"),
        ("outboundTrafficPolicy: {}", "ALLOW_ANY"),
        ("# nothing set", "ALLOW_ANY"),
    ],
)
def test_outbound_mode_is_read_from_the_embedded_yaml(mesh: str, mode: str) -> None:
    cm = loaded_config_map(mesh_map(mesh))
    assert cm.is_mesh_config
    assert cm.data.mesh is not None and cm.data.mesh.outbound_mode == mode


def test_an_invalid_mode_is_an_error_at_its_path_inside_data_mesh() -> None:
    text = mesh_map("", name="app") + "---\n" + mesh_map("outboundTrafficPolicy:\n  mode: REGISTRY")
    result = load_text(text, "mesh.yaml")
    assert [r.resource.metadata.name for r in result.resources] == ["app"]
    (error,) = result.errors
    assert (error.file, error.document, error.kind, error.name) == (
        "mesh.yaml",
        1,
        "ConfigMap",
        "istio",
    )
    assert error.path == "data.mesh.outboundTrafficPolicy.mode"
    assert "did you mean 'REGISTRY_ONLY'" in error.message


@pytest.mark.parametrize(
    ("mesh", "path", "words"),
    [
        ("a: 1\nb: {c", "data.mesh", "not valid YAML at line"),
        ("- a list", "data.mesh", "expected a mapping"),
        ("outboundTraficPolicy: {mode: REGISTRY_ONLY}", "data.mesh", "did you mean"),
        (
            "outboundTrafficPolicy: {mod: REGISTRY_ONLY}",
            "data.mesh.outboundTrafficPolicy.mod",
            "mode",
        ),
    ],
)
def test_embedded_yaml_errors_name_the_place(mesh: str, path: str, words: str) -> None:
    (error,) = load_text(mesh_map(mesh), "mesh.yaml").errors
    assert error.path == path
    assert words in error.message


def test_mesh_must_be_a_string_as_in_a_config_map() -> None:
    text = """apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}
"""
    (error,) = load_text(text, "mesh.yaml").errors
    assert error.path == "data.mesh" and "YAML block" in error.message


def test_meshconfig_fields_plait_does_not_apply_are_warnings() -> None:
    text = mesh_map(
        "accessLogFile: /dev/stdout\n"
        "defaultConfig: {holdApplicationUntilProxyStarts: true}\n"
        "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n  egressProxy: {host: egress}"
    )
    result = load_text(text + '  meshNetworks: "networks: {}"\n', "mesh.yaml")
    assert not result.errors
    assert {m.path for m in result.warnings} == {
        "data.mesh.accessLogFile",
        "data.mesh.defaultConfig.holdApplicationUntilProxyStarts",
        "data.mesh.outboundTrafficPolicy.egressProxy",
        "data.meshNetworks",
    }
    assert all("not applied" in m.message for m in result.warnings)
    assert all(m.severity is Severity.WARNING for m in result.warnings)


@pytest.mark.parametrize(("name", "namespace"), [("app-settings", "default"), ("istio", "default")])
def test_other_config_maps_are_ignored_silently(name: str, namespace: str) -> None:
    text = f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: {namespace}}}
data:
  mesh: "- not a mesh config"
  LOG_LEVEL: debug
  retries: 3
binaryData: {{logo: aGVsbG8=}}
"""
    result = load_text(text, "app.yaml")
    assert result.messages == ()
    cm = loaded_config_map(text)
    assert not cm.is_mesh_config and cm.data.mesh is None
