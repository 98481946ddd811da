"""The shop's apps without a mesh: the chain, trace headers, proxy use, mesh config."""

from __future__ import annotations

import re

import aiohttp
import pytest
from shop_harness import (
    SHOP,
    TRACE,
    App,
    Doc,
    FakeUpstream,
    Launcher,
    by_kind,
    call,
    container,
    get,
    load_docs,
    targets,
    walk,
)


def test_mesh_config_is_consistent() -> None:
    services = by_kind("Service")
    deployments = by_kind("Deployment")
    assert set(services) == {
        "frontend",
        "orders",
        "inventory",
        "payment",
        "risk-assessment",
        "reviews",
        "recommendations",
        "cache",
    }
    for name, svc in services.items():
        protocol = {"recommendations": "grpc", "cache": "tcp"}.get(name, "http")
        port = 6379 if name == "cache" else 8080
        assert svc["spec"]["ports"] == [
            {"name": protocol, "port": port, "targetPort": port, "appProtocol": protocol}
        ]
    for name, dep in deployments.items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert set(labels) == {"app", "version"}, name
        assert dep["spec"]["selector"]["matchLabels"] == labels, name
        assert dep["spec"]["replicas"] == (2 if name == "orders" else 1), name
        assert dep["spec"]["template"]["spec"]["serviceAccountName"] == labels["app"], name
        assert services[labels["app"]]["spec"]["selector"] == {"app": labels["app"]}, name
        c = container(dep)
        assert (SHOP / "app" / f"{c['args'][1].removeprefix('app.')}.py").is_file(), name
        env = {e["name"]: e["value"] for e in c["env"]}
        assert all(isinstance(v, str) for v in env.values()), name
        assert env["VERSION"] == labels["version"], name
        for key, value in env.items():
            if key.endswith("_URL"):
                host = re.fullmatch(r"http://([a-z0-9-]+):8080", value)
                assert host and host.group(1) in services, (name, key, value)
    assert {
        d["spec"]["template"]["metadata"]["labels"]["version"]
        for d in deployments.values()
        if d["spec"]["template"]["metadata"]["labels"]["app"] == "reviews"
    } == {"v1", "v2"}

    gateway = by_kind("Gateway")["shop-gateway"]
    assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
    assert gateway["spec"]["servers"][0]["port"]["number"] == 80
    assert gateway["spec"]["servers"][0]["hosts"] == ["*"]
    vss = by_kind("VirtualService")
    assert vss["frontend"]["spec"]["gateways"] == ["shop-gateway"]
    assert vss["frontend"]["spec"]["http"][0]["route"][0]["destination"] == {
        "host": "frontend",
        "port": {"number": 8080},
    }
    assert vss["reviews"]["spec"]["http"][0]["route"] == [
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 100}
    ]
    subsets = by_kind("DestinationRule")["reviews"]["spec"]["subsets"]
    assert subsets == [
        {"name": "v1", "labels": {"version": "v1"}},
        {"name": "v2", "labels": {"version": "v2"}},
    ]
    for _, doc in load_docs():
        group = doc["apiVersion"].split("/")[0]
        if group.endswith("istio.io"):
            assert doc["apiVersion"] in (f"{group}/v1", f"{group}/v1beta1")


async def test_health_index_and_unknown_path(
    shop: dict[str, App], http: aiohttp.ClientSession
) -> None:
    for name, app in shop.items():
        status, doc = await get(http, f"{app.url}/healthz")
        assert status == 200 and doc["status"] == "ok", doc
        assert doc["instance"] == f"{name}-0"
    status, doc = await get(http, f"{shop['frontend'].url}/")
    assert status == 200 and "/checkout" in doc["examples"][0] and doc["calls"] == []
    status, doc = await get(http, f"{shop['frontend'].url}/nope")
    assert status == 404 and doc["service"] == "frontend" and doc["error"]


async def test_invoice_checkout_shows_the_whole_chain(
    shop: dict[str, App], http: aiohttp.ClientSession
) -> None:
    url = f"{shop['frontend'].url}/checkout?item=book&qty=2&payment=invoice"
    status, front = await get(http, url, TRACE)
    assert status == 200, front
    assert (front["service"], front["version"], front["instance"]) == (
        "frontend",
        "v1",
        "frontend-0",
    )
    assert front["checkout"] == "confirmed" and front["amount"] == 25.0
    assert front["reviews_available"] is True
    assert targets(front) == ["reviews", "orders"]

    reviews = call(front, "reviews")
    assert reviews["status"] == 200 and reviews["request"].endswith("/reviews/book")
    assert reviews["response"]["instance"] == "reviews-v1-0"

    orders = call(front, "orders")
    assert orders["status"] == 201 and orders["request"].startswith("POST ")
    order = orders["response"]
    assert order["service"] == "orders" and order["status"] == "confirmed"
    assert order["order_id"] == front["order_id"]
    assert targets(order) == ["inventory", "payment"]
    assert call(order, "inventory")["response"]["reserved"] is True

    payment = call(order, "payment")["response"]
    assert payment["approved"] is True and payment["method"] == "invoice"
    assert targets(payment) == ["risk-assessment"]
    risk = call(payment, "risk-assessment")["response"]
    assert risk["service"] == "risk-assessment" and risk["acceptable"] is True
    assert risk["customer"] == "alice" and risk["score"] == payment["risk_score"]

    nodes = list(walk(front))
    assert [n["service"] for n in nodes] == [
        "frontend",
        "reviews",
        "orders",
        "inventory",
        "payment",
        "risk-assessment",
    ]
    trace = {k: v for k, v in TRACE.items() if k != "x-request-id"}
    for node in nodes:
        assert node["x-request-id"] == TRACE["x-request-id"], node["service"]
        assert node["trace"] == trace, node["service"]
        assert node["instance"].startswith(node["service"]), node
        assert isinstance(node["calls"], list), node
    assert risk["calls"] == [] and call(order, "inventory")["response"]["calls"] == []


async def test_card_checkout_does_not_consult_risk_assessment(
    shop: dict[str, App], http: aiohttp.ClientSession
) -> None:
    url = f"{shop['frontend'].url}/checkout?item=mug&qty=3&payment=card"
    status, front = await get(http, url)
    assert status == 200, front
    assert front["amount"] == 24.0 and front["x-request-id"] is None
    payment = call(call(front, "orders")["response"], "payment")["response"]
    assert payment["approved"] is True and payment["method"] == "card"
    assert payment["calls"] == []
    assert "risk-assessment" not in [n["service"] for n in walk(front)]


@pytest.mark.parametrize(
    ("service", "method", "path", "body", "expected"),
    [
        (
            "frontend",
            "GET",
            "/checkout?item=book&payment=invoice",
            None,
            ["/reviews/book", "/orders"],
        ),
        (
            "orders",
            "POST",
            "/orders",
            {"item": "book", "qty": 1, "payment": "invoice", "customer": "alice"},
            ["/reserve", "/charge"],
        ),
        (
            "payment",
            "POST",
            "/charge",
            {"customer": "alice", "item": "book", "amount": 3.5, "method": "invoice"},
            ["/assess"],
        ),
    ],
)
async def test_trace_headers_are_forwarded_to_every_upstream(
    launcher: Launcher,
    fake: FakeUpstream,
    http: aiohttp.ClientSession,
    service: str,
    method: str,
    path: str,
    body: Doc | None,
    expected: list[str],
) -> None:
    urls = dict.fromkeys(("REVIEWS_URL", "ORDERS_URL", "INVENTORY_URL", "PAYMENT_URL"), fake.url)
    urls["RISK_ASSESSMENT_URL"] = fake.url
    app = launcher.start(service, service, urls)
    launcher.ready(app)
    headers = TRACE | {"x-unrelated": "keep-me-here", "authorization": "Bearer secret"}
    async with http.request(method, f"{app.url}{path}", json=body, headers=headers) as resp:
        doc = await resp.json()
        assert resp.status < 300, doc
    assert sorted(s.path for s in fake.seen) == sorted(expected)
    for seen in fake.seen:
        assert {k: seen.headers.get(k) for k in TRACE} == TRACE, seen.path
        assert "x-unrelated" not in seen.headers and "authorization" not in seen.headers


async def test_outbound_calls_go_through_http_proxy(
    launcher: Launcher, fake: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    # As in the mesh: upstreams by service name, HTTP_PROXY = the sidecar's outbound port.
    app = launcher.start("frontend", "frontend", {"HTTP_PROXY": fake.url})
    launcher.ready(app)
    status, doc = await get(http, f"{app.url}/checkout?item=lamp", TRACE)
    assert status == 200, doc
    assert sorted((s.target, s.headers["host"]) for s in fake.seen) == [
        ("http://orders:8080/orders", "orders:8080"),
        ("http://reviews:8080/reviews/lamp", "reviews:8080"),
    ]
    assert call(doc, "orders")["request"] == "POST http://orders:8080/orders"
