"""Beckn `rating` -> `on_rating`: the rating is stored on the order."""

from __future__ import annotations

from typing import Any

from bridge.beckn.callbacks import callback_context, enqueue_callback
from bridge.beckn.errors import SchemaError
from bridge.beckn.routes import register_action
from bridge.beckn.transport import BecknRequest
from bridge.journey.common import NotApplicableNow, deps_of, load
from bridge.store.orders import Order


def parse_rating(body: dict[str, Any]) -> dict[str, Any]:
    message = body.get("message") or {}
    ratings = message.get("ratings") if isinstance(message, dict) else None
    if isinstance(ratings, list) and ratings and isinstance(ratings[0], dict):
        r = ratings[0]
    elif isinstance(message, dict) and isinstance(message.get("rating"), dict):
        r = message["rating"]
    else:
        raise SchemaError("message.ratings: one rating is required", {"field": "message.ratings"})
    value = r.get("value", r.get("rating_value"))
    try:
        score = float(str(value))
    except (TypeError, ValueError) as exc:
        raise SchemaError("rating value: a number from 1 to 5", {"field": "message.ratings[0].value"}
                          ) from exc
    if not 1 <= score <= 5:
        raise SchemaError("rating value: a number from 1 to 5", {"field": "message.ratings[0].value"})
    return {"value": score, "category": r.get("rating_category", r.get("category", "ORDER")),
            "feedback": r.get("feedback")}


async def handle_rating(req: BecknRequest) -> None:
    deps = deps_of(req)
    rating = parse_rating(req.body)
    order = await load(deps, req, NotApplicableNow)

    def store(o: Order) -> Order:
        o.rating = {**rating, "at": req.received_at.isoformat()}
        return o

    await deps.orders.update(order.transaction_id, store)
    ctx = callback_context(req.context, "rating", deps.settings, req.received_at)
    await enqueue_callback(deps.redis, deps.settings, ctx,
                           message={"feedback_ack": True, "rating_ack": True,
                                    "order_id": order.id})


register_action("rating", handle_rating)
