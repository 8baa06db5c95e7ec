"""Beckn `track` -> `on_track` (guide examples 13, 15), and the PATCH stream (example 14).

on_track carries a tracking URL served by the bridge (`GET /track/{order_id}`:
JSON, or a small page for a browser). With a `callback-url`, the bridge also
PATCHes the session to that URL as the CPO's Session PATCHes arrive, at most
once per `journey.track_interval` (the worker's `journey_track_push`).
"""

from __future__ import annotations

from bridge.beckn.routes import register_action
from bridge.beckn.transport import BecknRequest
from bridge.journey import wire
from bridge.journey.common import NotApplicableNow, deps_of, load, reply
from bridge.orders import State
from bridge.store.orders import Order

TRACKABLE = {State.CONFIRMED, State.RESERVED, State.ACTIVE, State.INTERRUPTED, State.COMPLETED}


def tracking_url(public_url: str, order: Order) -> str:
    return f"{public_url}/track/{order.id}"


async def handle_track(req: BecknRequest) -> None:
    deps = deps_of(req)
    now = req.received_at
    callback = wire.parse_track(req.body)
    order = await load(deps, req, NotApplicableNow)
    if order.state not in TRACKABLE:
        raise NotApplicableNow(f"order is {order.state.value}: nothing to track yet")
    interval = deps.settings.journey_track_interval

    def subscribe(o: Order) -> Order:
        if callback:
            o.track = {"callback": callback, "interval": interval,
                       "last_sent": o.track.get("last_sent")}
        return o

    _, order = await deps.orders.update(order.transaction_id, subscribe)
    extra = {"tracking-details": {
        "beckn:id": f"TRACK-{order.id[:12]}",
        "beckn:url": tracking_url(deps.settings.public_url, order),
        "beckn:status": wire.FULFILLMENT[order.state][1],
        "live-updates": {"update-frequency": f"PT{interval:g}S",
                         "callback-url": callback} if callback else None,
    }}
    await reply(deps, req, order, now, extra=extra)


register_action("track", handle_track)
