"""Nothing is lost: an Envoy crash recovers fast, a control-plane restart drops nothing."""

from __future__ import annotations

import os
import signal
import time

from meshkit import Load, Mesh, envoy_pid, eventually


async def test_killed_sidecar_envoy_is_restarted_and_traffic_recovers(shop: Mesh) -> None:
    url = f"{shop.gateway}/checkout?item=book&payment=card"
    async with Load(url) as load:
        await eventually(lambda: load.count_since(0) >= 20, 10, "traffic to flow")
        root = shop.root
        old = envoy_pid(root, "frontend-0.default")
        assert old is not None
        killed_at = time.monotonic()
        os.kill(old, signal.SIGKILL)
        await eventually(
            lambda: envoy_pid(root, "frontend-0.default") not in (None, old), 5, "a new Envoy"
        )
        # Recovered: a run of consecutive successes that started after the kill.
        await eventually(lambda: load.count_since(killed_at) >= 20, 5, "traffic to recover")
        recovered_at = min(t for t in load.successes if t >= killed_at)
    assert recovered_at - killed_at < 5.0
    late_failures = [f for f in load.failures if f[0] > recovered_at + 1.0]
    assert not late_failures, late_failures[:5]
    await eventually(lambda: shop.all_synced(), 10, "the restarted sidecar to resync")


async def test_controlplane_restart_under_traffic_loses_no_request(shop: Mesh) -> None:
    url = f"{shop.gateway}/checkout?item=book&payment=invoice"
    old_pid = shop.cp_status()["controlPlane"]["pid"]
    async with Load(url) as load:
        await eventually(lambda: load.count_since(0) >= 20, 10, "traffic to flow")
        os.kill(old_pid, signal.SIGKILL)
        await eventually(
            lambda: shop.cp_status()["controlPlane"]["pid"] != old_pid, 15, "a new control plane"
        )
        # Every Envoy reconnects and ACKs the (identical) config from the new control plane.
        await eventually(lambda: shop.all_synced(), 15, "every proxy to reconnect and ACK")
        after = time.monotonic()
        await eventually(lambda: load.count_since(after) >= 20, 10, "traffic after the restart")
    assert load.failures == [], f"{len(load.failures)} failed of {load.total}: {load.failures[:5]}"
    assert load.total >= 40
