"""A small client for Envoy's admin API (https://www.envoyproxy.io/docs/envoy/latest/operations/admin).

Each helper takes the admin base URL (`http://127.0.0.1:PORT`) and, optionally, an
aiohttp session to reuse (the supervisor polls with one session; the CLI and tests make
one-off calls). Connection failures and timeouts become EnvoyError naming the endpoint;
every call is bounded by `timeout` seconds.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from plait.errors import EnvoyError

DEFAULT_TIMEOUT_S = 2.0

LIVE = "LIVE"
"""`/ready` body once Envoy's initial xDS fetch is done (503 with another state before)."""


@asynccontextmanager
async def _session(session: aiohttp.ClientSession | None) -> AsyncIterator[aiohttp.ClientSession]:
    if session is not None:
        yield session
        return
    async with aiohttp.ClientSession() as own:
        yield own


async def _request(
    method: str,
    admin_url: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
    session: aiohttp.ClientSession | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> tuple[int, str]:
    url = f"{admin_url}{path}"
    try:
        async with (
            _session(session) as s,
            s.request(
                method, url, params=params, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp,
        ):
            return resp.status, await resp.text()
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise EnvoyError(f"Envoy admin {method} {url} failed: {exc or type(exc).__name__}") from exc


def _ok(method: str, admin_url: str, path: str, status: int, body: str) -> str:
    if status // 100 != 2:
        raise EnvoyError(f"Envoy admin {method} {admin_url}{path}: HTTP {status}: {body.strip()}")
    return body


async def server_state(admin_url: str, *, session: aiohttp.ClientSession | None = None) -> str:
    """Envoy's `/ready` state: LIVE, PRE_INITIALIZING, INITIALIZING or DRAINING."""
    status, body = await _request("GET", admin_url, "/ready", session=session)
    state = body.strip()
    if status not in (200, 503) or not state:
        raise EnvoyError(f"Envoy admin {admin_url}/ready: unexpected HTTP {status} {state!r}")
    return state


async def stats(
    admin_url: str, filter: str, *, session: aiohttp.ClientSession | None = None
) -> dict[str, int]:
    """Counters and gauges whose name matches the regular expression `filter`."""
    status, body = await _request(
        "GET", admin_url, "/stats", params={"format": "json", "filter": filter}, session=session
    )
    doc = json.loads(_ok("GET", admin_url, "/stats", status, body))
    out: dict[str, int] = {}
    for item in doc.get("stats", []):
        name, value = item.get("name"), item.get("value")
        if isinstance(name, str) and isinstance(value, int):
            out[name] = value
    return out


async def config_dump(
    admin_url: str,
    *,
    include_eds: bool = False,
    session: aiohttp.ClientSession | None = None,
) -> dict[str, Any]:
    """Envoy's `/config_dump` (with endpoints when `include_eds`)."""
    params = {"include_eds": ""} if include_eds else None
    status, body = await _request(
        "GET", admin_url, "/config_dump", params=params, session=session, timeout=5.0
    )
    doc: dict[str, Any] = json.loads(_ok("GET", admin_url, "/config_dump", status, body))
    return doc


async def post(
    admin_url: str,
    path: str,
    *,
    session: aiohttp.ClientSession | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> None:
    """POST an admin command such as `/healthcheck/fail` or `/drain_listeners?graceful`."""
    status, body = await _request("POST", admin_url, path, session=session, timeout=timeout)
    _ok("POST", admin_url, path, status, body)
