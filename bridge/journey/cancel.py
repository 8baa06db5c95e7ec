"""Beckn `cancel` -> `on_cancel`, with the refund the refund terms give.

Before charging starts an order can be cancelled. What was paid is refunded
per the policy's refund terms (e.g. 85% when cancelled at least 4 h before the
slot; nothing after the last term), a hold is released the same way, the OCPI
reservation is cancelled at the CPO, the slot is freed and the token stops
working. Once charging started: stop it instead (50001).
"""

from __future__ import annotations

from datetime import datetime

from bridge.beckn.routes import register_action
from bridge.beckn.transport import BecknRequest
from bridge.journey.common import CancelNotPossible, JourneyDeps, apply, deps_of, load, reply
from bridge.journey.release import release_booking
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
    refund = await release_booking(deps, order, now, key=f"cancel:{order.id}",
                                   title="Cancellation charge")
    await deps.outbox.send(order.customer.get("phone", "-"), "info",
                           f"Order ORD-{order.id[:8]} cancelled. Refund: ₹{refund}.", order.id)


register_action("cancel", handle_cancel)
