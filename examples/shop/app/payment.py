"""payment: charges an order.

``POST /charge {"order_id", "customer", "item", "amount", "method"}``: a card is approved
at once; an invoice is approved only after ``risk-assessment`` (``POST /assess``) finds the
risk acceptable (402 if it is not). If the risk assessment fails, invoice payment is
unavailable (502) - the outage of the story - while card payment keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from . import shopkit
from .shopkit import Chain, HttpError


def create_app(env: Mapping[str, str] | None = None) -> web.Application:
    cfg = shopkit.Config.from_env("payment", env)
    risk_url = cfg.upstream("RISK_ASSESSMENT_URL", "http://risk-assessment:8080")

    async def charge(request: web.Request) -> web.Response:
        body = await shopkit.read_json(request)
        method = shopkit.get_str(body, "method")
        customer = shopkit.get_str(body, "customer")
        amount = shopkit.get_number(body, "amount")
        order = {"order_id": body.get("order_id"), "method": method, "amount": amount}
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
            return chain.fail(risk, "invoice payment unavailable: risk assessment failed")
        score, threshold = risk.data.get("score"), risk.data.get("threshold")
        if risk.data.get("acceptable") is not True:
            error = f"invoice declined: risk score {score} is not below {threshold}"
            return chain.reply(402, approved=False, risk_score=score, error=error, **order)
        return chain.reply(200, approved=True, risk_score=score, **order)

    return shopkit.make_app(cfg, [web.post("/charge", charge)])


def main() -> None:
    shopkit.run(create_app)


if __name__ == "__main__":
    main()
