"""Helpers for the routing e2e modules: requests from any lab workload's sidecar (or the
gateway) without following redirects, and share arithmetic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

import aiohttp
from labkit import Lab, Reply


async def send_from(
    lab: Lab,
    workload: str | None,
    url: str,
    n: int = 1,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    concurrency: int = 8,
    timeout: float = 10.0,
) -> list[Reply]:
    """Like `Lab.send`, from `workload`'s sidecar (None: to the gateway, `url` a path), and
    answers are returned as they are (a redirect is not followed)."""
    proxy = None if workload is None else f"http://{lab.proxy(workload)['outbound']}"
    if workload is None:
        url = lab.mesh.gateway + url
    sem = asyncio.Semaphore(concurrency)
    out: list[Reply] = []
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout),
        connector=aiohttp.TCPConnector(limit=concurrency),
    ) as session:

        async def one() -> None:
            async with sem:
                start = time.monotonic()
                async with session.request(
                    method, url, headers=dict(headers or {}), proxy=proxy, allow_redirects=False
                ) as r:
                    text = await r.text()
                    body: Any = text
                    if r.content_type == "application/json":
                        with suppress(ValueError):
                            body = await r.json(content_type=None)
                    out.append(Reply(r.status, dict(r.headers), body, time.monotonic() - start))

        await asyncio.gather(*(one() for _ in range(n)))
    return out


def share(replies: list[Reply], predicate: Any) -> float:
    """Fraction of replies for which predicate(reply) holds."""
    return sum(1 for r in replies if predicate(r)) / len(replies)


def workload_of(reply: Reply) -> str | None:
    return reply.body.get("workload") if isinstance(reply.body, dict) else None


def subset_of(reply: Reply) -> str | None:
    """v1 / v2 from the echo replica's workload name (echo-v1, echo-v2)."""
    workload = workload_of(reply)
    return workload.rsplit("-", 1)[-1] if workload else None
