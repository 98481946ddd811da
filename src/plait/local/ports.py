"""Ports for listeners that plait configures but does not bind itself.

plait picks a port, then an Envoy binds it later (when its listener arrives over xDS).
A port from the kernel's ephemeral range could be handed, in between, to any outgoing
connection on the machine (every sidecar-to-sidecar and Envoy-to-control-plane connection
takes one), and the listener would then fail to bind. So ports are chosen *below* the
ephemeral range (`net.ipv4.ip_local_port_range`), which the kernel never assigns on its
own, checked to be free, and never handed out twice by this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10000  # stay clear of well-known and commonly configured service ports
_given: set[int] = set()


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(x) for x in EPHEMERAL_RANGE_FILE.read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _candidates() -> range:
    low, high = ephemeral_range()
    if low - LOWEST >= 1000:
        return range(LOWEST, low)
    return range(high + 1, 65536)  # a machine whose ephemeral range starts low


def can_bind(host: str, port: int) -> bool:
    """True if a listener could bind host:port now (SO_REUSEADDR, as Envoy binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A free port outside the ephemeral range, not given out before by this process."""
    candidates = _candidates()
    for _ in range(1000):
        port = random.choice(candidates)
        if port not in _given and can_bind(host, port):
            _given.add(port)
            return port
    raise OSError(f"no free port found in {candidates.start}-{candidates.stop - 1} on {host}")


def is_listening(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


async def accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """`is_listening` without blocking the event loop."""
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
