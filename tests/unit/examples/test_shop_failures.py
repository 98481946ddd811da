"""The shop's apps without a mesh: failing dependencies, business errors, delays."""

from __future__ import annotations

import time

import aiohttp
from shop_harness import (
    START_TIMEOUT_S,
    TRACE,
    App,
    FakeUpstream,
    Launcher,
    call,
    get,
    post,
    targets,
)


async def test_a_failing_required_dependency_gives_502_with_the_partial_chain(
    shop: dict[str, App],
    launcher: Launcher,
    http: aiohttp.ClientSession,
    refused_url: str,
) -> None:
    # The outage of the story: risk-assessment is unreachable, so invoice payment fails
    # all the way up, card payment keeps working, and the reserved stock is given back.
    urls = {"risk-assessment": refused_url, "inventory": shop["inventory"].url}
    payment = launcher.start_deployment("payment", urls)
    launcher.ready(payment)
    orders = launcher.start_deployment("orders", urls | {"payment": payment.url})
    launcher.ready(orders)
    frontend = launcher.start_deployment(
        "frontend", {"orders": orders.url, "reviews": shop["reviews-v1"].url}
    )
    launcher.ready(frontend)
    _, before = await get(http, f"{shop['inventory'].url}/stock")

    status, front = await get(http, f"{frontend.url}/checkout?item=book&payment=invoice", TRACE)
    assert status == 502, front
    assert "checkout failed" in front["error"]
    assert call(front, "reviews")["status"] == 200
    order_call = call(front, "orders")
    assert order_call["status"] == 502 and "payment failed" in order_call["error"]
    order = order_call["response"]
    assert targets(order) == ["inventory", "payment", "inventory"]
    assert call(order, "inventory", 1)["request"].endswith("/release")
    assert call(order, "inventory", 1)["status"] == 200
    payment_call = call(order, "payment")
    assert payment_call["status"] == 502
    risk = call(payment_call["response"], "risk-assessment")
    assert risk["status"] is None and "Connect" in risk["error"], risk
    assert "response" not in risk
    _, after = await get(http, f"{shop['inventory'].url}/stock")
    assert after["items"] == before["items"]

    status, front = await get(http, f"{frontend.url}/checkout?item=book&payment=card")
    assert status == 200, front


async def test_upstream_error_answers_are_reported(
    shop: dict[str, App], launcher: Launcher, fake: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    # What Envoy answers when it cannot reach an upstream: a 503 with a text body.
    fake.answers["/orders"] = (503, "upstream connect error or disconnect/reset before headers")
    frontend = launcher.start(
        "frontend", "frontend", {"ORDERS_URL": fake.url, "REVIEWS_URL": shop["reviews-v1"].url}
    )
    launcher.ready(frontend)
    status, front = await get(http, f"{frontend.url}/checkout")
    assert status == 502, front
    orders = call(front, "orders")
    assert orders["status"] == 503 and orders["body"].startswith("upstream connect error")
    assert "503" in orders["error"] and "response" not in orders
    assert call(front, "reviews")["status"] == 200

    # reviews are optional: their failure is shown, the checkout goes on.
    fake.answers["/orders"] = (201, {"order_id": "o-9", "amount": 12.5, "calls": []})
    fake.answers["/reviews/"] = (500, {"error": "boom"})
    frontend2 = launcher.start(
        "frontend", "frontend", {"ORDERS_URL": fake.url, "REVIEWS_URL": fake.url}
    )
    launcher.ready(frontend2)
    status, front = await get(http, f"{frontend2.url}/checkout")
    assert status == 200 and front["reviews_available"] is False, front
    assert call(front, "reviews")["error"] == "HTTP 500: boom"


async def test_business_errors_pass_through_the_chain(
    shop: dict[str, App], http: aiohttp.ClientSession
) -> None:
    base = f"{shop['frontend'].url}/checkout"
    status, doc = await get(http, f"{base}?item=unicorn")
    assert status == 404 and "unknown item" in doc["error"], doc
    assert targets(doc) == ["reviews", "orders"]
    assert call(call(doc, "orders")["response"], "inventory")["status"] == 404

    status, doc = await get(http, f"{base}?item=lamp&qty=100000000")
    assert status == 409 and "not enough" in doc["error"], doc

    for query in ("qty=0", "qty=two", "payment=cash", "item="):
        status, doc = await get(http, f"{base}?{query}")
        assert status == 400, (query, doc)
        assert doc["service"] == "frontend" and doc["error"], query

    async with http.post(f"{shop['orders'].url}/orders", data=b"not json") as resp:
        assert resp.status == 400 and "JSON" in (await resp.json())["error"]


async def test_risky_invoice_is_declined_and_stock_released(
    shop: dict[str, App], http: aiohttp.ClientSession
) -> None:
    risk_url = f"{shop['risk-assessment'].url}/assess"
    first = await post(http, risk_url, {"customer": "eve", "item": "book"})
    second = await post(http, risk_url, {"customer": "eve", "item": "book"})
    assert first[0] == 200 and first[1]["score"] == second[1]["score"] >= 70
    assert first[1]["acceptable"] is False
    _, other = await post(http, risk_url, {"customer": "alice", "item": "book"})
    assert other["acceptable"] is True

    _, before = await get(http, f"{shop['inventory'].url}/stock")
    url = f"{shop['frontend'].url}/checkout?item=book&payment=invoice&customer=eve"
    status, front = await get(http, url)
    assert status == 402 and "invoice declined" in front["error"], front
    order = call(front, "orders")["response"]
    assert targets(order) == ["inventory", "payment", "inventory"]
    assert call(order, "payment")["response"]["approved"] is False
    _, after = await get(http, f"{shop['inventory'].url}/stock")
    assert after["items"] == before["items"]


async def test_risk_delay_ms_delays_the_assessment(
    shop: dict[str, App], launcher: Launcher, http: aiohttp.ClientSession
) -> None:
    slow = launcher.start_deployment("risk-assessment", {}, RISK_DELAY_MS="400")
    launcher.ready(slow)
    body = {"customer": "alice", "item": "book"}
    start = time.monotonic()
    status, doc = await post(http, f"{slow.url}/assess", body)
    assert status == 200 and doc["delay_ms"] == 400
    assert time.monotonic() - start >= 0.4

    _, fast = await post(http, f"{shop['risk-assessment'].url}/assess", body)
    assert fast["delay_ms"] == 0 and fast["score"] == doc["score"]

    # payment sees the delay; with its own client timeout below it, invoice fails (502).
    payment = launcher.start_deployment(
        "payment", {"risk-assessment": slow.url}, UPSTREAM_TIMEOUT_MS="100"
    )
    launcher.ready(payment)
    charge = {"customer": "alice", "item": "book", "amount": 1, "method": "invoice"}
    status, doc = await post(http, f"{payment.url}/charge", charge)
    assert status == 502, doc
    assert call(doc, "risk-assessment")["error"] == "no answer within 0.1s"
    status, doc = await post(http, f"{payment.url}/charge", charge | {"method": "card"})
    assert status == 200 and doc["approved"] is True


async def test_reviews_v2_adds_star_ratings(
    shop: dict[str, App], http: aiohttp.ClientSession
) -> None:
    _, v1 = await get(http, f"{shop['reviews-v1'].url}/reviews/book")
    _, v2 = await get(http, f"{shop['reviews-v2'].url}/reviews/book")
    assert (v1["version"], v2["version"]) == ("v1", "v2")
    assert v1["reviews"] and all("stars" not in r for r in v1["reviews"])
    assert "rating" not in v1
    assert [r["stars"] for r in v2["reviews"]] == [5, 4] and v2["rating"] == 4.5
    _, none = await get(http, f"{shop['reviews-v2'].url}/reviews/poster")
    assert none["reviews"] == [] and none["rating"] is None


def test_bad_configuration_exits_with_a_message(launcher: Launcher) -> None:
    app = launcher.start("risk-assessment", "risk_assessment", {"RISK_DELAY_MS": "soon"})
    assert app.proc.wait(timeout=START_TIMEOUT_S) != 0
    out = app.output()
    assert "RISK_DELAY_MS must be an integer" in out and "Traceback" not in out
