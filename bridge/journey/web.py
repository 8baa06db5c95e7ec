"""Pages the bridge serves to drivers: the sandbox payment page and the tracking page.

    GET  /pay/{payment_id}    the payment page (sandbox gateway)
    POST /pay/{payment_id}    pay / authorise the hold -> unsolicited on_status PAID (example 08)
    GET  /track/{order_id}    the order's live state: JSON, or HTML for a browser
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

import orjson
from aiohttp import web

from bridge.journey.common import JourneyDeps, NotApplicableNow, apply, order_message, unsolicited
from bridge.journey.wire import FULFILLMENT
from bridge.orders import Event, State, TransitionError
from bridge.payments import PaymentError, payment_page
from bridge.store.orders import Order

JOURNEY = web.AppKey("journey", JourneyDeps)


async def pay_page(request: web.Request) -> web.Response:
    deps = request.app[JOURNEY]
    state = await deps.gateway.get(request.match_info["payment_id"])
    if state is None:
        raise web.HTTPNotFound(text="unknown payment")
    order = await deps.orders.by_order_id(state.order_id)
    summary = {}
    if order and order.item:
        summary = {"Charger": order.item.evse_id or order.item.evse_uid,
                   "Where": order.item.location_name or "",
                   "Energy (estimate)": f"{(order.quote or {}).get('energy_kwh', '?')} kWh"}
    return web.Response(text=payment_page(state, summary), content_type="text/html")


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
            try:
                o = apply(o, Event.PAID, now, NotApplicableNow, payment=state.payment_id)
            except NotApplicableNow:
                pass  # e.g. paid after a cancel: recorded, refunded by the cancel's terms
            o.payment.update(status=state.status, paid_at=now.isoformat())
            return o

        _, order = await deps.orders.update(order.transaction_id, paid)
        await unsolicited(deps, order, "on_status", now)
        await deps.outbox.send(order.customer.get("phone", "-"), "payment",
                               f"Payment received: ₹{state.amount} for ORD-{order.id[:8]}.",
                               order.id)
    elif order.settlement and order.settlement.get("top_up_payment_id") == state.payment_id:
        def topped(o: Order) -> Order:
            if o.settlement is not None:
                o.settlement["top_up_status"] = "PAID"
            return o

        await deps.orders.update(order.transaction_id, topped)
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"payment_id": state.payment_id, "status": state.status,
                                  "amount": str(state.amount)})
    return web.Response(text=payment_page(state, {}), content_type="text/html")


async def track_page(request: web.Request) -> web.Response:
    deps = request.app[JOURNEY]
    order = await deps.orders.by_order_id(request.match_info["order_id"])
    if order is None:
        raise web.HTTPNotFound(text="unknown order")
    now = datetime.now(UTC)
    # The tracking URL is a capability (an unguessable order id) that a driver may share:
    # it shows the charge, not the driver's billing details.
    public = order.model_copy(update={"customer": {}})
    body = order_message(deps, public, now)["order"]
    if "text/html" in request.headers.get("Accept", "") and "json" not in request.query:
        s = order.session
        rows = {"Status": FULFILLMENT[order.state][2], "Energy": f"{s.get('kwh', '0')} kWh",
                "Cost so far": f"₹{s.get('cost', '0')}", "Charger": order.item.evse_id
                if order.item else ""}
        table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                        for k, v in rows.items())
        refresh = "<meta http-equiv='refresh' content='5'>" if order.state in (
            State.ACTIVE, State.INTERRUPTED) else ""
        return web.Response(text=f"<!doctype html><html><head><meta charset='utf-8'>{refresh}"
                                 f"<title>Charging ORD-{order.id[:8]}</title></head><body>"
                                 f"<h1>ORD-{order.id[:8]}</h1><table>{table}</table></body></html>",
                            content_type="text/html")
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def routes() -> list[web.RouteDef]:
    return [web.get("/pay/{payment_id}", pay_page), web.post("/pay/{payment_id}", pay),
            web.get("/track/{order_id}", track_page)]


__all__ = ["TransitionError", "routes"]
