"""The pod proxy's status port: 200 when ready, 503 with the reason before."""

from __future__ import annotations

import aiohttp

from plait.agent.health import READY_PATH, HealthServer


async def test_ready_answers_from_the_callback_at_each_request() -> None:
    reason: list[str | None] = ["no workload certificate yet"]
    server = HealthServer(lambda: reason[0], "127.0.0.1", 0)
    port = await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}{READY_PATH}"
            async with session.get(url) as resp:
                assert resp.status == 503
                assert "no workload certificate yet" in await resp.text()
            reason[0] = None
            async with session.get(url) as resp:
                assert resp.status == 200
            async with session.get(f"http://127.0.0.1:{port}/other") as resp:
                assert resp.status == 404
    finally:
        await server.stop()
    await server.stop()  # idempotent
