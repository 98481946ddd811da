"""An injected pod run by the test node agent (tests/kubenode.py): the webhook's
`istio-init` runs `plait capture apply` in the pod's own network namespace and leaves
Istio's chains there (with the pod's capture annotation), the `plait-token` volume holds a
real projected token for audience plait-ca that the mesh CA (TokenReview) accepts for the
pod's own service account only, and the app is held back while the proxy is not ready
(the proxy cannot become ready here: no control plane runs)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from lightkube import AsyncClient, KubeConfig

from kubecluster import Cluster
from kubenode import NodeAgent
from loopthread import LoopThread, wait_for
from plait.agent.caclient import CaClient
from plait.agent.identity import make_csr
from plait.ca import CaServer, CertificateAuthority, ServingCertificate
from plait.ca.kubetokens import TokenReviewVerifier
from plait.controlplane.webhook import InjectionWebhook
from plait.errors import WorkloadCertificateError
from plait.inject import InjectSettings, WebhookEndpoint, webhook_configuration
from plait.kube.rootcert import RootCertPublisher
from plait.model.identity import SpiffeId

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pods are network namespaces: root only")

TD = "cluster.local"


def test_an_injected_pod_captures_holds_its_app_and_proves_its_identity(
    kube: Cluster, node: NodeAgent, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    name, ns = f"plait-injector-{run}", f"shop-{run}"
    ca = CertificateAuthority.load(
        tmp_path / "ca", TD, workload_ttl=dt.timedelta(hours=1), create=True
    )
    loop = LoopThread()
    webhook = InjectionWebhook(ServingCertificate(ca), InjectSettings())
    client = AsyncClient(KubeConfig.from_file(str(kube.kubeconfig)))
    ca_server = CaServer(ca, TokenReviewVerifier(client))
    loop.run(webhook.start())
    loop.run(ca_server.start())
    bundle = "".join(ca.trust_bundle()).encode()
    config = webhook_configuration(WebhookEndpoint(url=webhook.url), bundle, name=name)
    try:
        kube.kubectl("apply", "-f", "-", input=json.dumps(config))
        kube.kubectl("create", "namespace", ns)
        kube.kubectl("label", "namespace", ns, "istio-injection=enabled")
        for sa in ("orders", "payment"):
            kube.kubectl("create", "serviceaccount", sa, "-n", ns)
        publisher = RootCertPublisher(client, lambda: bundle.decode())
        assert loop.run(publisher.sync_once()) >= 1  # the pod mounts istio-ca-root-cert
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "orders-0",
                "namespace": ns,
                "labels": {"app": "orders"},
                "annotations": {"traffic.sidecar.istio.io/excludeOutboundPorts": "5432"},
            },
            "spec": {
                "serviceAccountName": "orders",
                "containers": [
                    {"name": "orders", "image": "python:3.12",
                     "args": ["-m", "http.server", "8080"]},
                ],
            },
        }  # fmt: skip
        kube.kubectl("apply", "-f", "-", input=json.dumps(pod))

        def init_done() -> dict[str, Any] | None:
            got = json.loads(kube.kubectl("get", "pod", "orders-0", "-n", ns, "-o", "json"))
            for status in got.get("status", {}).get("initContainerStatuses") or []:
                if status["name"] == "istio-init" and "terminated" in status.get("state", {}):
                    return dict(status["state"]["terminated"])
            return None

        assert wait_for("istio-init to finish", init_done)["exitCode"] == 0
        running = node.pods[f"{ns}/orders-0"]
        rules = subprocess.run(
            ["ip", "netns", "exec", running.net.netns, "iptables-save", "-t", "nat"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "-A ISTIO_OUTPUT" in rules and "-A ISTIO_INBOUND" in rules
        assert "--to-ports 15001" in rules and "--to-ports 15006" in rules
        assert re.search(r"-A ISTIO_OUTPUT -p tcp (-m tcp )?--dport 5432 -j RETURN", rules)
        host_rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True,
                                    text=True, check=True).stdout  # fmt: skip
        assert "ISTIO_OUTPUT" not in host_rules  # only the pod's namespace got them

        # held: the proxy never gets ready here (it exits: no control plane), and the app
        # never starts
        wait_for(
            "the proxy to have run and exited",
            lambda: (
                "istio-proxy" in running.procs and running.procs["istio-proxy"].poll() is not None
            ),
        )
        assert "orders" not in running.procs

        volumes = node.workdir / "pods" / running.net.netns
        token_file = volumes / "plait-token" / "plait-token"
        assert token_file.exists()
        assert (volumes / "istio-ca-root-cert" / "root-cert.pem").read_bytes() == bundle

        async def sign(identity: SpiffeId) -> str:
            caller = CaClient(ca_server.url, tmp_path / "ca" / "root-cert.pem", token_file)
            try:
                csr = make_csr(ec.generate_private_key(ec.SECP256R1()), identity)
                issued = await caller.sign(csr, None)
            finally:
                await caller.close()
            leaf = x509.load_pem_x509_certificate(issued.chain_pem[0])
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            return str(san.value.get_values_for_type(x509.UniformResourceIdentifier)[0])

        orders = SpiffeId(TD, ns, "orders")
        assert loop.run(sign(orders)) == orders.uri
        with pytest.raises(WorkloadCertificateError, match="HTTP 403"):
            loop.run(sign(SpiffeId(TD, ns, "payment")))
    finally:
        kube.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")
        kube.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found")
        loop.run(ca_server.stop())
        loop.run(webhook.stop())
        loop.run(client.close())
        loop.close()
