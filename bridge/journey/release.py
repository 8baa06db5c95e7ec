"""Ending a booking before any charge: money back by the refund terms, the charger freed.

Shared by `cancel` (the driver cancels) and the no-show timer (the car never
came): the share of what was paid that the refund terms give back is refunded
(or, for a hold, released, the rest captured) under a key of the order, the
slot and the token are released and the OCPI reservation is cancelled.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from bridge.crashpoints import crash_point
from bridge.journey.common import JourneyDeps
from bridge.journey.queue import enqueue
from bridge.mapping.settlement import cancellation_refund
from bridge.ocpi.models import AllowedType
from bridge.store.orders import Order


async def release_booking(deps: JourneyDeps, order: Order, now: datetime, *, key: str,
                          title: str, by_terms: bool = True,
                          token_state: AllowedType = AllowedType.NOT_ALLOWED) -> Decimal:
    """Return the refund given (or released). `by_terms=False` gives everything back."""
    p = order.payment
    paid = Decimal(p.get("amount", "0")) if p.get("status") in ("PAID", "HELD") else Decimal(0)
    refund = paid
    if by_terms and paid and order.item:
        terms = deps.policy.terms(f"{order.item.cc}-{order.item.pid}", order.item.location_id)
        refund = cancellation_refund(
            paid, slot_start=datetime.fromisoformat(order.request.get("start") or now.isoformat()),
            cancelled_at=now, terms=terms.refund_terms, currency=p.get("currency", "INR"))
    held = p.get("status") == "HELD"
    if p.get("status") == "PAID" and refund:
        await deps.gateway.refund(p["id"], refund, key=key)
    elif held:
        if paid - refund:
            await deps.gateway.capture(p["id"], paid - refund, key=f"{key}:capture")
        if refund:
            await deps.gateway.release(p["id"], refund, key=f"{key}:release")
    crash_point("release.money_moved")

    def record(o: Order) -> Order:
        o.settlement = {"key": key, "currency": p.get("currency", "INR"),
                        "final_amount": str(paid - refund), "paid": str(paid),
                        "refund": str(0 if held else refund), "release": str(refund if held else 0),
                        "capture": str(paid - refund if held else 0), "top_up": "0",
                        "lines": [{"title": title, "amount": str(paid - refund),
                                   "currency": p.get("currency", "INR"), "kind": "fee"}],
                        "explanation": [f"{title} at {now.isoformat()}: {refund} of {paid} back"]}
        return o

    await deps.orders.update(order.transaction_id, record)
    if order.item:
        await deps.orders.release_slot(order.item, order.id)
    if order.token_uid:
        await deps.ocpi.tokens.set_allowed("APP_USER", order.token_uid, token_state, now)
    if order.reservation_id:
        await enqueue(deps.redis, "journey_cancel_reservation", order.transaction_id,
                      job_id=f"cancel-reservation:{order.id}")
    return refund
