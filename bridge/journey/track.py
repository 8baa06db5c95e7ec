"""Beckn `track` -> `on_track` (guide examples 13, 15), and the PATCH stream (example 14).

on_track carries a tracking URL served by the bridge (`GET /track/{order_id}`:
JSON, or a small page for a browser). With a callback URL, the bridge also
PATCHes the session to that URL as the CPO's Session PATCHes arrive, at most
once per `journey.track_interval` (the worker's `journey_track_push`).

Wire shapes per profile:
    rc2     request `message.tracking {id, callbackUrl}`; answer `message.tracking`, a
            beckn:Tracking handle (also a TrackAction: id, url); PATCHes are
            ChargingSession bags
    guide   request `message.order` with `callback-url`; answer the order with
            `tracking-details` (examples 13, 15); PATCHes as example 14
    lts     request `message.tracking {contract.id, url, status}` (read at the edge);
            answer `message.tracking` {contract, status, url, trackingAttributes: the
            ChargingSession}; PATCHes as rc2's
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bridge.beckn.errors import SchemaError
from bridge.beckn.profiles import GUIDE, LTS, RC2
from bridge.beckn.recipients import tracking_refusal
from bridge.beckn.routes import register_action
from bridge.beckn.transport import BecknRequest
from bridge.journey import lts, wire
from bridge.journey.common import (
    JourneyDeps,
    NotApplicableNow,
    deps_of,
    load,
    order_message,
    profile_of,
    reply_effect,
)
from bridge.journey.rc2 import CTX_CORE
from bridge.orders import State
from bridge.store.effects import Effects
from bridge.store.orders import Order

TRACKABLE = {State.CONFIRMED, State.RESERVED, State.ACTIVE, State.INTERRUPTED, State.COMPLETED}
# beckn:Tracking.trackingStatus
TRACKING_STATUS = {State.CONFIRMED: "ACTIVE", State.RESERVED: "ACTIVE", State.ACTIVE: "ACTIVE",
                   State.INTERRUPTED: "ACTIVE", State.COMPLETED: "COMPLETED"}


def tracking_url(public_url: str, order: Order) -> str:
    return f"{public_url}/track/{order.id}"


def tracking_id(order: Order) -> str:
    return f"TRACK-{order.id[:12]}"


def render_rc2(order: Order, url: str) -> dict[str, Any]:
    """`message` of on_track (rc2): a Tracking handle, which is a TrackAction as well."""
    return {"tracking": {"@context": CTX_CORE, "@type": "beckn:Tracking", "id": tracking_id(order),
                         "url": url, "tl_method": "http/get",
                         "trackingStatus": TRACKING_STATUS.get(order.state, "DISABLED")}}


def guide_details(order: Order, url: str, interval: float, callback: str | None,
                  now: datetime) -> dict[str, Any]:
    """`tracking-details` of the guide's on_track (example 15): live updates every
    `interval` while charging (PATCHes to the callback URL when one was given)."""
    live: dict[str, Any] = {"update-frequency": f"PT{interval:g}S",
                            "next-update-at": (now + timedelta(seconds=interval)).isoformat()}
    if callback:
        live["callback-url"] = callback
    return {"tracking-details": {
        "beckn:id": tracking_id(order), "beckn:url": url,
        "beckn:status": wire.FULFILLMENT[order.state][1], "live-updates": live}}


def render_guide(deps: JourneyDeps, order: Order, now: datetime, url: str, interval: float,
                 callback: str | None) -> dict[str, Any]:
    """on_track (guide, example 15): the order with `tracking-details`."""
    return order_message(deps, order, now,
                         extra=guide_details(order, url, interval, callback, now))


Render = Callable[[JourneyDeps, Order, datetime, str, float, str | None], dict[str, Any]]
# on_track's message, per wire profile
RENDER: dict[str, Render] = {
    RC2: lambda _deps, order, _now, url, _interval, _callback: render_rc2(order, url),
    GUIDE: render_guide,
    LTS: lambda deps, order, now, url, _interval, _callback: lts.render_tracking(
        order, now, deps.settings.beckn_subscriber_id, url),
}


async def handle_track(req: BecknRequest) -> None:
    deps = deps_of(req)
    now = req.received_at
    callback = wire.parse_track(req.body)
    order = await load(deps, req, NotApplicableNow)
    if order.state not in TRACKABLE:
        raise NotApplicableNow(f"order is {order.state.value}: nothing to track yet")
    if callback:
        refusal = tracking_refusal(callback, req.context.bap_uri, req.subscriber,
                                   deps.settings.beckn_callback_allow)
        if refusal:  # the PATCHes go only where the BAP's messages may go (SSRF)
            raise SchemaError(refusal, {"field": "callback-url"})
    interval = deps.settings.journey_track_interval

    def subscribe(o: Order) -> Order:
        if callback:
            o.track = {"callback": callback, "interval": interval,
                       "last_sent": o.track.get("last_sent")}
        return o

    def answered(_before: Order, after: Order) -> Effects:
        # the subscription and its on_track in one step
        url = tracking_url(deps.settings.public_url, after)
        message = RENDER[profile_of(deps, after)](deps, after, now, url, interval, callback)
        fx = Effects()
        reply_effect(fx, deps, req, after, now, message=message)
        return fx

    await deps.orders.update(order.transaction_id, subscribe, effects=answered)


register_action("track", handle_track)
