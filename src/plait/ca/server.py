"""The CA's HTTPS JSON API, served by the control plane.

    POST /v1/certificates   Authorization: Bearer <workload token>
                            {"csr": "<PEM>", "ttlSeconds": <optional int>}
         200 {"certChain": [...], "trustBundle": [...], "signer": "...", "expiresAt": "..."}
    GET  /v1/trust-bundle   200 {"trustBundle": [...], "signer": "..."}

Errors are JSON `{"error": "..."}`: 400 malformed body or CSR, 401 missing/bad token,
403 CSR identity differs from the token's, 413 body too large, 503 the CA cannot sign
or cannot judge tokens now (the API server of a TokenReview is away).
Anything unexpected while handling a request becomes a 400 (logged without the request's
content): bad input must never produce a 500 or a dropped connection. A request that is not
valid HTTP (say, a control character in a header) never reaches the app: aiohttp answers it
with its own plain-text 400, logged here without the offending bytes.

TLS: the serving certificate comes from `ServingCertificate`, served by `tlssite.TlsSite`, whose task checks
the CA directory and the certificate every `check_interval` seconds and loads a new chain
into the same SSLContext, which applies to new handshakes (open connections keep theirs).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from plait.ca.authority import CertificateAuthority, IssuedCertificate
from plait.ca.serving import ServingCertificate, ServingCredentials
from plait.ca.tlssite import TlsSite
from plait.ca.tokens import Authenticator
from plait.errors import CaError, CsrError, IdentityError, TokenError
from plait.model.identity import SpiffeId, SpiffeIdError

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _NoRequestContent(logging.Filter):
    """aiohttp logs a request it cannot parse with the offending bytes (which may hold a
    token); keep only the exception's type."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None:
            record.msg = f"{record.msg} ({record.exc_info[0].__name__})"
        record.exc_info, record.exc_text = None, None
        return True


_protocol_log = logging.getLogger("plait.ca.http")
_protocol_log.addFilter(_NoRequestContent())


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class _Refused(Exception):
    """A request refused with an HTTP status, a counter reason and a message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class CaServer:
    """HTTPS front of a `CertificateAuthority`; `start()` returns the bound port."""

    def __init__(
        self,
        ca: CertificateAuthority,
        verifier: Authenticator,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        trust_domain: str | None = None,
        serving: ServingCertificate | None = None,
        check_interval: float = 2.0,
    ) -> None:
        self.ca = ca
        self.verifier = verifier
        self.host, self.port = host, port
        self.trust_domain = trust_domain or ca.trust_domain
        self.serving = serving or ServingCertificate(ca)
        self.issued = 0
        self.refused: collections.Counter[str] = collections.Counter()
        self._site = TlsSite(self.serving, "CA server", check_interval)

    def __repr__(self) -> str:
        return f"CaServer({self.host}:{self.port}, trust_domain={self.trust_domain!r})"

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def serving_credentials(self) -> ServingCredentials:
        """The key, chain and bundle this server serves with (the xDS server shares them)."""
        return self.serving.current()

    def counters(self) -> dict[str, Any]:
        return {"issued": self.issued, "refused": dict(self.refused)}

    async def start(self) -> int:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._errors])
        app.router.add_post("/v1/certificates", self._certificates)
        app.router.add_get("/v1/trust-bundle", self._trust_bundle)
        runner = web.AppRunner(
            app,
            access_log=None,
            logger=_protocol_log,
            max_field_size=16 * 1024,
            auto_decompress=False,
        )
        self.port = await self._site.start(runner, self.host, self.port)
        return self.port

    async def stop(self) -> None:
        await self._site.stop()

    @web.middleware
    async def _errors(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Refused as exc:
            self.refused[exc.reason] += 1
            return _error(exc.status, str(exc))
        except web.HTTPException as exc:
            self.refused[f"http_{exc.status}"] += 1
            response = _error(exc.status, exc.reason)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        except Exception as exc:  # bad input must never become a 500
            self.refused["bad_request"] += 1
            log.warning(
                "CA server: %s %s failed with %s", request.method, request.path, type(exc).__name__
            )
            return _error(400, "bad request")

    async def _trust_bundle(self, _request: web.Request) -> web.Response:
        self.ca.reload_if_changed()
        return web.json_response(
            {"trustBundle": self.ca.trust_bundle(), "signer": self.ca.signer_fingerprint}
        )

    async def _certificates(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise _Refused(413, "too_large", f"request body is larger than {MAX_BODY} bytes")
        identity = await self._caller(request)
        csr, ttl = await _read_body(request)
        self.ca.reload_if_changed()
        issued = self._sign(csr, identity, ttl)
        self.issued += 1
        return web.json_response(
            {
                "certChain": list(issued.chain),
                "trustBundle": self.ca.trust_bundle(),
                "signer": issued.signer,
                "expiresAt": rfc3339(issued.not_after),
            }
        )

    async def _caller(self, request: web.Request) -> SpiffeId:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refused(401, "unauthenticated", "missing bearer token")
        try:
            who = await self.verifier.authenticate(token.strip())
            return who.spiffe_id(self.trust_domain)
        except TokenError as exc:
            raise _Refused(401, "unauthenticated", str(exc)) from None
        except CaError as exc:  # could not judge the token now (TokenReviewError)
            log.warning("CA cannot authenticate callers: %s", exc)
            raise _Refused(503, "unavailable", str(exc)) from None
        except SpiffeIdError:
            raise _Refused(401, "unauthenticated", "token names an invalid identity") from None

    def _sign(self, csr: bytes, identity: SpiffeId, ttl: dt.timedelta | None) -> IssuedCertificate:
        try:
            return self.ca.sign(csr, identity, ttl)
        except IdentityError as exc:
            raise _Refused(403, "forbidden", str(exc)) from None
        except CsrError as exc:
            raise _Refused(400, "bad_csr", str(exc)) from None
        except CaError as exc:
            log.error("CA cannot sign: %s", exc)
            raise _Refused(503, "unavailable", str(exc)) from None


async def _read_body(request: web.Request) -> tuple[bytes, dt.timedelta | None]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _Refused(413, "too_large", f"request body is larger than {MAX_BODY} bytes") from None
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise _Refused(400, "bad_request", "request body is not JSON") from None
    if not isinstance(body, dict):
        raise _Refused(400, "bad_request", "request body must be a JSON object")
    csr = body.get("csr")
    if not isinstance(csr, str) or not csr:
        raise _Refused(400, "bad_request", '"csr" must be a PEM string')
    ttl = body.get("ttlSeconds")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
        raise _Refused(400, "bad_request", '"ttlSeconds" must be a positive integer')
    try:
        csr_bytes = csr.encode("ascii")
    except UnicodeEncodeError:
        raise _Refused(400, "bad_csr", "not a PEM certificate signing request") from None
    return csr_bytes, None if ttl is None else dt.timedelta(seconds=min(ttl, 10**9))
