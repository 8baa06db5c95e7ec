"""Ending an order before any charge: money back, the charger freed, the driver and BAP told.

Three ways an order ends before it charges, each one atomic step that moves the
order to its end state and queues the job `journey_release` with it (the outbox):

- cancel (the driver cancels): the share the refund terms give back, as of the
  moment of the cancel (e.g. 85% at least 4 h before the slot); `on_cancel`;
- no-show (the grace period passed): a reservation by the refund terms, a
  walk-in in full; `on_status` NO-SHOW;
- failure (the CPO refused or never started the charge): everything back;
  `on_update` with the error (40006), as the answer to the start-charging request
  when there was one (its message id).

`journey_release` is keyed by the order (`release:{order}`) and computes the same
amounts however often it runs (they depend on the order and the stored moment of
the end, not on "now"). It refunds (or, for a hold, releases and captures) at the
gateway under keys of the order (`cancel:{id}`, `no-show:{id}`, `fail:{id}`, with
`:capture` / `:release`), frees the slot and the token, then records the
settlement in one step with what tells it (the callback and the SMS) and the
job that cancels the OCPI reservation. A worker killed anywhere runs it again
and nothing happens twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog

from bridge.crashpoints import crash_point
from bridge.journey.common import (
    JourneyDeps,
    answer_effect,
    tell_effect,
    unsolicited_effect,
    waiting,
)
from bridge.journey.queue import job_effect
from bridge.mapping.settlement import cancellation_refund
from bridge.ocpi.models import AllowedType
from bridge.orders import State
from bridge.store.effects import Effects
from bridge.store.orders import Order, inflight_key

log = structlog.get_logger("bridge.journey.release")

ENDS = {State.CANCELLED: "cancel", State.EXPIRED: "no-show", State.FAILED: "fail"}


def release_job(fx: Effects, order: Order) -> Effects:
    """The job that ends `order` (in an end state): queued with the change to that state."""
    return job_effect(fx, "journey_release", order.transaction_id,
                      job_id=f"release:{order.id}")


@dataclass(frozen=True)
class Release:
    key: str
    title: str
    paid: Decimal
    refund: Decimal  # returned: refunded (prepaid) or released (hold)
    held: bool
    token: AllowedType


def plan(deps: JourneyDeps, order: Order) -> Release | None:
    """What ending `order` gives back (pure but for the policy lookup)."""
    kind = ENDS.get(order.state)
    if kind is None:
        return None
    p = order.payment
    paid = Decimal(p.get("amount", "0")) if p.get("status") in ("PAID", "HELD") else Decimal(0)
    refund = paid
    ended = datetime.fromisoformat(order.request.get("ended_at") or order.updated.isoformat())
    # cancel: by the refund terms; no-show: a reservation by the terms (a slot held for
    # nothing), a walk-in in full (it used nothing); failure: in full.
    by_terms = kind == "cancel" or (kind == "no-show" and bool(order.reservation_id))
    if by_terms and paid and order.item:
        terms = deps.policy.terms(f"{order.item.cc}-{order.item.pid}", order.item.location_id)
        refund = cancellation_refund(
            paid, slot_start=datetime.fromisoformat(order.request.get("start") or ended.isoformat()),
            cancelled_at=ended, terms=terms.refund_terms, currency=p.get("currency", "INR"))
    title = {"cancel": "Cancellation charge", "no-show": "No-show charge",
             "fail": "Not started"}[kind]
    token = AllowedType.EXPIRED if kind == "no-show" else AllowedType.NOT_ALLOWED
    return Release(f"{kind}:{order.id}", title, paid, refund, p.get("status") == "HELD", token)


async def move(deps: JourneyDeps, order: Order, r: Release) -> None:
    """The money, at the gateway, under keys of the order (each once)."""
    p = order.payment
    if not p.get("id") or not r.paid:
        return
    if r.held:
        if r.paid - r.refund:
            await deps.gateway.capture(p["id"], r.paid - r.refund, key=f"{r.key}:capture")
        if r.refund:
            await deps.gateway.release(p["id"], r.refund, key=f"{r.key}:release")
    elif r.refund:
        await deps.gateway.refund(p["id"], r.refund, key=r.key)


def settlement(order: Order, r: Release, now: datetime) -> dict[str, Any]:
    cur = order.payment.get("currency", "INR")
    kept = r.paid - r.refund
    what = ("nothing was delivered: everything returned" if r.key.startswith("fail:")
            else f"{r.title} at {order.request.get('ended_at') or now.isoformat()}")
    return {"key": r.key, "currency": cur, "final_amount": str(kept), "paid": str(r.paid),
            "refund": str(0 if r.held else r.refund), "release": str(r.refund if r.held else 0),
            "capture": str(kept if r.held else 0), "top_up": "0",
            "lines": [{"title": r.title, "amount": str(kept), "currency": cur, "kind": "fee"}]
            if kept else [],
            "explanation": [f"{what}: {r.refund} of {r.paid} back"], "notified": True}


def tell(deps: JourneyDeps, order: Order, r: Release, now: datetime) -> Effects:
    """What tells the end, written with the settlement: the BAP's callback, the SMS, the
    OCPI reservation's cancellation, the order out of the set in flight."""
    fx = Effects()
    short = f"ORD-{order.id[:8]}"
    if r.key.startswith("cancel:"):
        cancel_ctx = order.request.get("cancel_context")
        if cancel_ctx:
            answer_effect(fx, deps, cancel_ctx, order, now)
        tell_effect(fx, order, "info", f"Order {short} cancelled. Refund: ₹{r.refund}.")
    elif r.key.startswith("no-show:"):
        unsolicited_effect(fx, deps, order, "on_status", now)
        tell_effect(fx, order, "info", f"Your slot for {short} was released after the grace "
                                       f"period. Refund: ₹{r.refund}.")
    else:
        failure = order.request.get("failure") or {}
        reason = failure.get("reason", "the charge could not start")
        error = {"code": failure.get("code", "40006"), "message": reason}
        asked = waiting(order, "start_context")
        for start_ctx in asked:  # the answer to the driver's start-charging, with its
            # message id: a BAP matching answers to requests would otherwise wait for ever
            answer_effect(fx, deps, start_ctx, order, now, error=error)
        if not asked:  # e.g. the reservation refused after on_confirm: nothing asked
            unsolicited_effect(fx, deps, order, "on_update", now, error=error)
        tell_effect(fx, order, "info", f"Sorry: {reason}. Order {short} is cancelled and fully "
                                       "refunded.")
    if order.reservation_id:  # the job sends CANCEL_RESERVATION only if one was accepted
        job_effect(fx, "journey_cancel_reservation", order.transaction_id,
                   job_id=f"cancel-reservation:{order.id}")
    fx.call("ZREM", inflight_key(order.transaction_id), order.transaction_id)
    return fx


class Recorded(Exception):
    pass


async def journey_release(ctx: dict[str, Any], txn: str) -> str:
    """arq job: carry out the end of an order that ended before charging (see above)."""
    from bridge.journey.actions import journey, now_utc

    deps = journey(ctx)
    now = now_utc()
    order = await deps.orders.get(txn)
    if order is None:
        return "no order"
    r = plan(deps, order)
    if r is None:
        return f"order is {order.state.value}"
    if (order.settlement or {}).get("key") == r.key:
        return "already released"
    await move(deps, order, r)
    crash_point("release.money_moved")
    if order.item:
        await deps.orders.release_slot(order.item, order.id)
    if order.token_uid:
        await deps.ocpi.tokens.set_allowed("APP_USER", order.token_uid, r.token, now)

    def record(o: Order) -> Order:
        if (o.settlement or {}).get("key") == r.key:
            raise Recorded(r.key)
        o.settlement = settlement(o, r, now)
        return o

    try:
        await deps.orders.update(txn, record, effects=lambda _b, after: tell(deps, after, r, now))
    except Recorded:
        return "already released"
    log.info("journey.released", order=order.id, key=r.key, refund=str(r.refund),
             paid=str(r.paid))
    return "released"
