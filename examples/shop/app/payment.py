"""payment: charges an order.

``POST /charge {"order_id", "customer", "item", "amount", "method"}``: a card is approved
at once; an invoice is approved only after ``risk-assessment`` (``POST /assess``) finds the
risk acceptable (402 if it is not).

Capacity: ``PAYMENT_WORKERS`` (default 32) charges are served at once, card and invoice
alike; the rest wait in an unbounded FIFO queue, like the requests of a thread-pool server
(see :mod:`app.pool`). That is the shared resource of the outage story: invoice charges
stuck on a slow risk assessment hold the workers, card charges queue behind them, and the
queue and the process's memory grow. ``GET /stats`` shows workers, queue and memory.

When the risk assessment gives no usable answer - no answer at all, a 5xx (the sidecar's
503 overflow or 504 timeout), or a 429 (rate limited) - invoice payment is unavailable
right now: the charge fails at once with 502 and says so (any other failed assessment is
a plain 502), card payment is unaffected. It is 502 rather than 503 on purpose: Istio's default retry policy (on the caller's sidecar)
retries 503, which would multiply the load exactly when a dependency is overloaded, and a
429 is not passed on because the customer asked for nothing too often.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from . import shopkit
from .pool import WorkerPool
from .shopkit import Call, Chain, HttpError

DEFAULT_WORKERS = 32


def risk_unavailable(call: Call) -> bool:
    """The assessment failed for reasons of its own (not a bad request of ours)."""
    return call.status is None or call.status == 429 or call.status >= 500


def create_app(env: Mapping[str, str] | None = None) -> web.Application:
    cfg = shopkit.Config.from_env("payment", env)
    risk_url = cfg.upstream("RISK_ASSESSMENT_URL", "http://risk-assessment:8080")
    pool = WorkerPool(shopkit.env_int(cfg.env, "PAYMENT_WORKERS", DEFAULT_WORKERS, minimum=1))

    async def charge(request: web.Request) -> web.Response:
        async with pool.worker() as waited_s:
            return await _charge(request, queued_ms=round(waited_s * 1000, 1))

    async def _charge(request: web.Request, queued_ms: float) -> web.Response:
        body = await shopkit.read_json(request)
        method = shopkit.get_str(body, "method")
        customer = shopkit.get_str(body, "customer")
        amount = shopkit.get_number(body, "amount")
        order = {"order_id": body.get("order_id"), "method": method, "amount": amount}
        order["queued_ms"] = queued_ms
        chain = Chain(request)
        if method == "card":
            return chain.reply(200, approved=True, **order)
        if method != "invoice":
            raise HttpError(400, f"unknown payment method {method!r}")

        assessment = {"customer": customer, "item": body.get("item", ""), "amount": amount}
        risk = await chain.call(
            "risk-assessment", "POST", f"{risk_url}/assess", json_body=assessment
        )
        if not risk.ok:
            why = "unavailable right now (pay by card or retry later)"
            if not risk_unavailable(risk):  # our request was refused: a bug, not transient
                why = "failed"
            error = f"invoice payment {why}: risk assessment failed: {risk.error}"
            return chain.reply(502, approved=False, error=error, **order)
        score, threshold = risk.data.get("score"), risk.data.get("threshold")
        if risk.data.get("acceptable") is not True:
            error = f"invoice declined: risk score {score} is not below {threshold}"
            return chain.reply(402, approved=False, risk_score=score, error=error, **order)
        return chain.reply(200, approved=True, risk_score=score, **order)

    async def stats(request: web.Request) -> web.Response:
        return shopkit.answer(request, **pool.stats())

    return shopkit.make_app(cfg, [web.post("/charge", charge), web.get("/stats", stats)])


def main() -> None:
    shopkit.run(create_app)


if __name__ == "__main__":
    main()
