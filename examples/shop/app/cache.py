"""cache: a small in-memory counter store over plain TCP, the shop's non-HTTP dependency.

The protocol is server-first, like Redis, MySQL or Postgres: on connect the server greets
(``+READY INSTANCE``), then answers one command per line: ``INCR KEY`` → ``:N``,
``GET KEY`` → ``:N`` (0 if unset), anything else → ``-ERR ...``. Lines end in CRLF.

``frontend`` counts product views here (:func:`incr`). The call is plain TCP, so only a
mesh that captures TCP carries it: in a pod (``POD_IP`` set: ``plait up --transparent``
or Kubernetes) the name ``cache`` resolves to its cluster IP and the sidecars carry the
connection over mTLS; in the default explicit mode (``HTTP_PROXY``, HTTP only) the
frontend leaves the cache out and answers ``views: null``.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from . import shopkit


def answer(counts: Counter[str], line: str) -> str:
    """The reply to one command line (without CRLF)."""
    verb, _, key = line.strip().partition(" ")
    key = key.strip()
    if verb.upper() in ("INCR", "GET") and key and " " not in key:
        if verb.upper() == "INCR":
            counts[key] += 1
        return f":{counts[key]}"
    return "-ERR expected INCR KEY or GET KEY"


async def serve(host: str, port: int, instance: str) -> asyncio.Server:
    counts: Counter[str] = Counter()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(f"+READY {instance}\r\n".encode())
            await writer.drain()
            while line := await reader.readline():
                writer.write(answer(counts, line.decode(errors="replace")).encode() + b"\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(client, host, port)


@dataclass(frozen=True)
class Reply:
    value: int
    instance: str  # from the greeting: which replica answered


async def incr(address: str, key: str, timeout_s: float) -> Reply:
    """``INCR key`` on the cache at ``HOST:PORT``; raises OSError, TimeoutError, ValueError."""
    host, _, port = address.rpartition(":")
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            greeting = (await reader.readline()).decode().strip()
            if not greeting.startswith("+READY "):
                raise ValueError(f"unexpected greeting {greeting!r}")
            writer.write(f"INCR {key}\r\n".encode())
            await writer.drain()
            reply = (await reader.readline()).decode().strip()
        finally:
            writer.close()
    if not reply.startswith(":"):
        raise ValueError(f"cache answered {reply!r}")
    return Reply(int(reply[1:]), greeting.split(" ", 1)[1])


async def _main(env: Mapping[str, str]) -> None:
    cfg = shopkit.Config.from_env("cache", env)
    server = await serve(cfg.host, cfg.port, cfg.instance)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    port = server.sockets[0].getsockname()[1]
    print(f"cache {cfg.version} ({cfg.instance}) listening on tcp://{cfg.host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    asyncio.run(_main(os.environ))


if __name__ == "__main__":
    main()
