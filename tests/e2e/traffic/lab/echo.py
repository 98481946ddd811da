"""The traffic lab's test server: answers who it is and what it received.

Every request gets a JSON document naming the replica (`PLAIT_INSTANCE`) and echoing
method, path, query, headers and body size. Request headers steer one answer, so a test
can make a replica fail or stall without editing config:

- `x-echo-status: 503` answers with that status;
- `x-echo-delay-ms: 300` waits that long first;
- `x-echo-fail-every: 2` fails (503) every call but each 2nd, counted per replica and path;
- `x-echo-fail-replica: echo-v1-0` applies status/fail only on that replica.

`GET /_stats` returns this replica's request count per path (a test reads retries and
mirrored copies from the upstream's own counters); `POST /_reset` clears it. `GET /ws` is a
WebSocket echo.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter

from aiohttp import WSMsgType, web

INSTANCE = os.environ.get("PLAIT_INSTANCE", "unknown")
WORKLOAD = os.environ.get("PLAIT_WORKLOAD", "unknown")
counts: Counter[str] = Counter()


def _applies(request: web.Request) -> bool:
    only = request.headers.get("x-echo-fail-replica")
    return only is None or only == INSTANCE


async def echo(request: web.Request) -> web.StreamResponse:
    path = request.path
    counts[path] += 1
    body = await request.read()
    delay = int(request.headers.get("x-echo-delay-ms", "0"))
    if delay:
        await asyncio.sleep(delay / 1000)
    status = 200
    if _applies(request):
        status = int(request.headers.get("x-echo-status", "200"))
        every = int(request.headers.get("x-echo-fail-every", "0"))
        if every and counts[path] % every != 0:
            status = 503
    return web.json_response(
        {
            "replica": INSTANCE,
            "workload": WORKLOAD,
            "method": request.method,
            "path": path,
            "query": request.query_string,
            "host": request.host,
            "headers": dict(request.headers),
            "bodyBytes": len(body),
        },
        status=status,
    )


async def stats(request: web.Request) -> web.Response:
    return web.json_response({"replica": INSTANCE, "counts": dict(counts)})


async def reset(request: web.Request) -> web.Response:
    counts.clear()
    return web.json_response({"replica": INSTANCE})


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(f"{INSTANCE}: {msg.data}")
    return ws


def main() -> None:
    app = web.Application()
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_reset", reset)
    app.router.add_get("/ws", websocket)
    app.router.add_route("*", "/{tail:.*}", echo)
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None)


if __name__ == "__main__":
    main()
