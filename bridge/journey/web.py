"""Pages the bridge serves to drivers: the sandbox payment page and the tracking page.

    GET  /pay/{payment_id}    the payment / top-up page (sandbox gateway), HTML
    POST /pay/{payment_id}    pay / authorise the hold -> unsolicited on_status PAID (example 08);
                              JSON for `Accept: application/json`, else 303 to the page
    GET  /track/{order_id}    the order's live state: the Beckn order as JSON; HTML for a
                              browser; `?live=1` the figures the page's script refreshes

The pages are rendered by bridge.journey.pages (pure); here they are loaded and
answered. Language: `?lang=en|hi`, else `Accept-Language` (bridge.journey.strings).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import orjson
from aiohttp import web

from bridge.journey import pages
from bridge.journey.common import (
    JourneyDeps,
    NotApplicableNow,
    apply,
    order_message,
    tell_effect,
    unsolicited_effect,
)
from bridge.journey.strings import choose
from bridge.ocpi.models import CDR
from bridge.orders import Event, TransitionError
from bridge.payments import PaymentError
from bridge.store.effects import Effects
from bridge.store.orders import Order

JOURNEY = web.AppKey("journey", JourneyDeps)


def _lang(request: web.Request) -> str:
    return choose(request.query.get("lang"), request.headers.get("Accept-Language"))


async def _billed_cdr(deps: JourneyDeps, order: Order | None) -> CDR | None:
    """The CDR the order was billed on: what was delivered is read from it."""
    if order is None or order.item is None or not order.cdr_id:
        return None
    stored = await deps.ocpi.store.get("cdrs", order.item.cc, order.item.pid, order.cdr_id)
    if stored is None:
        return None
    try:
        return CDR.model_validate(stored.data)
    except ValueError:
        return None


def _html(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/html", charset="utf-8",
                        headers=pages.HEADERS)


async def pay_page(request: web.Request) -> web.Response:
    deps = request.app[JOURNEY]
    state = await deps.gateway.get(request.match_info["payment_id"])
    if state is None:
        raise web.HTTPNotFound(text="unknown payment")
    order = await deps.orders.by_order_id(state.order_id)
    return _html(pages.payment_page(state, order, datetime.now(UTC), _lang(request),
                                    cdr=await _billed_cdr(deps, order)))


async def pay(request: web.Request) -> web.Response:
    deps = request.app[JOURNEY]
    now = datetime.now(UTC)
    try:
        state = await deps.gateway.pay(request.match_info["payment_id"])
    except PaymentError as exc:
        raise web.HTTPNotFound(text=str(exc)) from exc
    order = await deps.orders.by_order_id(state.order_id)
    if order is None:
        raise web.HTTPNotFound(text="unknown order")
    if order.payment.get("id") == state.payment_id and order.payment.get("status") != state.status:
        def paid(o: Order) -> Order:
            if o.payment.get("status") == state.status:
                raise AlreadyRecorded(state.payment_id)  # a second press, recorded meanwhile
            try:
                o = apply(o, Event.PAID, now, NotApplicableNow, payment=state.payment_id)
            except NotApplicableNow:
                pass  # e.g. paid after a cancel: recorded, refunded by the cancel's terms
            o.payment.update(status=state.status, paid_at=now.isoformat())
            return o

        def told(_before: Order, after: Order) -> Effects:
            # on_status PAID (example 08) and the receipt, with the payment's record: a
            # serve killed after the gateway took the money is repaired by pressing Pay
            # again (the gateway answers PAID, the order is updated and told once).
            fx = Effects()
            unsolicited_effect(fx, deps, after, "on_status", now)
            tell_effect(fx, after, "payment",
                        f"Payment received: ₹{state.amount} for ORD-{after.id[:8]}.")
            return fx

        with contextlib.suppress(AlreadyRecorded):
            _, order = await deps.orders.update(order.transaction_id, paid, effects=told)
    elif order.settlement and order.settlement.get("top_up_payment_id") == state.payment_id:
        def topped(o: Order) -> Order:
            if o.settlement is not None:
                o.settlement["top_up_status"] = "PAID"
            return o

        await deps.orders.update(order.transaction_id, topped)
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"payment_id": state.payment_id, "status": state.status,
                                  "amount": str(state.amount)})
    # Post/redirect/get: reloading the page after paying does not post again.
    raise web.HTTPSeeOther(f"?lang={_lang(request)}")  # relative: right behind a path prefix


async def track_page(request: web.Request) -> web.Response:
    deps = request.app[JOURNEY]
    order = await deps.orders.by_order_id(request.match_info["order_id"])
    if order is None:
        raise web.HTTPNotFound(text="unknown order")
    now = datetime.now(UTC)
    # The tracking URL is a capability (an unguessable order id) that a driver may share:
    # it shows the charge, not the driver's billing details.
    public = order.model_copy(update={"customer": {}})
    if "live" in request.query:
        return web.json_response(pages.track_live(public, now, _lang(request)),
                                 headers={"Cache-Control": "no-store"})
    if "text/html" in request.headers.get("Accept", "") and "json" not in request.query:
        return _html(pages.track_page(public, now, _lang(request),
                                      cdr=await _billed_cdr(deps, order)))
    # the order as its BAP reads it in on_* (the draft's Order, the LTS's Contract)
    body = next(iter(order_message(deps, public, now).values()))
    return web.Response(body=orjson.dumps(body), content_type="application/json")


class AlreadyRecorded(Exception):
    pass


def routes() -> list[web.RouteDef]:
    return [web.get("/pay/{payment_id}", pay_page), web.post("/pay/{payment_id}", pay),
            web.get("/track/{order_id}", track_page)]


__all__ = ["TransitionError", "routes"]
