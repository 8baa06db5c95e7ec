"""The LTS contract's money: a hold captured and released, a failed start refunded in
full (an error on_update in the LTS's Error), a no-show expired with what the terms keep,
each settlement as the BAP reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bridge.journey.actions import journey_no_show
from bridge.journey.common import JourneyDeps
from bridge.payments import SandboxGateway
from tests.journey.conftest import RESERVABLE, WALK_IN, World, money, pay
from tests.lts.conftest import (
    LtsBap,
    contract,
    contract_state,
    init_contract,
    ledgers_agree,
    select_contract,
    update_contract,
)


def amounts(m: dict[str, Any]) -> dict[str, tuple[str, Decimal]]:
    """settlement kind -> (its status, its amount)"""
    out = {}
    for s in contract(m).get("settlements") or []:
        kind = s["id"].split("-")[0]
        kind = kind if kind in ("refund", "capture", "release", "top") else "payment"
        out[kind] = (s["status"], money(s["settlementAttributes"]["beckn:amount"]["value"]))
    return out


async def book(world: World, lts: LtsBap, txn: str, phone: str, hold: bool = False
               ) -> dict[str, Any]:
    on_select = await lts.call("select", txn, select_contract(WALK_IN, budget=100))
    on_init = await lts.call("init", txn, init_contract(on_select, phone, hold=hold))
    await pay(world, txn)
    await lts.wait_for("on_status", txn)
    return await lts.call("confirm", txn, {"contract": {
        "id": contract(on_init)["id"], "commitments": contract(on_init)["commitments"]}})


async def test_a_hold_is_captured_and_released(world: World, lts: LtsBap) -> None:
    txn, phone = "lts-hold-1", "+919811100051"
    on_confirm = await book(world, lts, txn, phone, hold=True)
    held = amounts(on_confirm)["payment"]
    assert held[0] == "COMMITTED"
    assert contract(on_confirm)["settlements"][0]["settlementAttributes"][
        "beckn:paymentStatus"] == "AUTHORIZED"
    await lts.call("update", txn, update_contract(on_confirm, "ACTIVE", await world.otp(phone)))
    done = await lts.wait_for("on_update", txn, count=2, timeout=60)
    assert contract_state(done)[0] == "COMPLETE", contract_state(done)
    moved = amounts(done)
    bill = money(contract(done)["consideration"][0]["considerationAttributes"]["value"])
    assert moved["capture"] == ("COMPLETE", bill)
    assert moved["capture"][1] + moved.get("release", ("", Decimal(0)))[1] == held[1]
    books = await ledgers_agree(world, txn)
    assert (books["paid"], books["bill"]) == (held[1], bill), books


async def test_a_start_the_cpo_refuses_is_an_error_with_a_full_refund(world: World,
                                                                      lts: LtsBap) -> None:
    txn, phone = "lts-reject-1", "+919811100052"
    on_confirm = await book(world, lts, txn, phone)
    paid = amounts(on_confirm)["payment"][1]
    # refused every time: all START attempts (journey.start_attempts) fail
    await world.mock("POST", "/admin/faults/command", {"mode": "reject", "count": 3,
                                                       "command": "START_SESSION"})
    status, ack = await lts.post("update", txn, update_contract(on_confirm, "ACTIVE",
                                                                await world.otp(phone)))
    assert (status, ack["status"]) == (200, "ACK"), ack
    failed = await lts.wait_for("on_update", txn)
    assert failed["error"]["errorCode"] == "40006" and "refused" in failed["error"][
        "errorMessage"], failed["error"]
    assert contract_state(failed)[:2] == ("CANCELLED", "FAILED")
    # refunded before the BAP is told: the error's contract carries the refund
    assert amounts(failed) == {"payment": ("COMPLETE", paid), "refund": ("COMPLETE", paid)}


async def test_a_no_show_expires_the_contract_and_keeps_what_the_terms_say(
        world: World, lts: LtsBap) -> None:
    """A reservation nobody came to: after the grace period the contract is CANCELLED with
    the session NO-SHOW, told unsolicited (no requestDigest), the slot freed, and the
    money the terms keep is what the books, the gateway and the wire say."""
    txn, phone = "lts-noshow-1", "+919811100053"
    slot = datetime.now(UTC) + timedelta(hours=5)
    on_select = await lts.call("select", txn, select_contract(
        RESERVABLE, kwh=5, start=slot, end=slot + timedelta(hours=1)))
    on_init = await lts.call("init", txn, init_contract(on_select, phone))
    await pay(world, txn)
    paid = await lts.wait_for("on_status", txn)
    on_confirm = await lts.call("confirm", txn, {"contract": {
        "id": contract(on_init)["id"], "commitments": contract(on_init)["commitments"]}})
    assert contract_state(on_confirm)[:2] == ("ACTIVE", "RESERVED")
    # the grace period's timer, run now (its due time is the slot's end of grace)
    deps = JourneyDeps.build(world.settings, world.redis)
    try:
        assert await journey_no_show({"journey": deps}, world.txn(txn)) == "expired"
    finally:
        await deps.close()
    gone = await lts.wait_for("on_status", txn, where=lambda m: contract_state(m)[1]
                              == "NO-SHOW", timeout=30)
    assert contract_state(gone)[0] == "CANCELLED", contract_state(gone)
    assert "requestDigest" not in gone["context"]
    order = await world.order(txn)
    assert order.state.value == "EXPIRED" and order.settlement is not None
    assert order.settlement["key"] == f"no-show:{order.id}"
    assert await world.orders.slot_free(order.item, slot, slot + timedelta(hours=1))
    # the money: what was paid, less what the terms keep, came back; the wire says so
    collected = amounts(paid)["payment"][1]
    refund = money(order.settlement["refund"])
    kept = money(order.settlement["final_amount"])
    assert collected == kept + refund, order.settlement
    gw = await SandboxGateway(world.redis, world.bridge_url).get(order.payment["id"])
    assert gw is not None and (gw.paid, gw.refunded) == (collected, refund), gw
    assert amounts(gone).get("refund", ("", Decimal(0)))[1] == refund, amounts(gone)
