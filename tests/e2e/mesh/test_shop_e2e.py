"""The shop through the real mesh: gateway → sidecars → apps, with real HTTP."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from typing import Any

import pytest
from meshkit import Mesh, get_json


def checkout(mesh: Mesh, payment: str = "invoice") -> tuple[int, dict[str, Any]]:
    url = f"{mesh.gateway}/checkout?item=book&payment={payment}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def chain(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every service document in a checkout response, depth first."""
    out = [doc]
    for call in doc.get("calls", []):
        if isinstance(call.get("response"), dict):
            out += chain(call["response"])
    return out


def inbound_requests(admin: str) -> int:
    stats = get_json(
        f"http://{admin}/stats?format=json&filter=^http\\.inbound_\\d+\\.downstream_rq_total$"
    )
    return sum(int(s.get("value", 0)) for s in stats["stats"])


def test_checkout_crosses_at_least_four_sidecars(shop: Mesh) -> None:
    proxies = {p["name"]: p for p in shop.status_proxies() if p["kind"] == "sidecar"}
    before = {name: inbound_requests(p["admin"]) for name, p in proxies.items()}

    status, doc = checkout(shop)

    assert status == 200
    services = [d["service"] for d in chain(doc)]
    for expected in ("frontend", "orders", "payment", "risk-assessment", "inventory", "reviews"):
        assert expected in services, services
    # Each app saw the request through its own sidecar (set by the sidecar, not the app).
    sidecars = {d["sidecar"] for d in chain(doc)}
    assert None not in sidecars
    assert sidecars == {f"sidecar~{d['instance']}.default" for d in chain(doc)}
    assert len(sidecars) >= 4
    # One request id from the gateway, forwarded across every hop.
    assert len({d["x-request-id"] for d in chain(doc)}) == 1
    # Envoy's own counters agree: each sidecar on the chain served one more inbound request.
    after = {name: inbound_requests(p["admin"]) for name, p in proxies.items()}
    crossed = {name for name in proxies if after[name] > before[name]}
    assert crossed == sidecars


def test_card_payment_skips_risk_assessment(shop: Mesh) -> None:
    status, doc = checkout(shop, payment="card")
    assert status == 200
    assert "risk-assessment" not in [d["service"] for d in chain(doc)]


def test_load_is_spread_over_replicas(shop: Mesh) -> None:
    seen: Counter[str] = Counter()
    for _ in range(20):
        _, doc = checkout(shop, payment="card")
        seen.update(d["instance"] for d in chain(doc) if d["service"] == "orders")
    assert set(seen) == {"orders-0", "orders-1"}, seen
    assert min(seen.values()) >= 5, seen


def test_status_json_has_the_contract_shape(shop: Mesh) -> None:
    data = shop.status()
    assert data["errors"] == []
    orders = next(s for s in data["services"] if s["name"] == "orders")
    assert orders["urls"] == ["http://orders:8080"]
    assert orders["replicas"] == ["orders-0", "orders-1"]
    names = {p["name"] for p in data["proxies"]}
    assert "gateway~istio-ingressgateway.istio-system" in names
    sidecar = next(p for p in data["proxies"] if p["workload"] == "payment")
    assert sidecar["kind"] == "sidecar"
    assert sidecar["namespace"] == "default"
    assert sidecar["serviceAccount"] == "payment"
    assert sidecar["labels"] == {"app": "payment", "version": "v1"}
    assert sidecar["sync"] == {"cds": "SYNCED", "eds": "SYNCED", "lds": "SYNCED", "rds": "SYNCED"}
    assert sidecar["nack"] is None
    for key in ("admin", "inbound", "outbound"):
        assert sidecar[key].startswith("127.0.0.1:")
    with urllib.request.urlopen(sidecar["metrics"], timeout=5) as resp:
        assert b"envoy_" in resp.read()
    # The inbound address is a real sidecar listener, and the shop is STRICT
    # (security.yaml): a plain-text request there gets no HTTP answer at all.
    with pytest.raises(OSError):  # the connection is closed (urllib: RemoteDisconnected)
        urllib.request.urlopen(f"http://{sidecar['inbound']}/healthz", timeout=5)
