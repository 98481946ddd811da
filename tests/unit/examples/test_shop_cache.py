"""The shop's plain-TCP cache: server-first greeting, INCR/GET, errors, and its client."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections import Counter

import pytest
from shop_harness import SHOP

sys.path.insert(0, str(SHOP))  # the shop's apps are a package of the example, not of plait
cache = importlib.import_module("app.cache")


def test_answers() -> None:
    counts: Counter[str] = Counter()
    assert cache.answer(counts, "INCR views:book\r\n") == ":1"
    assert cache.answer(counts, "incr views:book") == ":2"
    assert cache.answer(counts, "GET views:book") == ":2"
    assert cache.answer(counts, "GET other") == ":0"
    assert cache.answer(counts, "SET a b").startswith("-ERR")
    assert cache.answer(counts, "INCR a b").startswith("-ERR")


async def test_the_server_greets_first_and_the_client_counts() -> None:
    server = await cache.serve("127.0.0.1", 0, "cache-7")
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.readline() == b"+READY cache-7\r\n"  # before we said anything
        writer.close()
        first = await cache.incr(f"127.0.0.1:{port}", "views:mug", 2.0)
        second = await cache.incr(f"127.0.0.1:{port}", "views:mug", 2.0)
    assert (first.value, second.value, second.instance) == (1, 2, "cache-7")


async def test_the_client_refuses_what_is_not_the_cache() -> None:
    async def http_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(ValueError, match="unexpected greeting"):
            await cache.incr(f"127.0.0.1:{port}", "k", 2.0)
