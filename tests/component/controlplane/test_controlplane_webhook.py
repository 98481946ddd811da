"""The injection webhook's HTTPS front on 127.0.0.1:0: verified against the mesh CA's
bundle (what the API server does with caBundle), an AdmissionReview answered with a
patch, and bad bodies answered 400 without stopping the server."""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from plait.ca import CertificateAuthority, ServingCertificate
from plait.controlplane.webhook import InjectionWebhook
from plait.inject import InjectSettings


@pytest.fixture
async def webhook(tmp_path: Path) -> AsyncIterator[tuple[InjectionWebhook, ssl.SSLContext]]:
    ca = CertificateAuthority.load(tmp_path / "ca", "cluster.local", create=True)
    server = InjectionWebhook(ServingCertificate(ca), InjectSettings())
    await server.start()
    trust = ssl.create_default_context(cadata="".join(ca.trust_bundle()))
    try:
        yield server, trust
    finally:
        await server.stop()


def review(pod: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "namespace": "shop", "operation": "CREATE", "object": pod},
    }  # fmt: skip


async def test_answers_a_review_with_a_patch_over_tls_the_ca_signed(
    webhook: tuple[InjectionWebhook, ssl.SSLContext],
) -> None:
    server, trust = webhook
    pod = {"metadata": {"name": "a"}, "spec": {"containers": [{"name": "a", "image": "a"}]}}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.url}/inject", json=review(pod), ssl=trust) as r,
    ):
        assert r.status == 200
        body = await r.json()
    response = body["response"]
    assert response["uid"] == "u-1" and response["allowed"] is True
    paths = {op["path"] for op in json.loads(base64.b64decode(response["patch"]))}
    assert "/spec/initContainers" in paths
    assert server.answers == {"injected": 1}


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"apiVersion": "admission.k8s.io/v1"}', b"[" * 100_000]
)
async def test_a_bad_body_is_400_and_the_server_keeps_serving(
    webhook: tuple[InjectionWebhook, ssl.SSLContext], body: bytes
) -> None:
    server, trust = webhook
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/inject", data=body, ssl=trust) as r:
            assert r.status == 400
            assert "AdmissionReview" in (await r.json())["error"]
        async with session.get(f"{server.url}/ready", ssl=trust) as r:
            assert r.status == 200
    assert server.answers == {"bad_request": 1}
