"""A small HTTPS client for the CA server, and CSR builders."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from plait.model.identity import SpiffeId


def csr_pem(
    sans: list[x509.GeneralName], key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None
) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )


def csr_for(identity: SpiffeId) -> str:
    return csr_pem([x509.UniformResourceIdentifier(identity.uri)])


@dataclass
class Answer:
    status: int
    body: Any
    content_type: str


class CaClient:
    """Talks to the CA over HTTPS, verifying it against `bundle` (hostname 127.0.0.1)."""

    def __init__(self, port: int, bundle: list[str]) -> None:
        self.base = f"https://127.0.0.1:{port}"
        self.ssl = ssl.create_default_context(cadata="".join(bundle))
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def close(self) -> None:
        await self.session.close()

    async def post(
        self,
        body: bytes | dict[str, Any] | Any,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
        async with self.session.post(
            f"{self.base}/v1/certificates", data=data, headers=hdrs, ssl=self.ssl
        ) as resp:
            return await _answer(resp)

    async def get(self, path: str) -> Answer:
        async with self.session.get(f"{self.base}{path}", ssl=self.ssl) as resp:
            return await _answer(resp)


async def _answer(resp: aiohttp.ClientResponse) -> Answer:
    text = await resp.text()
    try:
        body = json.loads(text)
    except ValueError:
        body = text
    return Answer(resp.status, body, resp.content_type)
