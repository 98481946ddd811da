"""Helpers for agent e2e tests: free ports, HTTP probes, polling with a deadline."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from plait.agent import admin
from plait.agent.supervisor import EnvoySupervisor
from plait.errors import EnvoyError
from plait.local import ports
from plait.model.labels import Labels
from plait.model.proxy import Proxy, ProxyKind, node_id


def free_port() -> int:
    """A free port for an Envoy listener (outside the ephemeral range: see local.ports)."""
    return ports.free_port()


def make_proxy(instance: str = "web-0") -> Proxy:
    return Proxy(
        id=node_id(ProxyKind.SIDECAR, instance, "default"),
        kind=ProxyKind.SIDECAR,
        workload="web",
        service_account="web",
        labels=Labels.of({"app": "web"}),
        inbound_port=15006,
    )


async def http_get(url: str, timeout: float = 1.0) -> tuple[int, str]:
    """One GET on a fresh connection."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp,
    ):
        return resp.status, await resp.text()


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.05
) -> float:
    """Poll `check` until it returns True; the seconds it took, or AssertionError."""
    start = time.monotonic()
    while True:
        try:
            if await check():
                return time.monotonic() - start
        except (aiohttp.ClientError, TimeoutError, OSError):
            pass
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True if `pid` runs (a zombie, dead but unreaped by an orphan's new parent, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


EnvoyFactory = Callable[..., EnvoySupervisor]
"""The `envoys` fixture: make(proxy=None, admin_port=0, **SupervisorOptions fields)."""


async def print_diagnostics(sup: EnvoySupervisor) -> None:
    """Envoy's log tail and config dump (for a failed test)."""
    print(f"===== Envoy {sup.name}: pid={sup.pid} restarts={sup.restarts} log {sup.log_path}")
    print(sup.log_tail(200))
    if sup.admin_url is not None:
        try:
            dump = await admin.config_dump(sup.admin_url)
        except EnvoyError as exc:
            print(f"(no config dump: {exc})")
        else:
            print(f"===== config dump of {sup.name}")
            print(json.dumps(_without_extensions(dump), indent=1)[:30000])


def _without_extensions(doc: Any) -> Any:
    """The dump minus the node's list of every compiled-in extension (hundreds of lines)."""
    if isinstance(doc, dict):
        return {k: _without_extensions(v) for k, v in doc.items() if k != "extensions"}
    if isinstance(doc, list):
        return [_without_extensions(v) for v in doc]
    return doc
