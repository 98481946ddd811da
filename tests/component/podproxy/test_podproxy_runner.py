"""`PodProxy.run` without a CA to answer: the status port says 503 while the agent
waits for its first certificate, then `run` raises naming the CA, leaving nothing open;
asked to stop first, it returns cleanly."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import pytest

from plait.errors import WorkloadCertificateError
from plait.model.proxy import ProxyKind
from plait.podproxy import PodProxy, PodProxyOptions, pod_info

ENV = {"POD_NAME": "web-1-a", "POD_NAMESPACE": "shop", "INSTANCE_IP": "127.0.0.1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def options(tmp_path: Path, health: int) -> PodProxyOptions:
    token = tmp_path / "token"
    token.write_text("not-a-real-token")
    return PodProxyOptions(
        ProxyKind.SIDECAR,
        f"127.0.0.1:{free_port()}",
        f"https://127.0.0.1:{free_port()}",  # nothing listens
        "cluster.local",
        token,
        tmp_path / "root-cert.pem",
        run_dir=tmp_path / "run",
        health_port=health,
        start_timeout_s=1.5,
    )


async def status(port: int) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/healthz/ready") as resp,
    ):
        return resp.status


async def test_without_a_certificate_it_is_not_ready_then_gives_up(tmp_path: Path) -> None:
    health = free_port()
    proxy = PodProxy(options(tmp_path, health), pod_info(ENV))
    running = asyncio.create_task(proxy.run(asyncio.Event()))
    for _ in range(50):
        try:
            assert await status(health) == 503
            break
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.02)
    else:
        pytest.fail("the status port never answered")
    with pytest.raises(WorkloadCertificateError, match="no certificate for spiffe://"):
        await running
    with pytest.raises(aiohttp.ClientConnectionError):
        await status(health)  # closed on the way out


async def test_a_stop_while_starting_returns_cleanly(tmp_path: Path) -> None:
    health = free_port()
    stop = asyncio.Event()
    proxy = PodProxy(options(tmp_path, health), pod_info(ENV))
    running = asyncio.create_task(proxy.run(stop))
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(running, 5)
    with pytest.raises(aiohttp.ClientConnectionError):
        await status(health)
