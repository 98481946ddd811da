"""The shop's gRPC call through the real mesh: gateway → frontend → (gRPC) recommendations.

frontend dials its sidecar's outbound listener ($PLAIT_OUTBOUND) with `recommendations:8080`
as :authority; the recommendations sidecar speaks h2c to the gRPC server.
"""

from __future__ import annotations

import json
import urllib.request

from meshkit import Mesh, get_json


def test_product_page_crosses_the_mesh_over_grpc(shop: Mesh) -> None:
    with urllib.request.urlopen(f"{shop.gateway}/product/book", timeout=10) as resp:
        status, doc = resp.status, json.loads(resp.read())

    assert status == 200, doc
    assert doc["recommended"] == ["lamp", "poster"], doc
    (rec_call,) = [c for c in doc["calls"] if c["target"] == "recommendations"]
    assert rec_call["request"] == "gRPC recommendations:8080/shop.Recommendations/For"
    answer = rec_call["response"]
    # delivered by the recommendations sidecar, with the gateway's request id
    assert answer["sidecar"] == "sidecar~recommendations-0.default"
    assert answer["x-request-id"] == doc["x-request-id"] is not None
    assert doc["sidecar"] == "sidecar~frontend-0.default"
    # frontend's sidecar sent it as HTTP/2 to recommendations' cluster
    frontend = next(p for p in shop.status_proxies() if p["workload"] == "frontend")
    stats = get_json(f"http://{frontend['admin']}/stats?format=json&filter=recommendations")
    values = {s["name"]: s["value"] for s in stats["stats"] if "value" in s}
    cluster = "cluster.outbound|8080||recommendations.default.svc.cluster.local"
    assert values[f"{cluster}.upstream_rq_200"] >= 1
    assert values[f"{cluster}.upstream_cx_http2_total"] >= 1
