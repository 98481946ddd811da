"""Choosing address ranges that collide with nothing on the host, and cluster IPs.

Pure: the caller passes the host's routes (`ip -j -4 route show table all`, parsed by
`routed_networks`). A range is free when it overlaps no route; once a run takes a range
it adds a route for it (the bridge's, or an `unreachable` route for virtual IPs), so the
next run — under the same lock — sees it taken.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

POOL = IPv4Network("10.128.0.0/9")
"""Where pod and service /24s come from: private, and rarely used by hosts or Docker."""
PREFIX = 24


def routed_networks(routes: Iterable[dict[str, Any]]) -> list[IPv4Network]:
    """The destinations of `ip -j route` entries, `default` excepted."""
    nets: list[IPv4Network] = []
    for route in routes:
        dst = str(route.get("dst", ""))
        if not dst or dst == "default":
            continue
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if isinstance(net, IPv4Network):
            nets.append(net)
    return nets


def free_subnets(
    taken: Iterable[IPv4Network], start: int = 0, pool: IPv4Network = POOL
) -> Iterator[IPv4Network]:
    """/24s of `pool` that overlap nothing in `taken`, from the `start`-th onwards (wrapping)."""
    taken = list(taken)
    subnets = list(pool.subnets(new_prefix=PREFIX))
    for i in range(len(subnets)):
        subnet = subnets[(start + i) % len(subnets)]
        if not any(subnet.overlaps(net) for net in taken):
            yield subnet


@dataclass
class ClusterIPAllocator:
    """Stable virtual IPs for services: one per key, lowest free first, within `cidr`."""

    cidr: IPv4Network
    _by_key: dict[str, IPv4Address] = field(default_factory=dict)

    def allocate(self, key: str) -> IPv4Address:
        """The key's IP (the same on every call); ValueError when the range is full."""
        if key in self._by_key:
            return self._by_key[key]
        used = set(self._by_key.values())
        for ip in self.cidr.hosts():
            if ip not in used:
                self._by_key[key] = ip
                return ip
        raise ValueError(f"no free cluster IP left in {self.cidr}")

    def release(self, key: str) -> None:
        self._by_key.pop(key, None)

    def assigned(self) -> dict[str, IPv4Address]:
        return dict(self._by_key)
