"""Fixtures: a CA with a fresh root, a token issuer, the HTTPS server on 127.0.0.1:0."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ca_httpkit import CaClient

from plait.ca import CaServer, CertificateAuthority, TokenIssuer, TokenVerifier


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.load(tmp_path / "ca", "cluster.local", create=True)


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer.generate()


@pytest.fixture
async def server(ca: CertificateAuthority, issuer: TokenIssuer) -> AsyncIterator[CaServer]:
    srv = CaServer(ca, TokenVerifier(issuer.public_key_pem), check_interval=0.1)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def client(server: CaServer, ca: CertificateAuthority) -> AsyncIterator[CaClient]:
    c = CaClient(server.port, ca.trust_bundle())
    yield c
    await c.close()
