"""The injection webhook on the real API server: the webhook runs on the host over HTTPS
with a serving certificate from a mesh CA, a MutatingWebhookConfiguration points the API
server at it (clientConfig.url), and Deployments applied with kubectl become Pods whose
spec, read back from the API server, has (or has not) the sidecar.

The webhook and the caBundle keeper run on an event loop in a thread of their own: the
test blocks in kubectl while the API server calls the webhook."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import AsyncClient, KubeConfig

from kubecluster import REPO, Cluster
from loopthread import LoopThread, wait_for
from plait.ca import CertificateAuthority, ServingCertificate
from plait.controlplane.injection import Injection, settings_from_cluster
from plait.controlplane.webhook import InjectionWebhook
from plait.inject import InjectSettings, WebhookEndpoint, webhook_configuration
from plait.kube.cabundle import CaBundleKeeper


@pytest.fixture
def mesh_ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.load(
        tmp_path / "ca", "cluster.local", workload_ttl=dt.timedelta(hours=1), create=True
    )


@pytest.fixture
def webhook(mesh_ca: CertificateAuthority) -> Iterator[tuple[InjectionWebhook, LoopThread]]:
    server = InjectionWebhook(ServingCertificate(mesh_ca), InjectSettings())
    loop = LoopThread()
    try:
        loop.run(server.start())
        yield server, loop
    finally:
        loop.run(server.stop())
        loop.close()


def deployment(name: str, namespace: str, annotations: dict[str, str] | None = None) -> str:
    template_meta: dict[str, Any] = {"labels": {"app": name}}
    if annotations:
        template_meta["annotations"] = annotations
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": template_meta,
                    "spec": {"containers": [{"name": name, "image": "python:3.12"}]},
                },
            },
        }
    )


def pod_of(kube: Cluster, namespace: str, app: str, timeout: float = 60.0) -> dict[str, Any]:
    """The Deployment's Pod as the API server stored it (the ReplicaSet controller makes it
    through admission)."""

    def get() -> dict[str, Any] | None:
        out = kube.kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "json")
        items = json.loads(out)["items"]
        return items[0] if items else None

    return wait_for(f"a pod of {namespace}/{app}", get, timeout)


def has_sidecar(pod: dict[str, Any]) -> bool:
    spec = pod["spec"]
    names = [c["name"] for c in spec.get("initContainers", [])]
    return (
        "istio-proxy" in names
        or "istio-init" in names
        or any(v["name"] == "plait-token" for v in spec.get("volumes", []))
    )


def replicaset_events(kube: Cluster, namespace: str) -> str:
    return str(kube.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.kind=ReplicaSet",
        "-o", "jsonpath={.items[*].message}",
    ))  # fmt: skip


def test_labelled_namespaces_get_the_sidecar_others_and_opted_out_pods_none(
    kube: Cluster, webhook: tuple[InjectionWebhook, LoopThread]
) -> None:
    server, loop = webhook
    run = uuid.uuid4().hex[:6]
    name = f"plait-injector-{run}"
    injected, plain, plaitns = f"inj-{run}", f"plain-{run}", f"plait-{run}"
    # Registered with a caBundle that does not sign the webhook's certificate: the API
    # server cannot call it, and failurePolicy Fail refuses pods in injected namespaces.
    wrong = (kube.directory / "pki" / "ca.crt").read_bytes()
    config = webhook_configuration(WebhookEndpoint(url=server.url), wrong, name=name)
    kube.kubectl("apply", "-f", "-", input=json.dumps(config))
    client = AsyncClient(KubeConfig.from_file(str(kube.kubeconfig)))
    try:
        kube.kubectl("create", "namespace", injected)
        kube.kubectl("label", "namespace", injected, "istio-injection=enabled")
        kube.kubectl("create", "namespace", plain)
        kube.kubectl("create", "namespace", plaitns)
        kube.kubectl("label", "namespace", plaitns, "plait-injection=enabled")

        kube.kubectl("apply", "-f", "-", input=deployment("early", injected))
        wait_for(
            "the ReplicaSet's refused pod creation",
            lambda: "failed calling webhook" in replicaset_events(kube, injected),
        )
        assert server.answers["injected"] == 0

        bundle = server.serving.ca.trust_bundle
        keeper = CaBundleKeeper(client, name, lambda: "".join(bundle()).encode())
        assert loop.run(keeper.sync_once()) is True
        assert loop.run(keeper.sync_once()) is False  # current now: nothing to patch

        kube.kubectl("apply", "-f", "-", input=deployment("web", injected))
        kube.kubectl("apply", "-f", "-", input=deployment("web", plain))
        kube.kubectl("apply", "-f", "-", input=deployment("web", plaitns))
        opted_out = {"sidecar.istio.io/inject": "false"}
        kube.kubectl("apply", "-f", "-", input=deployment("batch", injected, opted_out))

        pod = pod_of(kube, injected, "web")
        spec = pod["spec"]
        init, proxy = spec["initContainers"][:2]
        assert init["name"] == "istio-init" and init["args"][:2] == ["capture", "apply"]
        assert proxy["name"] == "istio-proxy" and proxy["restartPolicy"] == "Always"
        assert proxy["startupProbe"]["httpGet"]["path"] == "/healthz/ready"
        (token,) = [v for v in spec["volumes"] if v["name"] == "plait-token"]
        source = token["projected"]["sources"][0]["serviceAccountToken"]
        assert source["audience"] == "plait-ca" and source["path"] == "plait-token"
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == "15020"
        assert pod["metadata"]["labels"]["service.istio.io/canonical-name"] == "web"

        assert has_sidecar(pod_of(kube, plaitns, "web"))
        assert not has_sidecar(pod_of(kube, plain, "web"))
        assert not has_sidecar(pod_of(kube, injected, "batch"))
        # the early Deployment's pod is created once the ReplicaSet retries
        assert has_sidecar(pod_of(kube, injected, "early", timeout=120))
        assert server.answers["injected"] >= 3
    finally:
        loop.run(client.close())
        kube.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found")
        for ns in (injected, plain, plaitns):
            kube.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")


def test_the_control_planes_injection_part_reads_its_configmap_and_fills_the_ca_bundle(
    kube: Cluster, mesh_ca: CertificateAuthority
) -> None:
    """As the chart installs it: settings in the plait-sidecar-injector ConfigMap, a
    configuration without caBundle; `Injection` serves and fills the bundle itself."""
    run = uuid.uuid4().hex[:6]
    name, control, app = f"plait-injector-{run}", f"cp-{run}", f"app-{run}"
    values = {"proxyImage": f"registry.test/plait-proxy:{run}", "excludedNamespaces": [control]}
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "plait-sidecar-injector", "namespace": control},
        "data": {"values": json.dumps(values)},
    }
    loop = LoopThread()
    client = AsyncClient(KubeConfig.from_file(str(kube.kubeconfig)))
    injection: Injection | None = None
    try:
        kube.kubectl("create", "namespace", control)
        kube.kubectl("apply", "-f", "-", input=json.dumps(configmap))
        settings, policy = loop.run(settings_from_cluster(client, control))
        assert settings.proxy_image == values["proxyImage"]
        assert policy.excluded_namespaces == {control}
        injection = Injection(
            ServingCertificate(mesh_ca), settings, policy, client, name,
            host="127.0.0.1", port=0, keep_interval=0.5,
        )  # fmt: skip
        loop.run(injection.start())
        config = webhook_configuration(WebhookEndpoint(url=injection.webhook.url), b"", name=name)
        kube.kubectl("apply", "-f", "-", input=json.dumps(config))
        wait_for(
            "the keeper's caBundle", lambda: injection is not None and injection.keeper.patches
        )

        kube.kubectl("create", "namespace", app)
        kube.kubectl("label", "namespace", app, "istio-injection=enabled")
        kube.kubectl("apply", "-f", "-", input=deployment("web", app))
        proxy = pod_of(kube, app, "web")["spec"]["initContainers"][1]
        assert (proxy["name"], proxy["image"]) == ("istio-proxy", values["proxyImage"])

        def published() -> str | None:
            out = kube.kubectl("get", "configmap", "istio-ca-root-cert", "-n", app,
                               "--ignore-not-found", "-o", "json")  # fmt: skip
            return json.loads(out)["data"]["root-cert.pem"] if out else None

        assert wait_for("the trust bundle in the app's namespace", published) == "".join(
            mesh_ca.trust_bundle()
        )
    finally:
        if injection is not None:
            loop.run(injection.stop())
        loop.run(client.close())
        loop.close()
        kube.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found")
        for ns in (control, app):
            kube.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")


def test_every_shop_pod_applied_with_kubectl_gets_the_sidecar(
    kube: Cluster, webhook: tuple[InjectionWebhook, LoopThread]
) -> None:
    """The shop's Kubernetes manifests (examples/shop-kube) and Services, applied with
    kubectl into a namespace labelled istio-injection=enabled: every Pod the controllers
    make, read back from the API server, has the sidecar, the init container and the
    token volume."""
    server, _ = webhook
    run = uuid.uuid4().hex[:6]
    name, ns = f"plait-injector-{run}", f"shop-{run}"
    bundle = "".join(server.serving.ca.trust_bundle()).encode()
    config = webhook_configuration(WebhookEndpoint(url=server.url), bundle, name=name)
    shop_kube = REPO / "examples" / "shop-kube" / "shop.yaml"
    replicas = sum(
        d["spec"].get("replicas", 1)
        for d in yaml.safe_load_all(shop_kube.read_text())
        if d and d["kind"] == "Deployment"
    )
    try:
        kube.kubectl("apply", "-f", "-", input=json.dumps(config))
        kube.kubectl("create", "namespace", ns)
        kube.kubectl("label", "namespace", ns, "istio-injection=enabled")
        for path in (shop_kube, REPO / "examples" / "shop" / "services.yaml"):
            kube.kubectl("apply", "-n", ns, "-f", str(path))

        def all_pods() -> list[dict[str, Any]] | None:
            items = json.loads(kube.kubectl("get", "pods", "-n", ns, "-o", "json"))["items"]
            return items if len(items) == replicas else None

        pods = wait_for(f"{replicas} shop pods", all_pods, timeout=90)
        for pod in pods:
            spec, who = pod["spec"], pod["metadata"]["name"]
            names = [c["name"] for c in spec["initContainers"]]
            assert names[:2] == ["istio-init", "istio-proxy"], who
            assert any(v["name"] == "plait-token" for v in spec["volumes"]), who
            for container in spec["containers"]:
                env = {e["name"] for e in container.get("env", [])}
                assert not env & {"HTTP_PROXY", "PLAIT_OUTBOUND"}, who
    finally:
        kube.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found")
        kube.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")
