"""OpenID discovery of JWT issuers: the `jwks_uri` of issuer-only jwtRules.

A RequestAuthentication rule with an `issuer` and neither `jwks` nor `jwksUri` gets its
keys as in Istio (pilot/pkg/model/jwks_resolver.go): from the `jwks_uri` of the issuer's
discovery document, `<issuer without a trailing />/.well-known/openid-configuration`.
Fetching is I/O, so it lives here, as a pipeline source, and translation stays pure: the
source emits `JwksUrisDiscovered` (issuer → jwks_uri) and the snapshot carries it
(`MeshSnapshot.discovered_jwks_uris`, read by `translate.jwt`). Envoy then fetches the
JWKS itself through the jwks cluster, as for a `jwksUri`.

Which issuers to discover comes from the snapshots the pipeline publishes: the owner calls
`want(issuers(snapshot))` (controlplane.main), which wakes the loop when the set changed.
`ready` is set at once: discovery never holds the mesh back (until it succeeds, the rule's
tokens get 401, and requests without a token pass).

Each document is fetched with a timeout; a failure is reported as a `SourceError` (shown
by `/status` and `plait status`), the issuer's last good `jwks_uri` stays in force and the
fetch is retried with backoff; a success is refreshed every `refresh_s` (Istio refreshes
its keys every 20 minutes).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from plait.aio import Backoff
from plait.api.security import RequestAuthentication
from plait.model.snapshot import MeshSnapshot
from plait.sources.events import Emit, JwksUrisDiscovered, SourceError

log = logging.getLogger(__name__)

WELL_KNOWN = "/.well-known/openid-configuration"
MAX_DOCUMENT_BYTES = 1 << 20
RETRY = Backoff(first=1.0, most=60.0, stable=float("inf"))
"""Delays between failed fetches of one issuer's document (reset by a success)."""


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + WELL_KNOWN


def issuers(snapshot: MeshSnapshot) -> frozenset[str]:
    """The issuers of every jwtRule that gives neither `jwks` nor `jwksUri`."""
    return frozenset(
        rule.issuer
        for item in snapshot.request_authentications
        if isinstance(item.resource, RequestAuthentication)
        for rule in item.resource.spec.jwt_rules
        if rule.jwks is None and rule.jwks_uri is None and rule.issuer
    )


class DiscoveryFailed(Exception):
    """An issuer's discovery document could not be read or has no usable `jwks_uri`."""


def _http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def jwks_uri_of(document: object) -> str:
    """The `jwks_uri` of a parsed discovery document (an http(s) URL), or DiscoveryFailed."""
    uri = document.get("jwks_uri") if isinstance(document, dict) else None
    if not isinstance(uri, str) or not _http_url(uri):
        raise DiscoveryFailed(f"no http(s) 'jwks_uri' in the document (got {uri!r})")
    try:
        urlsplit(uri).port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        raise DiscoveryFailed(f"'jwks_uri' {uri!r}: the port is not a number") from None
    return uri


async def fetch_jwks_uri(session: aiohttp.ClientSession, issuer: str) -> str:
    """Read `issuer`'s discovery document and return its `jwks_uri`."""
    if not _http_url(issuer):
        raise DiscoveryFailed("the issuer is not an http(s) URL, so it has no discovery document")
    url = discovery_url(issuer)
    try:
        async with session.get(url, allow_redirects=True) as response:
            if response.status != 200:
                raise DiscoveryFailed(f"GET {url}: HTTP {response.status}")
            body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
            if len(body) > MAX_DOCUMENT_BYTES:
                raise DiscoveryFailed(f"GET {url}: the document is larger than 1 MiB")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DiscoveryFailed(f"GET {url}: {type(exc).__name__}: {exc}".rstrip(": ")) from exc
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise DiscoveryFailed(f"GET {url}: not JSON ({exc})") from exc
    return jwks_uri_of(document)


@dataclass
class _Issuer:
    """What the loop knows of one issuer."""

    jwks_uri: str | None = None  # last good
    error: str | None = None  # the last fetch's failure
    due: float = 0.0  # when to fetch next (loop time)
    delay: float | None = None  # the last backoff delay after a failure


class OidcDiscovery:
    """A pipeline source resolving issuers' `jwks_uri` (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str = "oidc-discovery",
        timeout_s: float = 5.0,
        refresh_s: float = 20 * 60,
        backoff: Backoff = RETRY,
    ) -> None:
        self._name = name
        self.timeout_s = timeout_s
        self.refresh_s = refresh_s
        self.backoff = backoff
        self._wanted: frozenset[str] = frozenset()
        self._changed = asyncio.Event()

    @property
    def name(self) -> str:
        return self._name

    def want(self, wanted: Iterable[str]) -> None:
        """Discover exactly these issuers from now on (no-op when the set is unchanged)."""
        new = frozenset(wanted)
        if new != self._wanted:
            self._wanted = new
            self._changed.set()

    async def run(self, emit: Emit, ready: asyncio.Event) -> None:
        ready.set()  # never hold the mesh back; see the module docstring
        loop = asyncio.get_running_loop()
        state: dict[str, _Issuer] = {}
        emitted: tuple[dict[str, str], str | None] | None = None
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                self._changed.clear()
                wanted = self._wanted
                for gone in state.keys() - wanted:
                    del state[gone]
                now = loop.time()
                due = sorted(i for i in wanted if state.setdefault(i, _Issuer()).due <= now)
                results = await asyncio.gather(
                    *(fetch_jwks_uri(session, i) for i in due), return_exceptions=True
                )
                now = loop.time()
                for issuer, result in zip(due, results, strict=True):
                    self._record(state[issuer], issuer, result, now)
                found = {i: s.jwks_uri for i, s in sorted(state.items()) if s.jwks_uri}
                errors = [f"issuer {i!r}: {s.error}" for i, s in sorted(state.items()) if s.error]
                current = (found, "; ".join(errors) or None)
                if current != emitted:
                    if emitted is None or current[0] != emitted[0]:
                        emit(JwksUrisDiscovered(self.name, found))
                    if emitted is None or current[1] != emitted[1]:
                        emit(SourceError(self.name, current[1]))
                    emitted = current
                wait = min((s.due for s in state.values()), default=now + self.refresh_s) - now
                try:
                    async with asyncio.timeout(max(wait, 0.0)):
                        await self._changed.wait()
                except TimeoutError:
                    pass

    def _record(self, issuer: _Issuer, name: str, result: object, now: float) -> None:
        if isinstance(result, str):
            if result != issuer.jwks_uri:
                log.info("OpenID discovery: issuer %r has jwks_uri %s", name, result)
            issuer.jwks_uri, issuer.error, issuer.delay = result, None, None
            issuer.due = now + self.refresh_s
        elif isinstance(result, DiscoveryFailed):
            issuer.delay = self.backoff.next(issuer.delay, 0.0)
            issuer.error = f"{result} (retrying in {issuer.delay:.1f}s)"
            issuer.due = now + issuer.delay
            log.warning("OpenID discovery of %r failed: %s", name, issuer.error)
        elif isinstance(result, BaseException):
            raise result  # a bug: the pipeline reports it and restarts the source


__all__ = [
    "DiscoveryFailed",
    "OidcDiscovery",
    "discovery_url",
    "fetch_jwks_uri",
    "issuers",
    "jwks_uri_of",
]
