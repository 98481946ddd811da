"""orders: places an order.

``POST /orders {"item", "qty", "payment", "customer"}`` reserves the stock at
``inventory`` (``POST /reserve``), then charges at ``payment`` (``POST /charge``). If the
charge fails the reservation is released (``POST /release``) and the order fails with the
partial chain.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from aiohttp import web

from . import shopkit
from .shopkit import Chain


def create_app(env: Mapping[str, str] | None = None) -> web.Application:
    cfg = shopkit.Config.from_env("orders", env)
    inventory_url = cfg.upstream("INVENTORY_URL", "http://inventory:8080")
    payment_url = cfg.upstream("PAYMENT_URL", "http://payment:8080")
    numbers = itertools.count(1)

    async def create_order(request: web.Request) -> web.Response:
        body = await shopkit.read_json(request)
        item = shopkit.get_str(body, "item")
        qty = shopkit.get_int(body, "qty")
        method = shopkit.get_str(body, "payment")
        customer = shopkit.get_str(body, "customer")
        order_id = f"{cfg.instance}-{next(numbers)}"
        stock = {"item": item, "qty": qty, "order_id": order_id}

        chain = Chain(request)
        reserve = await chain.call("inventory", "POST", f"{inventory_url}/reserve", json_body=stock)
        if not reserve.ok:
            return chain.fail(reserve, "stock reservation failed")
        unit_price = reserve.data.get("unit_price")
        if not isinstance(unit_price, int | float):
            return chain.reply(502, error="inventory answered without a unit_price")
        amount = round(unit_price * qty, 2)

        charge_request = {
            "order_id": order_id,
            "customer": customer,
            "item": item,
            "amount": amount,
            "method": method,
        }
        charge = await chain.call(
            "payment", "POST", f"{payment_url}/charge", json_body=charge_request
        )
        if not charge.ok:
            await chain.call("inventory", "POST", f"{inventory_url}/release", json_body=stock)
            return chain.fail(charge, "payment failed")
        return chain.reply(
            201,
            order_id=order_id,
            status="confirmed",
            item=item,
            qty=qty,
            amount=amount,
            payment=method,
        )

    return shopkit.make_app(cfg, [web.post("/orders", create_order)])


def main() -> None:
    shopkit.run(create_app)


if __name__ == "__main__":
    main()
