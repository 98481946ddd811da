"""The Helm charts: `helm lint`, `helm template | kubernetes-validate --strict`, and what the
rendered objects promise (replicas, leader-election RBAC, Services, the mesh ConfigMap that
plait itself reads). helm is built from its Go module by testing/k8s/build.sh (cached)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from plait.api.loader import load_text
from plait.api.meshconfig import ConfigMap

REPO = Path(__file__).resolve().parents[3]
CHARTS = REPO / "charts"
NAMESPACE = "istio-system"


@cache
def helm() -> str:
    out = subprocess.run(
        ["bash", str(REPO / "testing" / "k8s" / "build.sh"), "helm"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    return str(Path(out.strip().splitlines()[-1]) / "helm")


def template(chart: str, *sets: str) -> str:
    args = [helm(), "template", chart, str(CHARTS / chart), "-n", NAMESPACE]
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def objects(text: str) -> dict[tuple[str, str], dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(text) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


@pytest.mark.parametrize("chart", ["base", "plait"])
def test_helm_lint(chart: str) -> None:
    done = subprocess.run(
        [helm(), "lint", "--strict", str(CHARTS / chart), "-n", NAMESPACE],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("chart", "sets"),
    [
        ("base", ()),
        ("plait", ()),
        ("plait", ("controlPlane.replicaCount=3", "gateway.enabled=false")),
        (
            "plait",
            (
                "gateway.service.type=NodePort",
                "gateway.service.ports[0].name=http2",
                "gateway.service.ports[0].port=80",
                "gateway.service.ports[0].targetPort=8080",
                "gateway.service.ports[0].protocol=TCP",
                "gateway.service.ports[0].nodePort=30080",
            ),
        ),
    ],
)
def test_rendered_chart_is_valid_kubernetes(
    chart: str, sets: tuple[str, ...], tmp_path: Path
) -> None:
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(template(chart, *sets))
    validate = shutil.which("kubernetes-validate", path=str(Path(sys.executable).parent))
    assert validate is not None, "kubernetes-validate is a dev dependency (pip install -e .[dev])"
    done = subprocess.run(
        [validate, "--strict", "--quiet", str(rendered)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_validate_rejects_a_broken_object(tmp_path: Path) -> None:
    """The check above can fail: an unknown field in a Deployment is reported."""
    docs = objects(template("plait"))
    deployment = docs[("Deployment", "plaitd")]
    deployment["spec"]["replica"] = 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(deployment))
    validate = Path(sys.executable).parent / "kubernetes-validate"
    done = subprocess.run([validate, "--strict", str(bad)], capture_output=True, text=True)
    assert done.returncode != 0
    assert "replica" in done.stdout + done.stderr


def test_base_chart_renders_the_generated_crds() -> None:
    docs = objects(template("base"))
    crds = {name for kind, name in docs if kind == "CustomResourceDefinition"}
    assert "virtualservices.networking.istio.io" in crds
    assert "ratelimits.policy.plait.dev" in crds
    assert "telemetries.telemetry.istio.io" in crds
    assert "sidecars.networking.istio.io" in crds
    assert len(crds) == 10
    for (_kind, _name), doc in docs.items():
        assert doc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert objects(template("base", "crds.enabled=false")) == {}


def test_control_plane_objects() -> None:
    docs = objects(template("plait", "controlPlane.replicaCount=2", "global.tag=9.9"))
    deploy = docs[("Deployment", "plaitd")]
    assert deploy["spec"]["replicas"] == 2
    pod = deploy["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "plaitd"
    assert pod["containers"][0]["image"] == "ghcr.io/plait-mesh/plait:9.9"
    assert ("PodDisruptionBudget", "plaitd") in docs
    service = docs[("Service", "plaitd")]
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {
        "grpc-xds": (15010, 15010),
        "https-ca": (15012, 15012),
        "https-webhook": (443, 15017),
        "http-monitoring": (15014, 15014),
    }
    # leader election: create any Lease, but update only its own
    rules = docs[("Role", "plaitd")]["rules"]
    lease_rules = [r for r in rules if r["resources"] == ["leases"]]
    assert {"update"} <= set(lease_rules[1]["verbs"])
    assert lease_rules[1]["resourceNames"] == ["plait-leader"]
    # least privilege cluster-wide: nothing but reads, status writes and TokenReviews
    for rule in docs[("ClusterRole", f"plaitd-{NAMESPACE}")]["rules"]:
        writes = set(rule["verbs"]) - {"get", "list", "watch"}
        assert (
            not writes
            or all(r.endswith("/status") for r in rule["resources"])
            or rule["resources"] == ["tokenreviews"]
        ), rule
    gateway = docs[("Service", "istio-ingressgateway")]
    assert gateway["spec"]["selector"] == {"app": "istio-ingressgateway", "istio": "ingressgateway"}


def test_mesh_configmap_is_what_plait_reads() -> None:
    text = template(
        "plait",
        "meshConfig.trustDomain=example.org",
        "meshConfig.defaultConfig.tracing.sampling=25",
        "meshConfig.enableTracing=true",
    )
    docs = objects(text)
    configmap = docs[("ConfigMap", "istio")]
    loaded = load_text(yaml.safe_dump(configmap), "configmap.yaml")
    assert loaded.errors == ()
    [resource] = [r.resource for r in loaded.resources]
    assert isinstance(resource, ConfigMap) and resource.is_mesh_config
    mesh = resource.data.mesh
    assert mesh is not None
    assert mesh.trust_domain == "example.org"
    assert mesh.enable_tracing is True
    assert mesh.default_config is not None and mesh.default_config.tracing is not None
    assert mesh.default_config.tracing.sampling == 25


@pytest.mark.parametrize("injector", ["true", "false"])
def test_the_control_plane_args_are_what_plait_discovery_takes(injector: str) -> None:
    """Every flag the Deployment passes is one of `plait discovery`'s, with a valid value
    (click parses them as the command would, without running it)."""
    import typer

    from plait.cli.main import app

    deploy = objects(template("plait", f"sidecarInjector.enabled={injector}"))[
        ("Deployment", "plaitd")
    ]
    [container] = deploy["spec"]["template"]["spec"]["containers"]
    command, *args = container["args"]
    assert command == "discovery"
    group = typer.main.get_command(app)
    discovery = group.commands["discovery"]  # type: ignore[attr-defined]
    params = discovery.make_context("discovery", list(args)).params
    assert params["ca_dir"] == Path("/var/run/plait/ca")
    assert params["ca_secret"] == "plait-ca"
    assert params["owner"] == f"plaitd-{NAMESPACE}"
    assert params["webhook_port"] == (15017 if injector == "true" else None)
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/var/run/plait" in mounts  # the CA directory's parent: an emptyDir
    # the Secret it keeps the CA in is one the Role lets it read
    [secrets] = [
        r for r in objects(template("plait"))[("Role", "plaitd")]["rules"]
        if r["resources"] == ["secrets"] and "get" in r["verbs"]
    ]  # fmt: skip
    assert "plait-ca" in secrets["resourceNames"]


def test_the_control_plane_may_watch_every_crd_it_watches() -> None:
    """The ClusterRole reads (and writes the status of) every group of plait's CRDs."""
    from plait.kube.crds import all_crds

    groups = {c["spec"]["group"] for c in all_crds()}
    rules = objects(template("plait"))[("ClusterRole", f"plaitd-{NAMESPACE}")]["rules"]
    reads = [r for r in rules if r["resources"] == ["*"]]
    statuses = [r for r in rules if r["resources"] == ["*/status"]]
    assert (
        reads
        and groups <= set(reads[0]["apiGroups"])
        and {"watch", "list"} <= set(reads[0]["verbs"])
    )
    assert statuses and groups <= set(statuses[0]["apiGroups"])
