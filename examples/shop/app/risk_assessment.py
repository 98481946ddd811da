"""risk-assessment: may this customer pay by invoice?

``POST /assess {"customer", "item", "amount"}`` answers a score from 0 to 99 that depends
only on customer and item, and whether it is below ``RISK_THRESHOLD`` (default 70).
``RISK_DELAY_MS`` (default 0) delays every answer: the slow dependency of the outage story.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping

from aiohttp import web

from . import shopkit


def risk_score(customer: str, item: str) -> int:
    digest = hashlib.sha256(f"{customer.lower()}|{item.lower()}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def create_app(env: Mapping[str, str] | None = None) -> web.Application:
    cfg = shopkit.Config.from_env("risk-assessment", env)
    delay_ms = shopkit.env_int(cfg.env, "RISK_DELAY_MS", 0)
    threshold = shopkit.env_int(cfg.env, "RISK_THRESHOLD", 70)

    async def assess(request: web.Request) -> web.Response:
        body = await shopkit.read_json(request)
        customer = shopkit.get_str(body, "customer")
        item = body.get("item", "")
        if not isinstance(item, str):
            raise shopkit.HttpError(400, "'item' must be a string")
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        score = risk_score(customer, item)
        return shopkit.answer(
            request,
            customer=customer,
            item=item,
            score=score,
            threshold=threshold,
            acceptable=score < threshold,
            delay_ms=delay_ms,
        )

    return shopkit.make_app(cfg, [web.post("/assess", assess)])


def main() -> None:
    shopkit.run(create_app)


if __name__ == "__main__":
    main()
