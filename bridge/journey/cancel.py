"""Beckn `cancel` -> `on_cancel`, with the refund the refund terms give.

Before charging starts an order can be cancelled. What was paid is refunded
per the policy's refund terms (e.g. 85% when cancelled at least 4 h before the
slot; nothing after the last term), a hold is released the same way, the OCPI
reservation is cancelled at the CPO, the slot is freed and the token stops
working (bridge/journey/release.py, a job queued with the cancellation; it
answers `on_cancel` with the refund). Once charging started: stop it instead
(50001).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bridge.beckn.routes import register_action
from bridge.beckn.transport import BecknRequest
from bridge.journey.common import (
    CancelNotPossible,
    JourneyDeps,
    apply,
    deps_of,
    load,
    previewing,
    reply,
)
from bridge.journey.release import plan, release_job, settlement
from bridge.orders import Event, State
from bridge.store.effects import Effects
from bridge.store.orders import Order


async def handle_cancel(req: BecknRequest) -> None:
    deps = deps_of(req)
    order = await load(deps, req, CancelNotPossible)
    if order.state in (State.ACTIVE, State.INTERRUPTED):
        raise CancelNotPossible("charging has started: send update stop-charging instead")
    if previewing(req):
        await reply(deps, req, preview(deps, order, req.received_at), req.received_at)
        return
    await cancel_order(deps, order.transaction_id,
                       req.context.model_dump(mode="json", exclude_none=True), req.received_at)


def preview(deps: JourneyDeps, order: Order, now: datetime) -> Order:
    """The order as a cancel now would leave it (LTS `context.try`: the cancellation terms
    and fee before committing): CANCELLED, with the settlement the release job would make
    (`bridge.journey.release.plan`). Nothing is stored, no money moves."""
    o = apply(order.model_copy(deep=True), Event.CANCEL, now, CancelNotPossible)
    o.request["ended_at"] = now.isoformat()
    r = plan(deps, o)
    if r is not None:
        o.settlement = {**settlement(o, r, now), "preview": True}
    return o


async def cancel_order(deps: JourneyDeps, txn: str, context: dict[str, Any],
                       now: datetime) -> None:
    """CANCELLED, and the job that refunds and answers (`on_cancel` with the refund), in
    one step: a serve killed right after it loses nothing."""
    def cancel(o: Order) -> Order:
        o = apply(o, Event.CANCEL, now, CancelNotPossible)
        o.request["cancel_context"] = context
        o.request["ended_at"] = now.isoformat()
        return o

    await deps.orders.update(txn, cancel, effects=lambda _b, after: release_job(Effects(), after))


register_action("cancel", handle_cancel)
