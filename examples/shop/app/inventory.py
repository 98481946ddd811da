"""inventory: in-memory stock.

``POST /reserve {"item", "qty"}`` takes stock (404 unknown item, 409 not enough),
``POST /release {"item", "qty"}`` gives it back, ``GET /stock`` lists it.
The stock of each item is ``DEFAULT_STOCK`` unless ``STOCK`` says otherwise
(``STOCK="book=5,lamp=0"``).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from . import shopkit
from .shopkit import ConfigError, HttpError

PRICES = {"book": 12.5, "mug": 8.0, "lamp": 39.9, "poster": 5.0}
DEFAULT_STOCK = 100_000


def parse_stock(spec: str) -> dict[str, int]:
    stock = dict.fromkeys(PRICES, DEFAULT_STOCK)
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, count = part.partition("=")
        if not sep or name.strip() not in PRICES or not count.strip().isdigit():
            raise ConfigError(f"STOCK entry {part!r}: expected ITEM=COUNT, ITEM in {list(PRICES)}")
        stock[name.strip()] = int(count)
    return stock


def create_app(env: Mapping[str, str] | None = None) -> web.Application:
    cfg = shopkit.Config.from_env("inventory", env)
    stock = parse_stock(cfg.env.get("STOCK", ""))

    def item_qty(body: shopkit.JSONDict) -> tuple[str, int]:
        item = shopkit.get_str(body, "item")
        if item not in stock:
            raise HttpError(404, f"unknown item {item!r}")
        return item, shopkit.get_int(body, "qty")

    async def reserve(request: web.Request) -> web.Response:
        item, qty = item_qty(await shopkit.read_json(request))
        if stock[item] < qty:
            raise HttpError(409, f"not enough {item!r} in stock: {stock[item]} left, {qty} asked")
        stock[item] -= qty
        return shopkit.answer(
            request,
            item=item,
            qty=qty,
            unit_price=PRICES[item],
            reserved=True,
            remaining=stock[item],
        )

    async def release(request: web.Request) -> web.Response:
        item, qty = item_qty(await shopkit.read_json(request))
        stock[item] += qty
        return shopkit.answer(request, item=item, released=qty, remaining=stock[item])

    async def list_stock(request: web.Request) -> web.Response:
        items = {name: {"stock": stock[name], "unit_price": PRICES[name]} for name in PRICES}
        return shopkit.answer(request, items=items)

    return shopkit.make_app(
        cfg,
        [
            web.post("/reserve", reserve),
            web.post("/release", release),
            web.get("/stock", list_stock),
        ],
    )


def main() -> None:
    shopkit.run(create_app)


if __name__ == "__main__":
    main()
