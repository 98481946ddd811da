"""frontend: the shop's entry point, behind the ingress gateway.

``GET /checkout?item=ITEM&qty=N&payment=card|invoice&customer=NAME`` asks ``reviews`` for
the item's reviews and ``orders`` to place the order (concurrently), and answers with the
whole call chain. Reviews are optional (a failure is shown, the checkout goes on); the
order is required (its failure makes the checkout fail with the partial chain).

``GET /product/ITEM`` asks ``reviews`` (HTTP) and ``recommendations`` (gRPC, see
:mod:`app.recommendations`) concurrently, and counts the view in ``cache`` (plain TCP,
see :mod:`app.cache`; only in a pod); all are optional.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from urllib.parse import quote

import grpc
from aiohttp import web

from . import cache, recommendations, shopkit
from .shopkit import Chain, HttpError

PAYMENT_METHODS = ("card", "invoice")
RECOMMENDATIONS = web.AppKey("recommendations", grpc.aio.Channel)


def create_app(env: Mapping[str, str] | None = None) -> web.Application:
    cfg = shopkit.Config.from_env("frontend", env)
    reviews_url = cfg.upstream("REVIEWS_URL", "http://reviews:8080")
    orders_url = cfg.upstream("ORDERS_URL", "http://orders:8080")
    recommendations_addr = cfg.env.get("RECOMMENDATIONS_ADDR", "recommendations:8080")
    # plain TCP: only when traffic is captured (in a pod); see app.cache
    cache_addr = cfg.env.get("CACHE_ADDR", "cache:6379") if cfg.env.get("POD_IP") else None

    async def count_view(chain: Chain, item: str) -> int | None:
        if cache_addr is None:
            return None
        call = shopkit.Call("cache", "TCP", f"tcp://{cache_addr} INCR views:{item}")
        chain.calls.append(call)
        began = time.monotonic()
        try:
            reply = await cache.incr(cache_addr, f"views:{item}", cfg.timeout_s)
        except (OSError, TimeoutError, ValueError) as exc:
            call.error = f"{type(exc).__name__}: {exc}"
            return None
        finally:
            call.elapsed_ms = round((time.monotonic() - began) * 1000, 1)
        call.status, call.response = 200, {"instance": reply.instance, "value": reply.value}
        return reply.value

    async def index(request: web.Request) -> web.Response:
        return shopkit.answer(
            request,
            description="plait demo shop: frontend -> reviews, orders -> inventory, "
            "payment -> risk-assessment (invoice only)",
            usage="GET /checkout?item=book|mug|lamp|poster&qty=N&payment=card|invoice"
            "&customer=NAME",
            examples=[
                "/checkout?item=book&payment=invoice",
                "/checkout?item=mug&qty=2&payment=card",
                "/product/book",
            ],
        )

    async def checkout(request: web.Request) -> web.Response:
        query = request.query
        item = shopkit.get_str(query, "item", "book")
        qty = shopkit.get_int(query, "qty", 1)
        payment = shopkit.get_str(query, "payment", "card")
        customer = shopkit.get_str(query, "customer", "alice")
        if payment not in PAYMENT_METHODS:
            raise HttpError(400, f"'payment' must be one of {', '.join(PAYMENT_METHODS)}")
        chain = Chain(request)
        order_request = {"item": item, "qty": qty, "payment": payment, "customer": customer}
        reviews, order = await asyncio.gather(
            chain.call("reviews", "GET", f"{reviews_url}/reviews/{quote(item, safe='')}"),
            chain.call("orders", "POST", f"{orders_url}/orders", json_body=order_request),
        )
        if not order.ok:
            return chain.fail(order, "checkout failed")
        return chain.reply(
            200,
            checkout="confirmed",
            order_id=order.data.get("order_id"),
            amount=order.data.get("amount"),
            reviews_available=reviews.ok,
        )

    async def product(request: web.Request) -> web.Response:
        item = request.match_info["item"]
        chain = Chain(request)
        reviews, recommended, views = await asyncio.gather(
            chain.call("reviews", "GET", f"{reviews_url}/reviews/{quote(item, safe='')}"),
            recommendations.fetch(
                chain, request.app[RECOMMENDATIONS], recommendations_addr, item, cfg.timeout_s
            ),
            count_view(chain, item),
        )
        return chain.reply(
            200,
            item=item,
            reviews=reviews.data.get("reviews") if reviews.ok else None,
            recommended=recommended.data.get("recommended") if recommended.ok else None,
            views=views,
        )

    async def grpc_channel(app: web.Application) -> AsyncIterator[None]:
        async with recommendations.channel(recommendations_addr, cfg.env) as ch:
            app[RECOMMENDATIONS] = ch
            yield

    app = shopkit.make_app(
        cfg,
        [
            web.get("/", index),
            web.get("/checkout", checkout),
            web.get("/product/{item}", product),
        ],
    )
    app.cleanup_ctx.append(grpc_channel)
    return app


def main() -> None:
    shopkit.run(create_app)


if __name__ == "__main__":
    main()
