"""Beckn `rating` -> `on_rating`: the rating is stored on the order.

Requests in every dialect: rc2 `message.ratings[] {id, ratingValue, bestRating,
worstRating, category, feedback{comments, tags}}`, the guide's `value` /
`rating_value`, or a single `message.rating`. The answer per profile:
    rc2     `{received: true}` (the schema's on_rating message)
    guide   `{feedback_ack, rating_ack, order_id}`
    lts     `/rate` with `ratingInputs[]` (read at the edge); on_rate `{ratings: [the
            rating received, a RatingInput on the contract]}`
"""

from __future__ import annotations

from typing import Any

from bridge.beckn.errors import SchemaError
from bridge.beckn.profiles import GUIDE, LTS, RC2
from bridge.beckn.routes import register_action
from bridge.beckn.transport import BecknRequest
from bridge.journey import lts
from bridge.journey.common import (
    NotApplicableNow,
    deps_of,
    load,
    previewing,
    profile_of,
    reply,
    reply_effect,
)
from bridge.store.effects import Effects
from bridge.store.orders import Order

FIELD = "message.ratings[0].ratingValue"


def _score(r: dict[str, Any]) -> float:
    """The rating on a 1-5 scale (rc2 ratings may state their own scale)."""
    value = r.get("ratingValue", r.get("value", r.get("rating_value")))
    try:
        score = float(str(value))
        best = float(str(r.get("bestRating", 5)))
        worst = float(str(r.get("worstRating", 1)))
    except (TypeError, ValueError) as exc:
        raise SchemaError("rating value: a number from 1 to 5", {"field": FIELD}) from exc
    if best <= worst or not worst <= score <= best:
        raise SchemaError(f"rating value: a number from {worst:g} to {best:g}", {"field": FIELD})
    return round(1 + 4 * (score - worst) / (best - worst), 2) if (worst, best) != (1, 5) else score


def parse_rating(body: dict[str, Any]) -> dict[str, Any]:
    message = body.get("message") or {}
    ratings = message.get("ratings") if isinstance(message, dict) else None
    if isinstance(ratings, list) and ratings and isinstance(ratings[0], dict):
        r = ratings[0]
    elif isinstance(message, dict) and isinstance(message.get("rating"), dict):
        r = message["rating"]
    else:
        raise SchemaError("message.ratings: one rating is required", {"field": "message.ratings"})
    feedback = r.get("feedback")
    if isinstance(feedback, dict):  # rc2 RatingInput.feedback {comments, tags}
        feedback = {k: feedback[k] for k in ("comments", "tags") if k in feedback}
    return {"value": _score(r), "category": r.get("category", r.get("rating_category", "ORDER")),
            "feedback": feedback}


def render_rc2(order: Order) -> dict[str, Any]:
    return {"received": True}


def render_guide(order: Order) -> dict[str, Any]:
    return {"feedback_ack": True, "rating_ack": True, "order_id": order.id}


RENDER = {RC2: render_rc2, GUIDE: render_guide,  # on_rating's message, per wire profile
          LTS: lts.render_rating}


def render(profile: str, order: Order) -> dict[str, Any]:
    return RENDER[profile](order)


async def handle_rating(req: BecknRequest) -> None:
    deps = deps_of(req)
    rating = parse_rating(req.body)
    order = await load(deps, req, NotApplicableNow)
    if previewing(req):  # LTS `context.try`: the rating as it would be kept, not kept
        shown = order.model_copy(update={"rating": {**rating, "at": req.received_at.isoformat()}})
        await reply(deps, req, shown, req.received_at,
                    message=render(profile_of(deps, shown), shown))
        return

    def store(o: Order) -> Order:
        o.rating = {**rating, "at": req.received_at.isoformat()}
        return o

    def answered(_before: Order, after: Order) -> Effects:
        fx = Effects()
        reply_effect(fx, deps, req, after, req.received_at,
                     message=render(profile_of(deps, after), after))
        return fx

    await deps.orders.update(order.transaction_id, store, effects=answered)


register_action("rating", handle_rating)
