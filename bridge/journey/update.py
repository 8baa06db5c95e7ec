"""Beckn `update` (guide example 11): start-charging with the driver's OTP, or stop-charging.

start-charging checks the start code and queues OCPI START_SESSION; the
answer (`on_update` ACTIVE, example 12) goes when the CPO's Session turns
ACTIVE, or an error `on_update` when the CPO refuses or never answers.
stop-charging queues STOP_SESSION; the answer is the final bill (`on_update`
COMPLETED, example 17) once the CDR is settled.
"""

from __future__ import annotations

from bridge.beckn.routes import register_action
from bridge.beckn.transport import BecknRequest
from bridge.journey import wire
from bridge.journey.common import (
    BadAuthorization,
    UpdateNotPossible,
    apply,
    await_answer,
    deps_of,
    load,
    otp_ok,
)
from bridge.journey.queue import job_effect
from bridge.orders import Event, State
from bridge.store.effects import Effects
from bridge.store.orders import Order, inflight_key


async def handle_update(req: BecknRequest) -> None:
    deps = deps_of(req)
    now = req.received_at
    code, otp = wire.parse_update(req.body)
    order = await load(deps, req, UpdateNotPossible)
    txn = order.transaction_id
    context = req.context.model_dump(mode="json", exclude_none=True)
    if code == "start-charging":
        if order.state not in (State.CONFIRMED, State.RESERVED):
            raise UpdateNotPossible(f"order is {order.state.value}: cannot start charging now")
        if order.otp_attempts >= deps.settings.journey_otp_max_attempts:
            raise BadAuthorization("too many wrong start codes: ask for a new one with init")
        if not otp_ok(order, otp):
            def wrong(o: Order) -> Order:
                o.otp_attempts += 1
                return o

            await deps.orders.update(txn, wrong)
            raise BadAuthorization("wrong start code", {"attempts-left": max(
                deps.settings.journey_otp_max_attempts - order.otp_attempts - 1, 0)})

        def start(o: Order) -> Order:
            o = apply(o, Event.START, now, UpdateNotPossible)
            await_answer(o, "start_context", context)  # answered by on_update ACTIVE
            o.commands["start_requested"] = now.isoformat()
            return o

        def queued(_before: Order, after: Order) -> Effects:
            # with the request, in one step: START_SESSION (one job per order: a repeated
            # start-charging sends no second command), and the order followed until it
            # ends, its Session pulled from the CPO if no push comes
            fx = job_effect(Effects(), "journey_start_session", txn, job_id=f"start:{after.id}")
            return fx.call("ZADD", inflight_key(txn), int(
                (now.timestamp() + deps.settings.journey_reconcile_after) * 1000), txn)

        await deps.orders.update(txn, start, effects=queued)
        return

    def stop(o: Order) -> Order:
        o = apply(o, Event.STOP, now, UpdateNotPossible)
        await_answer(o, "stop_context", context)  # answered by on_update COMPLETED
        o.commands["stop_requested"] = now.isoformat()
        return o

    await deps.orders.update(txn, stop, effects=lambda _b, after: job_effect(
        Effects(), "journey_stop_session", txn, job_id=f"stop:{after.id}"))


register_action("update", handle_update)
