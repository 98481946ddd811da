"""plait's CRDs and Helm charts against a real kube-apiserver: the base chart installs the
CRDs and they are served in every version; valid Istio YAML is accepted; a schema error is
refused by the API server with its field path; the control-plane chart installs with RBAC
the real authorizer holds to least privilege; `helm uninstall` leaves only the CRDs."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube import ApiError, Client, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta

from kubecluster import Cluster
from plait.kube.crds import all_crds

REPO = Path(__file__).resolve().parents[3]
SHOP = REPO / "examples" / "shop"
CRD_NAMES = {c["metadata"]["name"] for c in all_crds()}  # what charts/base ships


def helm(kube: Cluster, *args: str) -> str:
    done = subprocess.run(
        [str(kube.bin / "helm"), "--kubeconfig", str(kube.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"helm {' '.join(args)}: {done.stderr}"
    return done.stdout


def wait_until(what: str, check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


DEMO_FILES = ("virtual-services.yaml", "destination-rules.yaml", "gateway.yaml", "security.yaml")
"""The demo's Istio resources: applied by a test below, deleted with the module's fixture."""


@pytest.fixture(scope="module")
def crds(kube: Cluster) -> Iterator[Cluster]:
    helm(kube, "install", "plait-base", str(REPO / "charts" / "base"), "--wait")
    kube.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in CRD_NAMES]
    )
    kube.kubectl("create", "namespace", "shop")
    kube.kubectl("create", "namespace", "istio-system")
    try:
        yield kube
    finally:  # the cluster is the session's: security.yaml's mesh-wide allow-nothing
        for name in DEMO_FILES:  # would deny every later test's meshed requests
            kube.kubectl("delete", "-f", str(SHOP / name), "--ignore-not-found", check=False)


def test_crds_are_served_in_every_version(crds: Cluster) -> None:
    resources = crds.kubectl("api-resources", "-o", "name")
    for name in CRD_NAMES:
        assert name in resources.split()
    for version in ("v1", "v1beta1", "v1alpha3"):
        # listing through each served version works (empty list, no error)
        out = crds.kubectl(
            "get", f"virtualservices.{version}.networking.istio.io", "-A", "-o", "json"
        )
        assert json.loads(out)["items"] == []
    crds.kubectl("get", "authorizationpolicies.v1beta1.security.istio.io", "-A")
    crds.kubectl("get", "ratelimits.v1alpha1.policy.plait.dev", "-A")
    assert "virtualservices" in crds.kubectl("api-resources", "--categories=istio-io", "-o", "name")


def test_the_demo_mesh_config_is_accepted(crds: Cluster) -> None:
    """Every Istio resource of examples/shop, as plait accepts it, passes the CRD schemas."""
    for name in DEMO_FILES:
        out = crds.kubectl("apply", "-f", str(SHOP / name))
        assert "created" in out or "configured" in out, out
    listed = json.loads(crds.kubectl("get", "virtualservices", "-n", "default", "-o", "json"))
    assert len(listed["items"]) >= 1
    # stored as v1 (the storage version), served back as v1alpha3 too
    name = listed["items"][0]["metadata"]["name"]
    old = json.loads(
        crds.kubectl(
            "get",
            f"virtualservices.v1alpha3.networking.istio.io/{name}",
            "-n",
            "default",
            "-o",
            "json",
        )
    )
    assert old["apiVersion"] == "networking.istio.io/v1alpha3"
    assert old["spec"] == listed["items"][0]["spec"]


BAD_WEIGHT = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad-weight, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
      weight: fifty
"""

BAD_FIELD = """
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: bad-field, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - rout:
    - destination: {host: reviews}
"""

BAD_ENUM = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: bad-mode, namespace: shop}
spec:
  mtls: {mode: STRICTEST}
"""

BAD_LIMIT = """
apiVersion: policy.plait.dev/v1alpha1
kind: RateLimit
metadata: {name: bad-limit, namespace: shop}
spec:
  limits:
  - requests: 0
    unit: second
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            BAD_WEIGHT,
            'spec.http[0].route[0].weight: Invalid value: "string": spec.http[0].route[0].weight in body must be of type integer',
        ),
        (BAD_FIELD, 'unknown field "spec.http[0].rout"'),
        (BAD_ENUM, 'spec.mtls.mode: Unsupported value: "STRICTEST"'),
        (BAD_LIMIT, "spec.limits[0].requests: Invalid value: 0"),
    ],
)
def test_a_schema_error_is_refused_with_its_field_path(
    crds: Cluster, text: str, expected: str
) -> None:
    out = crds.kubectl("apply", "-f", "-", input=text, check=False)
    assert expected in out, out
    name = text.split("name: ", 1)[1].split(",", 1)[0]
    kind = text.split("kind: ", 1)[1].split("\n", 1)[0].lower()
    assert crds.kubectl("get", kind, name, "-n", "shop", "--ignore-not-found", "-o", "name") == ""


def test_lightkube_gets_the_same_refusal(crds: Cluster) -> None:
    """plait's client (lightkube) sees the API server's field path in the ApiError."""
    VirtualService = create_namespaced_resource(  # noqa: N806
        "networking.istio.io", "v1", "VirtualService", "virtualservices"
    )
    config = KubeConfig.from_file(str(crds.kubeconfig))
    with Client(config, field_manager="plait-test") as client:
        bad = VirtualService(
            metadata=ObjectMeta(name="lk-bad", namespace="shop"),
            spec={"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": 7}}]}]},
        )
        with pytest.raises(ApiError) as refused:
            client.create(bad)
        assert refused.value.status.code == 422
        assert "spec.http[0].route[0].destination.host" in str(refused.value.status.message)
        good = VirtualService(
            metadata=ObjectMeta(name="lk-good", namespace="shop"),
            spec={
                "hosts": ["reviews"],
                "http": [{"route": [{"destination": {"host": "reviews"}}]}],
            },
        )
        created = client.create(good)
        assert created.metadata is not None and created.metadata.resourceVersion
        client.delete(VirtualService, "lk-good", namespace="shop")


def can_i(
    kube: Cluster, verb: str, resource: str, namespace: str = "istio-system", subresource: str = ""
) -> bool:
    """Whether the real authorizer lets the control plane's ServiceAccount do it."""
    flags = [f"--subresource={subresource}"] if subresource else []
    out = kube.kubectl(
        "auth", "can-i", verb, resource, *flags, "-n", namespace,
        "--as=system:serviceaccount:istio-system:plaitd", check=False,
    )  # fmt: skip
    return bool(out.strip().splitlines()[0] == "yes")


def test_control_plane_chart_installs_with_least_privilege(crds: Cluster) -> None:
    kube = crds
    helm(
        kube, "install", "plait", str(REPO / "charts" / "plait"), "-n", "istio-system",
        "--set", "controlPlane.replicaCount=2",
    )  # fmt: skip
    try:
        # the controller manager turns the Deployment into a ReplicaSet of two pods
        def two_pods() -> bool:
            pods = json.loads(
                kube.kubectl("get", "pods", "-n", "istio-system", "-l", "app=plaitd", "-o", "json")
            )
            return len(pods["items"]) == 2

        wait_until("the control plane's pods", two_pods)
        mesh = json.loads(
            kube.kubectl("get", "configmap", "istio", "-n", "istio-system", "-o", "json")
        )
        assert "trustDomain: cluster.local" in mesh["data"]["mesh"]
        # RBAC as the real authorizer sees it
        assert can_i(kube, "update", "leases/plait-leader")
        assert not can_i(kube, "update", "leases/someone-else")
        assert can_i(kube, "watch", "endpointslices.discovery.k8s.io", "default")
        assert can_i(kube, "update", "virtualservices.networking.istio.io", "default", "status")
        assert not can_i(kube, "update", "virtualservices.networking.istio.io", "default")
        assert not can_i(kube, "list", "secrets", "default")
        assert not can_i(kube, "create", "pods", "default")
        assert can_i(kube, "create", "tokenreviews.authentication.k8s.io", "default")
    finally:
        helm(kube, "uninstall", "plait", "-n", "istio-system", "--wait")
    left = kube.kubectl(
        "get",
        "deployments,services,serviceaccounts,roles,rolebindings,configmaps",
        "-n",
        "istio-system",
        "-l",
        "app.kubernetes.io/part-of=plait",
        "-o",
        "name",
    )
    assert left == ""
    assert "plaitd" not in kube.kubectl("get", "clusterroles", "-o", "name")


def test_helm_uninstall_of_base_leaves_the_crds(crds: Cluster) -> None:
    kube = crds
    helm(kube, "uninstall", "plait-base")
    names = kube.kubectl(
        "get", "crd", "-l", "app.kubernetes.io/part-of=plait", "-o", "name"
    ).split()
    assert {
        n.removeprefix("customresourcedefinition.apiextensions.k8s.io/") for n in names
    } == CRD_NAMES
    # the resources in them stay too; installing again adopts the kept CRDs
    assert kube.kubectl("get", "virtualservices", "-n", "default", "-o", "name") != ""
    helm(kube, "install", "plait-base", str(REPO / "charts" / "base"))
