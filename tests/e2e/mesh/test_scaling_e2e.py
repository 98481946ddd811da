"""Editing a Deployment's replicas scales the running mesh, and no request is lost."""

from __future__ import annotations

import json
import urllib.request

from meshkit import Load, Mesh, envoy_pid, eventually

ORDERS_REPLICAS = "  replicas: 2\n"  # the orders Deployment in examples/shop/deployments.yaml


def set_orders_replicas(mesh: Mesh, n: int) -> None:
    path = mesh.root / "deployments.yaml"
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("  name: orders"))
    at = next(i for i in range(start, len(lines)) if lines[i].startswith("  replicas:"))
    lines[at] = f"  replicas: {n}\n"
    path.write_text("".join(lines))


def orders_instances_seen(mesh: Mesh, n: int = 12) -> set[str]:
    seen = set()
    for _ in range(n):
        with urllib.request.urlopen(
            f"{mesh.gateway}/checkout?item=mug&payment=card", timeout=10
        ) as r:
            doc = json.loads(r.read())
        for call in doc["calls"]:
            if call["target"] == "orders":
                seen.add(call["response"]["instance"])
    return seen


def sidecars(mesh: Mesh) -> set[str]:
    return {p["name"] for p in mesh.status_proxies() if p["kind"] == "sidecar"}


async def test_scale_up_then_down_under_traffic(shop: Mesh) -> None:
    assert ORDERS_REPLICAS in (shop.root / "deployments.yaml").read_text()
    url = f"{shop.gateway}/checkout?item=book&payment=card"
    async with Load(url) as load:
        await eventually(lambda: load.count_since(0) >= 20, 10, "traffic to flow")

        set_orders_replicas(shop, 3)
        await eventually(
            lambda: "sidecar~orders-2.default" in sidecars(shop), 30, "a third replica"
        )
        await eventually(
            lambda: "orders-2" in orders_instances_seen(shop), 10, "traffic on orders-2"
        )

        set_orders_replicas(shop, 1)
        await eventually(
            lambda: not {"sidecar~orders-1.default", "sidecar~orders-2.default"} & sidecars(shop),
            30,
            "two replicas to stop",
        )
        assert envoy_pid(shop.root, "orders-1.default") is None
        assert envoy_pid(shop.root, "orders-2.default") is None
        assert orders_instances_seen(shop) == {"orders-0"}
    assert load.failures == [], f"{len(load.failures)} failed of {load.total}: {load.failures[:5]}"
    assert load.total >= 40
