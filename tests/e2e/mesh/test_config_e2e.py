"""Config edits reach every proxy fast; bad config is reported and never breaks the mesh."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from meshkit import Mesh, eventually, get_json, plait

REVIEWS_VS = "virtual-services.yaml"


def reviews_vs(subset: str, extra_match: str = "") -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - {extra_match}route:
    - destination: {{host: reviews, subset: {subset}}}
"""


def reviews_instances(mesh: Mesh, n: int = 10) -> set[str]:
    seen = set()
    for _ in range(n):
        url = f"{mesh.gateway}/checkout?item=book&payment=card"
        with urllib.request.urlopen(url, timeout=10) as resp:
            doc = json.loads(resp.read())
        for call in doc["calls"]:
            if call["target"] == "reviews":
                assert call.get("status") == 200, f"the reviews call failed: {call}"
                seen.add(call["response"]["instance"])
    return seen


@pytest.fixture
def vs_file(shop: Mesh) -> Iterator[Path]:
    """The reviews VirtualService file, restored (and the mesh resynced) after the test."""
    path = shop.root / REVIEWS_VS
    original = path.read_text()
    yield path
    before = shop.cp_status()["controlPlane"]["generation"]
    path.write_text(original)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        cp = shop.cp_status()
        generation = cp["controlPlane"]["generation"]
        if generation > before and not cp["errors"] and shop.all_synced(generation):
            return
        time.sleep(0.05)
    raise AssertionError("the mesh did not resync after restoring " + str(path))


async def test_yaml_edit_is_acked_by_every_proxy_in_under_a_second(
    shop: Mesh, vs_file: Path
) -> None:
    assert reviews_instances(shop) == {"reviews-v1-0"}
    before = shop.cp_status()["controlPlane"]["generation"]

    start = time.monotonic()
    vs_file.write_text(reviews_vs("v2"))
    await eventually(
        lambda: shop.cp_status()["controlPlane"]["generation"] > before, 5, "a new generation"
    )
    generation = shop.cp_status()["controlPlane"]["generation"]
    await eventually(lambda: shop.all_synced(generation), 5, "every proxy to ACK the edit")
    elapsed = time.monotonic() - start

    assert elapsed < 1.0, f"edit took {elapsed:.3f}s to be ACKed by every proxy"
    assert len(shop.cp_status()["proxies"]) == len(shop.status_proxies())
    assert reviews_instances(shop) == {"reviews-v2-0"}


def _error_for(mesh: Mesh, file: Path) -> list[dict[str, Any]]:
    return [e for e in mesh.status()["errors"] if e["file"].endswith(file.name)]


async def test_malformed_yaml_is_reported_and_the_mesh_keeps_serving(
    shop: Mesh, vs_file: Path
) -> None:
    vs_file.write_text(reviews_vs("v1") + "  - route: [unclosed\n")
    await eventually(lambda: bool(_error_for(shop, vs_file)), 5, "status to report the file")
    [error] = _error_for(shop, vs_file)
    assert error["document"] == 0
    assert "line" in error["message"]

    analyze = plait("analyze", str(shop.root))
    assert analyze.returncode == 1
    assert REVIEWS_VS in analyze.stdout
    # Last good config still in force: reviews still routed to v1 only, no proxy NACKs.
    assert reviews_instances(shop) == {"reviews-v1-0"}
    assert "virtual-services.yaml" in " ".join(shop.status()["keptLastGood"])
    assert all(p["nack"] is None for p in shop.status()["proxies"])


async def test_invalid_field_names_file_and_path_and_keeps_last_good(
    shop: Mesh, vs_file: Path
) -> None:
    vs_file.write_text(reviews_vs("v2").replace("subset: v2}", "subset: v2}\n      weight: lots"))
    await eventually(lambda: bool(_error_for(shop, vs_file)), 5, "status to report the field")
    [error] = _error_for(shop, vs_file)
    assert error["path"] == "spec.http[0].route[0].weight"
    assert error["document"] == 0

    analyze = plait("analyze", str(shop.root), "-o", "json")
    assert analyze.returncode == 1
    paths = [m["path"] for m in json.loads(analyze.stdout)["messages"] if m["severity"] == "error"]
    assert paths == ["spec.http[0].route[0].weight"]
    assert reviews_instances(shop) == {"reviews-v1-0"}


def _rds_rejected(admin: str) -> int:
    stats = get_json(f"http://{admin}/stats?format=json&filter=rds\\.outbound\\.update_rejected$")
    return sum(int(s.get("value", 0)) for s in stats["stats"])


def _route_names(admin: str) -> list[str]:
    dump = get_json(f"http://{admin}/config_dump?resource=dynamic_route_configs")
    return [
        route.get("name", "")
        for config in dump["configs"]
        for vhost in config["route_config"].get("virtual_hosts", [])
        for route in vhost.get("routes", [])
    ]


ORDERS_VS = """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: orders
spec:
  hosts: [orders]
  http:
  - route:
    - destination: {host: orders}
"""


async def test_a_regex_envoy_would_reject_is_refused_and_never_pushed(
    shop: Mesh, vs_file: Path
) -> None:
    # Valid for plait's schema, but RE2 (Envoy) has no lookahead: Envoy would NACK the whole
    # route table. The control plane refuses the VirtualService instead: reviews keeps its
    # last good routing, the valid VirtualService next to it in the file is applied, and
    # Envoy never sees the bad regex. (NACK handling itself: tests/component/xds.)
    frontend = next(p for p in shop.status()["proxies"] if p["workload"] == "frontend")
    rejected = _rds_rejected(frontend["admin"])
    bad = reviews_vs("v2", extra_match="match: [{uri: {regex: '^/(?!admin).*'}}]\n    ")
    vs_file.write_text(bad + ORDERS_VS)

    await eventually(lambda: bool(_error_for(shop, vs_file)), 5, "status to report the regex")
    [error] = _error_for(shop, vs_file)
    assert (error["document"], error["path"]) == (0, "spec.http[0].match[0].uri.regex")
    assert (error["kind"], error["name"]) == ("VirtualService", "reviews")
    assert "invalid perl operator: (?!" in error["message"]
    assert any("VirtualService/default/reviews" in k for k in shop.status()["keptLastGood"])

    # The valid neighbour reaches every proxy; the invalid one does not.
    generation = shop.cp_status()["controlPlane"]["generation"]
    await eventually(lambda: shop.all_synced(generation), 5, "every proxy to ACK")
    await eventually(
        lambda: any(n.startswith("default/orders/") for n in _route_names(frontend["admin"])),
        5,
        "the orders VirtualService in frontend's routes",
    )
    assert all(p["nack"] is None for p in shop.status()["proxies"])
    assert _rds_rejected(frontend["admin"]) == rejected
    assert reviews_instances(shop) == {"reviews-v1-0"}

    analyze = plait("analyze", str(shop.root), "-o", "json")
    assert analyze.returncode == 1
    paths = [m["path"] for m in json.loads(analyze.stdout)["messages"] if m["severity"] == "error"]
    assert paths == ["spec.http[0].match[0].uri.regex"]
