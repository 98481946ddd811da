"""The shop's gRPC service and the frontend's product page that calls it (no mesh)."""

from __future__ import annotations

import aiohttp
from shop_harness import TRACE, Launcher, call, get, targets


def _addr(url: str) -> str:
    return url.removeprefix("http://")


async def test_product_page_calls_reviews_over_http_and_recommendations_over_grpc(
    launcher: Launcher, http: aiohttp.ClientSession
) -> None:
    rec = launcher.start_deployment("recommendations", {})
    reviews = launcher.start_deployment("reviews-v2", {})
    launcher.ready(rec, reviews)
    front = launcher.start_deployment(
        "frontend", {"reviews": reviews.url}, RECOMMENDATIONS_ADDR=_addr(rec.url)
    )
    launcher.ready(front)

    status, doc = await get(http, f"{front.url}/product/book", headers=TRACE)

    assert status == 200, doc
    assert targets(doc) == ["reviews", "recommendations"]
    assert doc["recommended"] == ["lamp", "poster"]
    assert [r["stars"] for r in doc["reviews"]] == [5, 4]
    grpc_call = call(doc, "recommendations")
    assert grpc_call["request"] == f"gRPC {_addr(rec.url)}/shop.Recommendations/For"
    answer = grpc_call["response"]
    assert answer["service"] == "recommendations" and answer["instance"] == "recommendations-0"
    assert answer["item"] == "book" and answer["calls"] == []
    # trace headers travel as gRPC metadata
    assert answer["x-request-id"] == TRACE["x-request-id"]
    assert answer["trace"] == {k: v for k, v in TRACE.items() if k != "x-request-id"}


async def test_grpc_client_dials_plait_outbound_with_the_service_as_authority(
    launcher: Launcher, http: aiohttp.ClientSession
) -> None:
    """Local mode: `recommendations` does not resolve; the call goes to $PLAIT_OUTBOUND."""
    rec = launcher.start_deployment("recommendations", {})
    launcher.ready(rec)
    front = launcher.start_deployment("frontend", {}, PLAIT_OUTBOUND=_addr(rec.url))
    launcher.ready(front)

    status, doc = await get(http, f"{front.url}/product/mug")

    assert status == 200, doc
    grpc_call = call(doc, "recommendations")
    assert grpc_call["status"] == 200, grpc_call
    assert grpc_call["request"] == "gRPC recommendations:8080/shop.Recommendations/For"
    assert doc["recommended"] == ["book"]


async def test_recommendations_are_optional(
    launcher: Launcher, http: aiohttp.ClientSession, refused_url: str
) -> None:
    reviews = launcher.start_deployment("reviews-v1", {})
    launcher.ready(reviews)
    front = launcher.start_deployment(
        "frontend", {"reviews": reviews.url}, RECOMMENDATIONS_ADDR=_addr(refused_url)
    )
    launcher.ready(front)

    status, doc = await get(http, f"{front.url}/product/lamp")

    assert status == 200, doc
    assert doc["recommended"] is None and doc["reviews"]
    grpc_call = call(doc, "recommendations")
    assert grpc_call["status"] is None
    assert grpc_call["error"].startswith("gRPC UNAVAILABLE"), grpc_call
