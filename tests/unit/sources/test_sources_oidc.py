"""OpenID discovery of JWT issuers against a real HTTP server on loopback: the source
finds each issuer's `jwks_uri`, reports failures as a SourceError while keeping the last
good URI, retries with backoff, and follows the set of issuers it is asked for."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from plait.aio import Backoff
from plait.api import load_text
from plait.model.snapshot import build_snapshot
from plait.sources.events import JwksUrisDiscovered, SourceError, SourceEvent
from plait.sources.oidc import (
    DiscoveryFailed,
    OidcDiscovery,
    discovery_url,
    fetch_jwks_uri,
    issuers,
    jwks_uri_of,
)


@dataclass
class Idp:
    """Discovery documents served by path; `None` answers 500."""

    documents: dict[str, Any | None] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    base: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path)
        if request.path not in self.documents:
            return web.Response(status=404)
        document = self.documents[request.path]
        if document is None:
            return web.Response(status=500)
        if isinstance(document, str):
            return web.Response(text=document)
        return web.json_response(document)


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[Idp]:
    idp = Idp()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", idp.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    idp.base = f"http://127.0.0.1:{port}"
    try:
        yield idp
    finally:
        await runner.cleanup()


def test_the_discovery_url_follows_istio() -> None:
    assert (
        discovery_url("https://a.example/") == "https://a.example/.well-known/openid-configuration"
    )
    assert discovery_url("https://a.example/t1") == (
        "https://a.example/t1/.well-known/openid-configuration"
    )


def test_jwks_uri_must_be_an_http_url() -> None:
    assert jwks_uri_of({"jwks_uri": "https://a.example/k"}) == "https://a.example/k"
    for bad in ({}, {"jwks_uri": 3}, {"jwks_uri": "file:///k"}, [], {"jwks_uri": "http://a:x/"}):
        with pytest.raises(DiscoveryFailed):
            jwks_uri_of(bad)


def test_issuers_are_those_of_rules_without_keys() -> None:
    text = """apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: ra, namespace: foo}
spec:
  jwtRules:
  - {issuer: 'https://only.example'}
  - {issuer: 'https://uri.example', jwksUri: 'https://uri.example/k'}
  - {issuer: '', jwksUri: 'https://k.example/k'}
"""
    result = load_text(text, "ra.yaml")
    assert not result.errors
    assert issuers(build_snapshot(result.resources, (), 1)) == {"https://only.example"}


async def test_fetch_reads_jwks_uri_and_explains_failures() -> None:
    async with serving() as idp, aiohttp.ClientSession() as session:
        idp.documents["/good/.well-known/openid-configuration"] = {"jwks_uri": "http://k/keys"}
        idp.documents["/text/.well-known/openid-configuration"] = "not json"
        idp.documents["/broken/.well-known/openid-configuration"] = None
        assert await fetch_jwks_uri(session, f"{idp.base}/good/") == "http://k/keys"
        for issuer, why in (
            (f"{idp.base}/missing", "HTTP 404"),
            (f"{idp.base}/broken", "HTTP 500"),
            (f"{idp.base}/text", "not JSON"),
            ("accounts.example", r"not an http\(s\) URL"),
            ("http://127.0.0.1:1", "ClientConnectorError"),
        ):
            with pytest.raises(DiscoveryFailed, match=why):
                await fetch_jwks_uri(session, issuer)


class Events:
    def __init__(self) -> None:
        self.seen: list[SourceEvent] = []
        self.changed = asyncio.Event()

    def emit(self, event: SourceEvent) -> None:
        self.seen.append(event)
        self.changed.set()

    def mark(self) -> int:
        return len(self.seen)

    async def until(self, predicate: Any, since: int = 0, timeout: float = 5.0) -> SourceEvent:
        """The newest event after the first `since` for which `predicate` holds."""
        async with asyncio.timeout(timeout):
            while True:
                for event in reversed(self.seen[since:]):
                    if predicate(event):
                        return event
                self.changed.clear()
                await self.changed.wait()


def found(event: SourceEvent) -> dict[str, str] | None:
    return dict(event.jwks_uris) if isinstance(event, JwksUrisDiscovered) else None


async def test_the_source_discovers_retries_keeps_last_good_and_follows_wants() -> None:
    async with serving() as idp, asyncio.TaskGroup() as tg:
        path_a = "/a/.well-known/openid-configuration"
        idp.documents[path_a] = {"jwks_uri": "http://keys/a"}
        a, b = f"{idp.base}/a", f"{idp.base}/b"
        source = OidcDiscovery(
            timeout_s=2.0, refresh_s=0.2, backoff=Backoff(first=0.05, most=0.1, stable=1e9)
        )
        events = Events()
        ready = asyncio.Event()
        task = tg.create_task(source.run(events.emit, ready))
        await asyncio.wait_for(ready.wait(), 1)  # never holds the mesh back
        source.want({a, b})
        await events.until(lambda e: found(e) == {a: "http://keys/a"})
        error = await events.until(lambda e: isinstance(e, SourceError) and e.message)
        assert isinstance(error, SourceError) and error.message
        assert f"issuer '{b}'" in error.message and "HTTP 404" in error.message
        # b's fetch is retried with backoff, and succeeds once its document exists
        mark = events.mark()
        idp.documents["/b/.well-known/openid-configuration"] = {"jwks_uri": "http://keys/b"}
        both = {a: "http://keys/a", b: "http://keys/b"}
        await events.until(lambda e: found(e) == both, mark)
        await events.until(lambda e: isinstance(e, SourceError) and e.message is None, mark)
        # a refresh that fails keeps a's last good URI and says why
        mark = events.mark()
        idp.documents[path_a] = None
        error = await events.until(lambda e: isinstance(e, SourceError) and e.message, mark)
        assert isinstance(error, SourceError) and error.message and "HTTP 500" in error.message
        last = [found(e) for e in events.seen if found(e) is not None][-1]
        assert last == both
        # an issuer no longer wanted is forgotten (and so is its error)
        mark = events.mark()
        source.want({b})
        await events.until(lambda e: found(e) == {b: "http://keys/b"}, mark)
        await events.until(lambda e: isinstance(e, SourceError) and e.message is None, mark)
        task.cancel()
