"""Listener ports are chosen outside the kernel's ephemeral range and never twice."""

from __future__ import annotations

import socket

from plait.local import ports


def test_free_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    low, _ = ports.ephemeral_range()
    got = [ports.free_port() for _ in range(50)]
    assert len(set(got)) == 50
    assert all(ports.LOWEST <= p < low for p in got)
    assert all(ports.can_bind("127.0.0.1", p) for p in got)


def test_a_listening_port_cannot_be_bound() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert not ports.can_bind("127.0.0.1", port)
        assert ports.is_listening("127.0.0.1", port)
