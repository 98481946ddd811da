"""Helpers for the routing e2e modules: requests from any lab workload's sidecar (or the
gateway) without following redirects, and share arithmetic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
    return await lab.send(
        url,
        n,
        method=method,
        headers=headers,
        concurrency=concurrency,
        via=workload or "gateway",
        timeout=timeout,
        follow_redirects=False,
    )


def share(replies: list[Reply], predicate: Any) -> float:
    """Fraction of replies for which predicate(reply) holds."""
    return sum(1 for r in replies if predicate(r)) / len(replies)


def workload_of(reply: Reply) -> str | None:
    return reply.body.get("workload") if isinstance(reply.body, dict) else None


def subset_of(reply: Reply) -> str | None:
    """v1 / v2 from the echo replica's workload name (echo-v1, echo-v2)."""
    workload = workload_of(reply)
    return workload.rsplit("-", 1)[-1] if workload else None
