"""Beckn `confirm` -> `on_confirm` (guide examples 09, 10).

The payment must be in place (paid, or the hold authorised; postpaid needs
nothing). A walk-in becomes CONFIRMED; a future slot is taken atomically in
the slot calendar (two BAPs confirming one slot: exactly one wins) and becomes
RESERVED, with OCPI RESERVE_NOW sent to the CPO shortly before the slot and a
no-show timer for the end of the grace period. The order's token is allowed to
charge from now on and pushed to the CPO. The confirmation, its jobs and
on_confirm are written in one atomic step.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bridge.beckn.routes import register_action
from bridge.beckn.transport import BecknRequest
from bridge.journey.common import (
    NotApplicableNow,
    PaymentPending,
    Unavailable,
    apply,
    deps_of,
    load,
    reply_effect,
)
from bridge.journey.queue import job_effect
from bridge.orders import PRE_CONFIRM, Event
from bridge.store.effects import Effects
from bridge.store.orders import Order

PAID = {"PREPAID": "PAID", "HOLD": "HELD"}


def grace(minutes: int) -> timedelta:
    """How long a reserved charger waits for the car (policy; at least 5 minutes)."""
    return timedelta(minutes=max(minutes, 5))


async def handle_confirm(req: BecknRequest) -> None:
    deps = deps_of(req)
    now = req.received_at
    order = await load(deps, req, NotApplicableNow)
    if order.state not in PRE_CONFIRM or order.item is None:
        raise NotApplicableNow(f"order is {order.state.value}: confirm is not allowed now")
    mode = order.payment.get("mode", deps.settings.journey_payment_mode)
    if mode in PAID and order.payment.get("status") != PAID[mode]:
        raise PaymentPending(f"pay first: {order.payment.get('url', 'no payment link')}",
                             {"payment-url": order.payment.get("url")})
    item = order.item
    reservation = bool(order.request.get("reservation"))
    start = datetime.fromisoformat(order.request["start"])
    end = datetime.fromisoformat(order.request["end"])
    if reservation and not await deps.orders.reserve_slot(item, order.id, start, end):
        raise Unavailable("the slot was taken by another booking", {"start": start.isoformat()})
    terms = deps.policy.terms(f"{item.cc}-{item.pid}", item.location_id)

    def change(o: Order) -> Order:
        o = apply(o, Event.CONFIRM_RESERVED if reservation else Event.CONFIRM_NOW, now,
                  NotApplicableNow)
        if reservation:
            o.reservation_id = f"R{o.id[:20].upper()}"
            o.slot = {"start": start.isoformat(), "end": end.isoformat()}
        return o

    def queued(_before: Order, after: Order) -> Effects:
        """Written with the confirmation (a serve killed after it loses no timer): the
        token's push (which also allows it to charge), RESERVE_NOW, the no-show timer,
        and on_confirm."""
        fx = Effects()
        txn = after.transaction_id
        job_effect(fx, "journey_push_token", txn, job_id=f"push-token:{after.id}")
        no_show_at = (start if reservation else now) + grace(terms.grace_minutes) + (
            timedelta(0) if reservation else timedelta(minutes=25))
        if reservation:
            # OCPI RESERVE_NOW holds the charger from the moment it is received until its
            # expiry (OCPI has no future reservations): our slot calendar holds the slot
            # until then, and RESERVE_NOW goes `reserve_lead_minutes` before the slot.
            reserve_at = start - timedelta(minutes=deps.settings.journey_reserve_lead_minutes)
            job_effect(fx, "journey_reserve_now", txn, job_id=f"reserve:{after.id}",
                       defer_until=reserve_at if reserve_at > now else None)
        job_effect(fx, "journey_no_show", txn, job_id=f"no-show:{after.id}",
                   defer_until=no_show_at)
        reply_effect(fx, deps, req, after, now)
        return fx

    try:
        await deps.orders.update(req.context.transaction_id, change, effects=queued)
    except Exception:
        if reservation:
            await deps.orders.release_slot(item, order.id)
        raise


register_action("confirm", handle_confirm)
