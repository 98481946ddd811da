"""reviews: what readers say about an item.

``GET /reviews/ITEM``. Two versions run side by side for canary releases: v1 answers text
only; v2 (``SHOW_STARS=true``) adds star ratings and their average.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from . import shopkit

REVIEWS: dict[str, list[tuple[str, str, int]]] = {
    "book": [
        ("reader42", "A page-turner, finished it in one night.", 5),
        ("sam", "Good, if a little long in the middle.", 4),
    ],
    "mug": [("coffee-fan", "Keeps the coffee warm, survives the dishwasher.", 4)],
    "lamp": [
        ("night-owl", "Warm light, sturdy base.", 5),
        ("pat", "The switch feels cheap.", 2),
    ],
}


def create_app(env: Mapping[str, str] | None = None) -> web.Application:
    cfg = shopkit.Config.from_env("reviews", env)
    show_stars = cfg.env.get("SHOW_STARS", "false").strip().lower() in ("1", "true", "yes")

    async def reviews(request: web.Request) -> web.Response:
        item = request.match_info["item"]
        entries = REVIEWS.get(item, [])
        listed: list[shopkit.JSONDict] = []
        for reviewer, text, stars in entries:
            review: shopkit.JSONDict = {"reviewer": reviewer, "text": text}
            if show_stars:
                review["stars"] = stars
            listed.append(review)
        if not show_stars:
            return shopkit.answer(request, item=item, reviews=listed)
        rating = round(sum(s for _, _, s in entries) / len(entries), 1) if entries else None
        return shopkit.answer(request, item=item, reviews=listed, rating=rating)

    return shopkit.make_app(cfg, [web.get("/reviews/{item}", reviews)])


def main() -> None:
    shopkit.run(create_app)


if __name__ == "__main__":
    main()
