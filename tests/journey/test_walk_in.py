"""Raghav's walk-in (use case 2) end to end: select by budget, init, pay, confirm, start with
the OTP, live tracking, automatic stop at the budget, CDR, settlement, final bill."""

from __future__ import annotations

import uuid
from decimal import Decimal

from bridge.demo import view
from tests.journey.conftest import (
    WALK_IN,
    World,
    init_message,
    money,
    order_message,
    pay,
    select_message,
    state_of,
    update_message,
)

PHONE = "+919800000101"


async def test_walk_in_budget_journey(world: World) -> None:
    txn = "txn-walk-in-1"
    on_select = await world.call("select", txn, select_message(WALK_IN, budget=100))
    assert state_of(on_select)[0] == "QUOTED"
    assert view.breakup(on_select)[1] <= Decimal("110")  # ₹100 + overage provision
    on_init = await world.call("init", txn, init_message(PHONE))
    asked = view.payment(on_init)
    assert asked.status == "NOT-PAID" and asked.url.startswith(world.bridge_url)
    await pay(world, txn)
    paid = await world.bap.wait_for("on_status", txn)
    assert view.payment(paid).status == "PAID"
    on_confirm = await world.call("confirm", txn, order_message())
    assert state_of(on_confirm)[0] == "CONFIRMED"
    otp = await world.otp(PHONE)
    status, ack = await world.post("update", txn, update_message("start-charging", "0000"
                                                                  if otp != "0000" else "1111"))
    assert ack["ack_status"] == "NACK" and ack["error"]["code"] == "40010"
    on_update = await world.call("update", txn, update_message("start-charging", otp))
    assert state_of(on_update)[:2] == ("ACTIVE", "ACTIVE"), on_update
    on_track = await world.call("track", txn, {"order": {
        "beckn:orderAttributes": {"callback-url": f"{world.bap.url}/track/x"}}})
    assert view.tracking(on_track)[0].startswith(f"{world.bridge_url}/track/")
    # the budget is reached: the bridge stops the session, the CDR is settled
    done = await world.bap.wait_for("on_update", txn, count=2, timeout=40)
    assert state_of(done)[:2] == ("COMPLETED", "COMPLETED"), done
    # the bridge stopped at the budget (no stop from the BAP): the final bill is a message
    # of its own, never a repeat of the start's message id
    final_id = done["context"]["message_id"]
    assert final_id != on_update["context"]["message_id"] and str(uuid.UUID(final_id)) == final_id
    order = await world.order(txn)
    s = order.settlement
    assert s is not None and world.bap.unverified == 0
    paid_amount = money(order.payment["amount"])
    # paid + top-up = billed + refunded, to the paisa
    assert paid_amount + money(s["top_up"]) == money(s["final_amount"]) + money(s["refund"])
    # the bridge stops at the budget; the CPO's stop latency is what the overage covers
    assert money(s["final_amount"]) <= paid_amount + Decimal("15.00"), s
    assert Decimal(str(order.session["kwh"])) > 0
    assert world.bap.patches, "live tracking PATCHes were expected"
    assert view.patch_reading(world.bap.patches[-1])[0] > 0
