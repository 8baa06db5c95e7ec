"""The LTS contract's money: a hold captured and released, a failed start refunded in
full (an error on_update in the LTS's Error), each settlement as the BAP reads it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.journey.conftest import WALK_IN, World, money, pay
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
