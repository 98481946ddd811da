"""The agent's HTTPS client for the mesh CA: sign a CSR, read the trust bundle.

The API (served by the control plane, see `plait.ca`):

    POST /v1/certificates   Authorization: Bearer <workload token>
         {"csr": "<PEM>", "ttlSeconds": <int, optional>}
      -> 200 {"certChain": [PEM...], "trustBundle": [PEM...], "signer": "...", "expiresAt": "..."}
      -> 4xx {"error": "<message>"}
    GET /v1/trust-bundle -> 200 {"trustBundle": [PEM...], "signer": "..."}

Trust: the CA's TLS certificate is checked against the root file the agent was given
*plus* the trust bundle it last received, so that after a root rotation (the CA serving
certificate re-issued under the new root) the agent still reaches the CA. The token file
is read at every request: whoever mints tokens may replace it at any time.

Every failure (connection, TLS, HTTP status, a malformed answer) becomes a
`WorkloadCertificateError` whose message names the CA URL and, for a refusal, the HTTP
status and the CA's own error text. Nothing here retries; the certificate manager does.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from plait.errors import WorkloadCertificateError

CERTIFICATES_PATH = "/v1/certificates"
TRUST_BUNDLE_PATH = "/v1/trust-bundle"


@dataclass(frozen=True)
class Issued:
    """What the CA answered to a CSR."""

    chain_pem: tuple[bytes, ...]  # leaf first
    bundle_pem: tuple[bytes, ...]
    signer: str


@dataclass(frozen=True)
class TrustBundle:
    """The roots a workload must trust now, and the signer new certificates come from."""

    roots_pem: tuple[bytes, ...]
    signer: str


def _pem_list(doc: dict[str, Any], key: str) -> tuple[bytes, ...]:
    value = doc.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key!r} is not a non-empty list of PEM strings")
    return tuple(v.encode() for v in value)


def _signer(doc: dict[str, Any]) -> str:
    value = doc.get("signer")
    if not isinstance(value, str) or not value:
        raise ValueError("'signer' is missing")
    return value


def parse_issued(doc: Any) -> Issued:
    """The body of a 200 answer to POST /v1/certificates; ValueError if malformed."""
    if not isinstance(doc, dict):
        raise ValueError("the answer is not a JSON object")
    return Issued(_pem_list(doc, "certChain"), _pem_list(doc, "trustBundle"), _signer(doc))


def parse_bundle(doc: Any) -> TrustBundle:
    """The body of a 200 answer to GET /v1/trust-bundle; ValueError if malformed."""
    if not isinstance(doc, dict):
        raise ValueError("the answer is not a JSON object")
    return TrustBundle(_pem_list(doc, "trustBundle"), _signer(doc))


class CaClient:
    """HTTPS calls to one CA. Create and use inside a running event loop; `close()` it."""

    def __init__(
        self, base_url: str, root_file: Path, token_file: Path, timeout_s: float = 5.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.root_file = Path(root_file)
        self.token_file = Path(token_file)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        # One connection per request: requests are rare, and each may use a new trust set.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))

    async def close(self) -> None:
        await self._session.close()

    async def sign(
        self, csr_pem: bytes, ttl_s: int | None, extra_roots: tuple[bytes, ...] = ()
    ) -> Issued:
        """POST the CSR with the workload token: the CA's answer, or WorkloadCertificateError."""
        body: dict[str, Any] = {"csr": csr_pem.decode()}
        if ttl_s is not None:
            body["ttlSeconds"] = ttl_s
        headers = {"Authorization": f"Bearer {self._token()}"}
        doc = await self._call("POST", CERTIFICATES_PATH, extra_roots, json=body, headers=headers)
        try:
            return parse_issued(doc)
        except ValueError as exc:
            raise WorkloadCertificateError(
                f"CA {self.base_url} sent a malformed certificate: {exc}"
            ) from exc

    async def trust_bundle(self, extra_roots: tuple[bytes, ...] = ()) -> TrustBundle:
        """GET the current trust bundle; WorkloadCertificateError on any failure."""
        doc = await self._call("GET", TRUST_BUNDLE_PATH, extra_roots)
        try:
            return parse_bundle(doc)
        except ValueError as exc:
            raise WorkloadCertificateError(
                f"CA {self.base_url} sent a malformed trust bundle: {exc}"
            ) from exc

    def _token(self) -> str:
        try:
            token = self.token_file.read_text().strip()
        except OSError as exc:
            raise WorkloadCertificateError(
                f"cannot read the workload token {self.token_file}: {exc}"
            ) from exc
        if not token:
            raise WorkloadCertificateError(f"the workload token file {self.token_file} is empty")
        return token

    def _ssl(self, extra_roots: tuple[bytes, ...]) -> ssl.SSLContext:
        roots = b""
        try:
            roots = self.root_file.read_bytes()
        except OSError as exc:
            if not extra_roots:
                raise WorkloadCertificateError(
                    f"cannot read the CA root {self.root_file} to trust {self.base_url}: {exc}"
                ) from exc
        try:
            return ssl.create_default_context(cadata=(roots + b"".join(extra_roots)).decode())
        except (ssl.SSLError, ValueError) as exc:
            raise WorkloadCertificateError(
                f"the CA root {self.root_file} is not usable: {exc}"
            ) from exc

    async def _call(self, method: str, path: str, extra_roots: tuple[bytes, ...], **kw: Any) -> Any:
        url = self.base_url + path
        context = self._ssl(extra_roots)
        try:
            async with self._session.request(
                method, url, ssl=context, timeout=self._timeout, **kw
            ) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise WorkloadCertificateError(
                        f"CA {self.base_url} refused {method} {path}: "
                        f"HTTP {resp.status}: {_error_text(text)}"
                    )
                try:
                    return await resp.json(content_type=None)
                except ValueError as exc:
                    raise WorkloadCertificateError(
                        f"CA {self.base_url} answered non-JSON: {exc}"
                    ) from exc
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            raise WorkloadCertificateError(f"cannot reach CA {url}: {reason}") from exc


def _error_text(body: str) -> str:
    """The CA's `{"error": ...}` message, or the start of whatever it sent."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:200] or "(empty body)"
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return str(doc["error"])
    return body[:200]
