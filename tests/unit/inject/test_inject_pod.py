"""inject(pod, settings): golden files for a whole pod and a multi-document manifest, and
the rules one at a time (opt-out, idempotence, annotations, errors naming the annotation).

Regenerate the golden files after an intended change with PLAIT_UPDATE_GOLDEN=1 and read
the diff."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from plait.capture.command import apply_argv
from plait.errors import InjectionError, ManifestError
from plait.inject import InjectSettings, Resources, inject, inject_manifests, is_injected

GOLDEN = Path(__file__).with_name("golden")
SETTINGS = InjectSettings()


def golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PLAIT_UPDATE_GOLDEN"):
        path.write_text(actual)
    assert actual == path.read_text(), f"{path} differs (PLAIT_UPDATE_GOLDEN=1 rewrites it)"


def pod(**annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-0",
            "namespace": "shop",
            "labels": {"app": "web"},
            "annotations": dict(annotations),
        },  # fmt: skip
        "spec": {"containers": [{"name": "web", "image": "web:1"}]},
    }


def by_name(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = [i for i in items if i["name"] == name]
    return found


def test_golden_pod() -> None:
    source = yaml.safe_load((GOLDEN / "pod.in.yaml").read_text())
    golden("pod.out.yaml", yaml.safe_dump(inject(source, SETTINGS), sort_keys=False))


def test_golden_manifest_of_deployments_cronjob_and_service() -> None:
    text = (GOLDEN / "deployment.in.yaml").read_text()
    golden("deployment.out.yaml", inject_manifests(text, SETTINGS, "deployment.in.yaml"))


def test_sidecar_is_native_and_holds_the_app_after_capture_init() -> None:
    spec = inject(pod(), SETTINGS)["spec"]
    init, proxy = spec["initContainers"]
    assert (init["name"], proxy["name"]) == ("istio-init", "istio-proxy")
    assert proxy["restartPolicy"] == "Always" and "restartPolicy" not in init
    assert proxy["startupProbe"]["httpGet"] == {"path": "/healthz/ready", "port": 15021}
    assert [c["name"] for c in spec["containers"]] == ["web"]  # the app is untouched
    assert "env" not in spec["containers"][0]
    held_off = inject(pod(), InjectSettings(hold_application_until_proxy_starts=False))
    assert "startupProbe" not in held_off["spec"]["initContainers"][1]


def test_capture_init_runs_the_capture_command_with_the_pods_annotations() -> None:
    annotations = {"traffic.sidecar.istio.io/excludeOutboundPorts": "22,5432", "other": "x"}
    init = inject(pod(**annotations), SETTINGS)["spec"]["initContainers"][0]
    assert init["args"] == apply_argv(annotations, program=())
    assert init["args"][:2] == ["capture", "apply"]
    assert init["securityContext"]["capabilities"]["add"] == ["NET_ADMIN", "NET_RAW"]


def test_token_volume_and_mount_with_plaits_audience() -> None:
    spec = inject(pod(), InjectSettings(token_audience="aud-x", token_expiration_s=3600))["spec"]
    volume = by_name(spec["volumes"], "plait-token")
    source = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert source == {"audience": "aud-x", "expirationSeconds": 3600, "path": "plait-token"}
    mount = by_name(spec["initContainers"][1]["volumeMounts"], "plait-token")
    assert mount == {
        "name": "plait-token",
        "mountPath": "/var/run/secrets/tokens",
        "readOnly": True,
    }
    assert "--token-file=/var/run/secrets/tokens/plait-token" in spec["initContainers"][1]["args"]


def test_the_proxy_trusts_the_mesh_ca_through_the_published_root_configmap() -> None:
    spec = inject(pod(), SETTINGS)["spec"]
    assert by_name(spec["volumes"], "istio-ca-root-cert") == {
        "name": "istio-ca-root-cert", "configMap": {"name": "istio-ca-root-cert"}}  # fmt: skip
    proxy = spec["initContainers"][1]
    mount = by_name(proxy["volumeMounts"], "istio-ca-root-cert")
    assert mount["mountPath"] == "/var/run/secrets/istio" and mount["readOnly"] is True
    assert "--ca-root-file=/var/run/secrets/istio/root-cert.pem" in proxy["args"]


def test_prometheus_annotations_name_the_proxys_metrics_port() -> None:
    injected = inject(pod(), SETTINGS)
    annotations = injected["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    # the agent's merged endpoint (Istio's names), as Istio's; Envoy's own stays on 15090
    assert annotations["prometheus.io/port"] == "15020"
    assert annotations["prometheus.io/path"] == "/stats/prometheus"
    ports = injected["spec"]["initContainers"][1]["ports"]
    assert {15020, 15090} <= {p["containerPort"] for p in ports}


def test_resources_from_settings_and_annotations() -> None:
    settings = InjectSettings(resources=Resources("50m", "64Mi", "", "512Mi"))
    proxy = inject(pod(), settings)["spec"]["initContainers"][1]
    assert proxy["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "512Mi"},
    }
    annotated = pod(
        **{
            "sidecar.istio.io/proxyCPU": "300m",
            "sidecar.istio.io/proxyMemory": "1Gi",
            "sidecar.istio.io/proxyCPULimit": "1",
            "sidecar.istio.io/proxyMemoryLimit": "2Gi",
        }
    )
    proxy = inject(annotated, settings)["spec"]["initContainers"][1]
    assert proxy["resources"] == {
        "requests": {"cpu": "300m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }


@pytest.mark.parametrize("where", ["annotations", "labels"])
@pytest.mark.parametrize("value", ["false", "False", "no"])
def test_a_pod_saying_false_is_left_alone(where: str, value: str) -> None:
    p = pod()
    p["metadata"][where]["sidecar.istio.io/inject"] = value
    assert inject(p, SETTINGS) == p


def test_injection_is_idempotent_and_does_not_change_its_input() -> None:
    original = pod()
    kept = copy.deepcopy(original)
    once = inject(original, SETTINGS)
    assert original == kept
    assert is_injected(once) and not is_injected(original)
    assert inject(once, SETTINGS) == once
    status = json.loads(once["metadata"]["annotations"]["sidecar.istio.io/status"])
    assert status["initContainers"] == ["istio-init", "istio-proxy"]


def test_a_pod_with_istios_sidecar_or_host_network_is_left_alone() -> None:
    istio = pod()
    istio["spec"]["containers"].append({"name": "istio-proxy", "image": "istio/proxyv2"})
    assert inject(istio, SETTINGS) == istio
    host = pod()
    host["spec"]["hostNetwork"] = True
    assert inject(host, SETTINGS) == host


@pytest.mark.parametrize(
    ("annotation", "value", "expected"),
    [
        ("sidecar.istio.io/proxyCPU", "lots", "sidecar.istio.io/proxyCPU"),
        ("sidecar.istio.io/proxyMemoryLimit", "1 GB", "sidecar.istio.io/proxyMemoryLimit"),
        ("traffic.sidecar.istio.io/excludeOutboundPorts", "ssh",
         "traffic.sidecar.istio.io/excludeOutboundPorts"),
        ("sidecar.istio.io/inject", "maybe", "sidecar.istio.io/inject"),
    ],
)  # fmt: skip
def test_a_malformed_annotation_is_an_error_naming_it(
    annotation: str, value: str, expected: str
) -> None:
    with pytest.raises(InjectionError, match=expected.replace(".", r"\.")) as info:
        inject(pod(**{annotation: value}), SETTINGS)
    assert repr(value) in str(info.value)


def test_kube_inject_names_the_document_of_a_bad_annotation() -> None:
    text = yaml.safe_dump_all([pod(), pod(**{"sidecar.istio.io/proxyCPU": "x"})])
    with pytest.raises(InjectionError, match=r"f\.yaml: document 1 \(Pod/web-0\)"):
        inject_manifests(text, SETTINGS, "f.yaml")
    with pytest.raises(ManifestError, match="f.yaml: not YAML"):
        inject_manifests("a: [", SETTINGS, "f.yaml")
    with pytest.raises(ManifestError, match="document 0 is not a mapping"):
        inject_manifests("- 1\n", SETTINGS, "f.yaml")
    broken = "kind: Deployment\nmetadata: {name: d}\nspec: {template: {metadata: [1]}}\n"
    with pytest.raises(InjectionError, match=r"document 0 \(Deployment/d\): the pod template"):
        inject_manifests(broken, SETTINGS, "f.yaml")


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ({"metadata": []}, "metadata must be a mapping"),
        ({"metadata": {"annotations": {"a": 1}}}, "metadata.annotations must map strings"),
        ({"metadata": {"labels": "app=web"}}, "metadata.labels must map strings"),
        ({"spec": "x"}, "spec must be a mapping"),
        ({"spec": {"containers": {"name": "a"}}}, "spec.containers must be a list"),
        ({"spec": {"volumes": ["data"]}}, "spec.volumes must be a list of mappings"),
    ],
)
def test_a_pod_of_the_wrong_shape_is_an_error_naming_the_field(
    broken: dict[str, Any], message: str
) -> None:
    with pytest.raises(InjectionError, match=message):
        inject({"kind": "Pod", **broken}, SETTINGS)
