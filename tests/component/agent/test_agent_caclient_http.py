"""The CA client over real HTTPS against a stand-in server: what it sends, what it trusts,
and how a refusal reads."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import testpki
from plait.agent.caclient import CaClient
from plait.errors import WorkloadCertificateError

ISSUED = {"certChain": ["LEAF"], "trustBundle": ["ROOT"], "signer": "s1", "expiresAt": "x"}


class StandIn:
    """Records requests; answers with `status` and `body`."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any] | None, str | None]] = []
        self.status = 200
        self.body: Any = ISSUED

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.seen.append((request.path, body, request.headers.get("Authorization")))
        if isinstance(self.body, str):
            return web.Response(status=self.status, text=self.body)
        return web.json_response(self.body, status=self.status)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[StandIn, str, Path]]:
    root = testpki.ca_and_hosts(tmp_path / "pki", ["localhost"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "pki" / "localhost.crt", tmp_path / "pki" / "localhost.key")
    stand_in = StandIn()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stand_in.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "localhost", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield stand_in, f"https://localhost:{port}", root
    finally:
        await runner.cleanup()


async def test_the_csr_goes_with_the_token_read_at_each_request(
    server: tuple[StandIn, str, Path], tmp_path: Path
) -> None:
    stand_in, url, root = server
    token = tmp_path / "token.jwt"
    token.write_text("first-token\n")
    client = CaClient(url, root, token)
    try:
        issued = await client.sign(b"CSR PEM", 30)
        token.write_text("second-token")
        await client.sign(b"CSR PEM", None)
    finally:
        await client.close()

    assert issued.chain_pem == (b"LEAF",) and issued.signer == "s1"
    assert stand_in.seen == [
        ("/v1/certificates", {"csr": "CSR PEM", "ttlSeconds": 30}, "Bearer first-token"),
        ("/v1/certificates", {"csr": "CSR PEM"}, "Bearer second-token"),
    ]


async def test_a_refusal_carries_the_status_and_the_cas_message(
    server: tuple[StandIn, str, Path], tmp_path: Path
) -> None:
    stand_in, url, root = server
    (tmp_path / "t").write_text("tok")
    stand_in.status, stand_in.body = 403, {"error": "token is for shop/cart, CSR asks shop/pay"}
    client = CaClient(url, root, tmp_path / "t")
    try:
        with pytest.raises(WorkloadCertificateError) as info:
            await client.sign(b"CSR", None)
    finally:
        await client.close()

    assert url in str(info.value)
    assert "HTTP 403: token is for shop/cart, CSR asks shop/pay" in str(info.value)


async def test_a_server_not_signed_by_the_trusted_root_is_not_talked_to(
    server: tuple[StandIn, str, Path], tmp_path: Path
) -> None:
    stand_in, url, _ = server
    other_root, _ = testpki.self_signed(tmp_path, "someone-else")
    client = CaClient(url, other_root, tmp_path / "missing-token")
    try:
        with pytest.raises(WorkloadCertificateError, match="cannot reach CA"):
            await client.trust_bundle()
        # ...but the roots of the last trust bundle count as well (after a root rotation).
        stand_in.body = {"trustBundle": ["R"], "signer": "s2"}
        good_root = (tmp_path / "pki" / "ca.crt").read_bytes()
        bundle = await client.trust_bundle(extra_roots=(good_root,))
    finally:
        await client.close()

    assert bundle.signer == "s2"
    assert [path for path, _, _ in stand_in.seen] == ["/v1/trust-bundle"]


async def test_a_missing_token_and_a_dead_ca_are_clear_errors(tmp_path: Path) -> None:
    root = testpki.ca_and_hosts(tmp_path / "pki", [])
    client = CaClient("https://127.0.0.1:1", root, tmp_path / "nope.jwt")
    try:
        with pytest.raises(WorkloadCertificateError, match="nope.jwt"):
            await client.sign(b"CSR", None)
        (tmp_path / "nope.jwt").write_text("t")
        with pytest.raises(WorkloadCertificateError, match="cannot reach CA https://127.0.0.1:1"):
            await client.sign(b"CSR", None)
    finally:
        await client.close()
