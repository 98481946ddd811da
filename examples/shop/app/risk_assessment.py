"""risk-assessment: may this customer pay by invoice?

``POST /assess {"customer", "item", "amount"}`` answers a score from 0 to 99 that depends
only on customer and item, and whether it is below ``RISK_THRESHOLD`` (default 70).

The slow dependency of the outage story is modelled as a saturated service: each
assessment holds one of ``RISK_WORKERS`` workers for ``RISK_DELAY_MS`` (default 0: no
delay); requests beyond the workers wait in an unbounded FIFO queue (see
:mod:`app.pool`). Its capacity is ``RISK_WORKERS / RISK_DELAY_MS`` assessments per
second; above that its latency grows with its queue, so it gets slower the more it is
asked. ``RISK_WORKERS=0`` (the default) means no limit: every answer takes just
``RISK_DELAY_MS``. ``GET /stats`` shows the queue.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping

from aiohttp import web

from . import shopkit
from .pool import WorkerPool


def risk_score(customer: str, item: str) -> int:
    digest = hashlib.sha256(f"{customer.lower()}|{item.lower()}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def create_app(env: Mapping[str, str] | None = None) -> web.Application:
    cfg = shopkit.Config.from_env("risk-assessment", env)
    delay_ms = shopkit.env_int(cfg.env, "RISK_DELAY_MS", 0)
    threshold = shopkit.env_int(cfg.env, "RISK_THRESHOLD", 70)
    pool = WorkerPool(shopkit.env_int(cfg.env, "RISK_WORKERS", 0))

    async def assess(request: web.Request) -> web.Response:
        body = await shopkit.read_json(request)
        customer = shopkit.get_str(body, "customer")
        item = body.get("item", "")
        if not isinstance(item, str):
            raise shopkit.HttpError(400, "'item' must be a string")
        async with pool.worker() as waited_s:
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
            queued_ms=round(waited_s * 1000, 1),
        )

    async def stats(request: web.Request) -> web.Response:
        return shopkit.answer(request, **pool.stats())

    return shopkit.make_app(cfg, [web.post("/assess", assess), web.get("/stats", stats)])


def main() -> None:
    shopkit.run(create_app)


if __name__ == "__main__":
    main()
