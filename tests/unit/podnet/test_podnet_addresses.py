"""Choosing pod/service ranges that overlap no host route; stable cluster IPs."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from plait.podnet.addresses import POOL, ClusterIPAllocator, free_subnets, routed_networks

ROUTES = [
    {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
    {"dst": "10.128.0.0/23", "dev": "docker0"},
    {"type": "local", "dst": "10.128.2.7", "dev": "eth1", "table": "local"},
    {"dst": "fe80::/64", "dev": "eth0"},
    {"dst": "not-an-address"},
]


def test_routed_networks_skip_default_and_junk() -> None:
    assert routed_networks(ROUTES) == [IPv4Network("10.128.0.0/23"), IPv4Network("10.128.2.7/32")]


def test_free_subnets_skip_every_overlap() -> None:
    free = free_subnets(routed_networks(ROUTES))
    assert [str(next(free)) for _ in range(2)] == ["10.128.3.0/24", "10.128.4.0/24"]


def test_free_subnets_start_anywhere_and_wrap() -> None:
    last = list(POOL.subnets(new_prefix=24))[-1]
    free = free_subnets([], start=len(list(POOL.subnets(new_prefix=24))) - 1)
    assert next(free) == last and next(free) == IPv4Network("10.128.0.0/24")


def test_a_taken_pool_yields_nothing() -> None:
    assert list(free_subnets([IPv4Network("10.0.0.0/8")])) == []


def test_cluster_ips_are_stable_per_key_and_reused_after_release() -> None:
    alloc = ClusterIPAllocator(IPv4Network("10.130.5.0/30"))
    a, b = alloc.allocate("default/a"), alloc.allocate("shop/b")
    assert (a, b) == (IPv4Address("10.130.5.1"), IPv4Address("10.130.5.2"))
    assert alloc.allocate("default/a") == a
    with pytest.raises(ValueError, match="no free cluster IP left in 10.130.5.0/30"):
        alloc.allocate("x/c")
    alloc.release("default/a")
    assert alloc.allocate("x/c") == a and alloc.assigned() == {"shop/b": b, "x/c": a}
