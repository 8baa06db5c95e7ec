"""Beckn `cancel` -> `on_cancel`, with the refund the refund terms give.

Before charging starts an order can be cancelled. What was paid is refunded
per the policy's refund terms (e.g. 85% when cancelled at least 4 h before the
slot; nothing after the last term), a hold is released the same way, the OCPI
reservation is cancelled at the CPO, the slot is freed and the token stops
working. Once charging started: stop it instead (50001).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from bridge.beckn.routes import register_action
from bridge.beckn.transport import BecknRequest
from bridge.journey.common import CancelNotPossible, JourneyDeps, apply, deps_of, load, reply
from bridge.journey.queue import enqueue
from bridge.mapping.settlement import cancellation_refund
from bridge.ocpi.models import AllowedType
from bridge.orders import Event, State
from bridge.store.orders import Order


async def handle_cancel(req: BecknRequest) -> None:
    deps = deps_of(req)
    now = req.received_at
    order = await load(deps, req, CancelNotPossible)
    if order.state in (State.ACTIVE, State.INTERRUPTED):
        raise CancelNotPossible("charging has started: send update stop-charging instead")
    _, order = await deps.orders.update(order.transaction_id, lambda o: cancel(deps, o, now))
    await settle_cancellation(deps, order, now)
    latest = await deps.orders.get(order.transaction_id)
    await reply(deps, req, latest or order, now)


def cancel(deps: JourneyDeps, o: Order, now: datetime) -> Order:
    return apply(o, Event.CANCEL, now, CancelNotPossible)


async def settle_cancellation(deps: JourneyDeps, order: Order, now: datetime) -> None:
    p = order.payment
    paid = Decimal(p.get("amount", "0")) if p.get("status") in ("PAID", "HELD") else Decimal(0)
    refund = Decimal(0)
    if paid and order.item:
        slot_start = datetime.fromisoformat(order.request.get("start") or now.isoformat())
        terms = deps.policy.terms(f"{order.item.cc}-{order.item.pid}", order.item.location_id)
        refund = cancellation_refund(paid, slot_start=slot_start, cancelled_at=now,
                                     terms=terms.refund_terms, currency=p.get("currency", "INR"))
        key = f"cancel:{order.id}"
        if p.get("status") == "PAID" and refund:
            await deps.gateway.refund(p["id"], refund, key=key)
        elif p.get("status") == "HELD":
            if paid - refund:
                await deps.gateway.capture(p["id"], paid - refund, key=key + ":capture")
            if refund:
                await deps.gateway.release(p["id"], refund, key=key + ":release")
    if order.item:
        await deps.orders.release_slot(order.item, order.id)
    if order.token_uid:
        await deps.ocpi.tokens.set_allowed("APP_USER", order.token_uid, AllowedType.NOT_ALLOWED, now)
    if order.reservation_id:
        await enqueue(deps.redis, "journey_cancel_reservation", order.transaction_id,
                      job_id=f"cancel-reservation:{order.id}")

    def record(o: Order) -> Order:
        o.settlement = {"key": f"cancel:{o.id}", "currency": p.get("currency", "INR"),
                        "final_amount": str(paid - refund), "paid": str(paid),
                        "refund": str(refund if p.get("status") == "PAID" else 0),
                        "release": str(refund if p.get("status") == "HELD" else 0),
                        "capture": str(paid - refund if p.get("status") == "HELD" else 0),
                        "top_up": "0",
                        "lines": [{"title": "Cancellation charge", "amount": str(paid - refund),
                                   "currency": p.get("currency", "INR"), "kind": "fee"}],
                        "explanation": [f"cancelled at {now.isoformat()}: refund {refund} of {paid}"]}
        return o

    await deps.orders.update(order.transaction_id, record)
    await deps.outbox.send(order.customer.get("phone", "-"), "info",
                           f"Order ORD-{order.id[:8]} cancelled. Refund: ₹{refund}.", order.id)


register_action("cancel", handle_cancel)
