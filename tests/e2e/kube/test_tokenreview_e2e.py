"""Workload identity from Kubernetes on the real API server: the mesh CA authenticates
agents with projected service-account tokens (real TokenRequest tokens from `kubectl
create token`) through TokenReview, and signs only the token's own
spiffe://TD/ns/NS/sa/SA. The agent's CA client reads the token from a file, as it reads
the projected path in a pod."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from lightkube import AsyncClient, KubeConfig

from kubecluster import Cluster
from plait.agent.caclient import CaClient
from plait.agent.identity import make_csr
from plait.ca import CaServer, CertificateAuthority
from plait.ca.kubetokens import TokenReviewVerifier
from plait.errors import WorkloadCertificateError
from plait.model.identity import SpiffeId

TD = "cluster.local"


def token(kube: Cluster, ns: str, sa: str, *extra: str) -> str:
    return str(kube.kubectl("create", "token", sa, "-n", ns, "--duration", "10m", *extra)).strip()


@pytest.fixture
async def ca(kube: Cluster, tmp_path: Path) -> AsyncIterator[tuple[CaServer, TokenReviewVerifier]]:
    authority = CertificateAuthority.load(
        tmp_path / "ca", TD, workload_ttl=dt.timedelta(hours=1), create=True
    )
    client = AsyncClient(KubeConfig.from_file(str(kube.kubeconfig)))
    verifier = TokenReviewVerifier(client)
    server = CaServer(authority, verifier)
    await server.start()
    try:
        yield server, verifier
    finally:
        await server.stop()
        await client.close()


async def sign(server: CaServer, tmp_path: Path, jwt: str, identity: SpiffeId) -> str:
    """The SPIFFE ID of the certificate the CA issues for this token and CSR."""
    path = tmp_path / f"token-{uuid.uuid4().hex[:6]}"
    path.write_text(jwt)
    client = CaClient(server.url, tmp_path / "ca" / "root-cert.pem", path)
    try:
        issued = await client.sign(
            make_csr(ec.generate_private_key(ec.SECP256R1()), identity), None
        )
    finally:
        await client.close()
    leaf = x509.load_pem_x509_certificate(issued.chain_pem[0])
    (uri,) = leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.UniformResourceIdentifier)
    return str(uri)


async def refused_soon(server: CaServer, tmp_path: Path, jwt: str, identity: SpiffeId) -> None:
    """The CA refuses the token (401) within the API server's token cache (10 s of
    success caching) plus a margin."""
    deadline = time.monotonic() + 20
    while True:
        try:
            await sign(server, tmp_path, jwt, identity)
        except WorkloadCertificateError as exc:
            assert "HTTP 401" in str(exc)
            return
        assert time.monotonic() < deadline, "the token is still accepted"
        await asyncio.sleep(0.5)


async def test_the_ca_signs_only_the_tokens_own_service_account(
    kube: Cluster, ca: tuple[CaServer, TokenReviewVerifier], tmp_path: Path
) -> None:
    server, verifier = ca
    ns = f"tr-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", ns)
    try:
        for sa in ("orders", "payments"):
            kube.kubectl("create", "serviceaccount", sa, "-n", ns)
        orders, payments = SpiffeId(TD, ns, "orders"), SpiffeId(TD, ns, "payments")
        plait_token = token(kube, ns, "orders", "--audience", "plait-ca")
        api_token = token(kube, ns, "orders")  # the API server's own audience
        other_audience = token(kube, ns, "orders", "--audience", "vault")

        assert await sign(server, tmp_path, plait_token, orders) == orders.uri
        assert verifier.reviews == 1

        with pytest.raises(WorkloadCertificateError, match="HTTP 403"):
            await sign(server, tmp_path, plait_token, payments)
        for wrong in (api_token, other_audience):
            with pytest.raises(WorkloadCertificateError, match="HTTP 401") as info:
                await sign(server, tmp_path, wrong, orders)
            assert wrong not in str(info.value)
        with pytest.raises(WorkloadCertificateError, match="HTTP 401"):
            await sign(server, tmp_path, plait_token[:-4] + "AAAA", orders)
        assert server.counters()["refused"] == {"forbidden": 1, "unauthenticated": 3}

        # a token bound to a pod works while the pod exists, and names it
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "orders-0", "namespace": ns},
            "spec": {"serviceAccountName": "orders",
                     "containers": [{"name": "a", "image": "python:3.12"}]},
        }  # fmt: skip
        kube.kubectl("apply", "-f", "-", input=json.dumps(pod))
        bound = token(kube, ns, "orders", "--audience", "plait-ca",
                      "--bound-object-kind", "Pod", "--bound-object-name", "orders-0")  # fmt: skip
        who = await verifier.authenticate(bound)
        assert (who.namespace, who.service_account, who.instance) == (ns, "orders", "orders-0")
        assert await sign(server, tmp_path, bound, orders) == orders.uri
        kube.kubectl("delete", "pod", "orders-0", "-n", ns, "--grace-period=0", "--force")
        await refused_soon(server, tmp_path, bound, orders)
        # a deleted service account's tokens stop working
        kube.kubectl("delete", "serviceaccount", "orders", "-n", ns)
        await refused_soon(server, tmp_path, plait_token, orders)
    finally:
        kube.kubectl("delete", "namespace", ns, "--wait=false")
