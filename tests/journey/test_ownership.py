"""Orders belong to their BAP: another validly signed BAP naming the transaction (or the
same BAP at another bap_uri) gets the answer an unknown transaction gets, sees nothing
of the order and changes nothing; a request naming another order id is refused."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest

from bridge.demo import view
from tests.journey.conftest import (
    OTHER_BAP,
    WALK_IN,
    World,
    init_message,
    order_message,
    pay,
    select_message,
    update_message,
)

PHONE = "+919800007001"


def messages(order_id: str) -> dict[str, dict[str, Any]]:
    return {
        "select": select_message(WALK_IN, kwh=3),
        "init": init_message("+919811111111"),
        "confirm": order_message(order_id),
        "update": update_message("start-charging", "0000"),
        "track": {"order": {"beckn:id": order_id,
                            "beckn:orderAttributes": {"callback-url": "http://127.0.0.1:9/x"}}},
        "status": order_message(order_id),
        "cancel": order_message(order_id),
        "rating": {"ratings": [{"id": order_id, "value": 1}]},
        "support": {"refId": order_id, "refType": "ORDER"},
    }


async def paid_order(world: World, txn: str) -> Any:
    await world.call("select", txn, select_message(WALK_IN, kwh=3))
    await world.call("init", txn, init_message(PHONE))
    await pay(world, txn)
    await world.bap.wait_for("on_status", txn)
    return await world.order(txn)


@pytest.mark.parametrize("action", ["select", "init", "confirm", "update", "track", "status",
                                    "cancel", "rating", "support"])
@pytest.mark.parametrize("who", ["other BAP", "other bap_uri"])
async def test_another_bap_cannot_see_or_touch_an_order(world: World, action: str,
                                                        who: str) -> None:
    txn = f"txn-owned-{action}-{who}"
    before = await paid_order(world, txn)
    msg = messages(before.id)[action]
    if who == "other BAP":
        status, ack = await world.post(action, txn, msg, as_bap=OTHER_BAP)
        unknown = await world.post(action, f"txn-nobody-{action}", msg, as_bap=OTHER_BAP)
    else:
        moved = {"bap_uri": f"{world.bap.url}/other"}
        status, ack = await world.post(action, txn, msg, context=moved)
        unknown = await world.post(action, f"txn-nobody-{action}-2", msg, context=moved)
    if action == "select":  # an unknown transaction would start an order: this one is taken
        assert ack["ack_status"] == "NACK" and ack["error"]["code"] == "40001", ack
    else:  # exactly what an unknown transaction gets
        assert (status, ack["ack_status"], ack.get("error", {}).get("code")) == (
            unknown[0], unknown[1]["ack_status"], unknown[1].get("error", {}).get("code")), (
            ack, unknown)
    await asyncio.sleep(0.5)  # any callback would have been delivered by now
    after = await world.order(txn)
    assert after.model_dump() == before.model_dump()
    leaked = orjson.dumps(world.bap.other_received).decode()
    assert before.id not in leaked and PHONE not in leaked, leaked


@pytest.mark.parametrize("action", ["confirm", "update", "track", "status", "cancel", "rating"])
async def test_a_request_naming_another_order_id_is_refused(world: World, action: str) -> None:
    txn = f"txn-named-{action}"
    before = await paid_order(world, txn)
    msg = messages("0" * 32)[action]
    if action == "update":
        msg["order"]["beckn:id"] = "0" * 32
    status, ack = await world.post(action, txn, msg)
    assert (status, ack["ack_status"], ack["error"]["code"]) == (400, "NACK", "30010"), ack
    assert (await world.order(txn)).model_dump() == before.model_dump()


async def test_the_guides_one_message_id_for_every_step_is_answered_each_time(
        world: World) -> None:
    """The guide's examples reuse one message id across select, init and confirm: each is
    another action, so each is handled and answered."""
    txn = "txn-one-message-id"
    same = {"message_id": "6743e9e2-4fb5-487c-92b7-13ba8018f176"}
    for action, msg in (("select", select_message(WALK_IN, kwh=3)),
                        ("init", init_message(PHONE))):
        status, ack = await world.post(action, txn, msg, context=same)
        assert ack["ack_status"] == "ACK", ack
        await world.bap.wait_for(f"on_{action}", txn)
    await pay(world, txn)
    status, ack = await world.post("confirm", txn, order_message(), context=same)
    assert ack["ack_status"] == "ACK", ack
    confirmed = await world.bap.wait_for("on_confirm", txn)
    assert view.state(confirmed) == "CONFIRMED"
    assert confirmed["context"]["message_id"] == same["message_id"]


async def test_a_duplicate_select_gets_its_answer_again_and_is_not_quoted_twice(
        world: World) -> None:
    txn = "txn-dup-select"
    same = {"message_id": "0b9a1f6e-2a51-4f0c-9d51-6f4f1d2f7a10"}
    msg = select_message(WALK_IN, kwh=3)
    assert (await world.post("select", txn, msg, context=same))[1]["ack_status"] == "ACK"
    first = await world.bap.wait_for("on_select", txn)
    assert (await world.post("select", txn, msg, context=same))[1]["ack_status"] == "ACK"
    again = await world.bap.wait_for("on_select", txn, count=2)
    assert again == first  # the very same answer
    order = await world.order(txn)
    assert [h["event"] for h in order.history] == ["select"]
    # the same message id with another body: refused, nothing changes
    other = select_message(WALK_IN, kwh=4)
    status, ack = await world.post("select", txn, other, context=same)
    assert (status, ack["error"]["code"]) == (409, "30020"), ack
    assert (await world.order(txn)).model_dump() == order.model_dump()


async def test_a_second_start_or_stop_before_the_answer_is_answered_too(world: World) -> None:
    """A BAP that sends start-charging again (a retry with a new message id) before the
    charge has started, or stop-charging again before the bill: each request is ACKed,
    so each gets its answer, with its own message id (the later request used to take the
    earlier one's place, which was never answered)."""
    txn = "txn-twice"
    await world.call("select", txn, select_message(WALK_IN, kwh=20))
    await world.call("init", txn, init_message(PHONE))
    await pay(world, txn)
    await world.bap.wait_for("on_status", txn)
    await world.call("confirm", txn, order_message())
    otp = await world.otp(PHONE)
    starts = [str(uuid.uuid4()), str(uuid.uuid4())]
    for mid in starts:
        status, ack = await world.post("update", txn, update_message("start-charging", otp),
                                       context={"message_id": mid})
        assert ack["ack_status"] == "ACK", ack
    for mid in starts:
        started = await world.bap.wait_for("on_update", txn, where=lambda m, mid=mid: m[
            "context"]["message_id"] == mid)
        assert view.fulfillment(started)[0] == "ACTIVE"
    stops = [str(uuid.uuid4()), str(uuid.uuid4())]
    for mid in stops:
        status, ack = await world.post("update", txn, update_message("stop-charging"),
                                       context={"message_id": mid})
        assert ack["ack_status"] == "ACK", ack
    for mid in stops:
        done = await world.bap.wait_for("on_update", txn, timeout=40, where=lambda m, mid=mid: m[
            "context"]["message_id"] == mid)
        assert view.state(done) == "COMPLETED"


async def test_two_baps_may_use_the_same_message_id(world: World) -> None:
    """Duplicates are keyed by (bap_id, action, message_id): another BAP's request with a
    message id this BAP used is its own request, handled and answered at its own URI."""
    same = {"message_id": "3f9d2c1e-7b6a-4e5d-8c4b-2a1f0e9d8c7b"}
    msg = select_message(WALK_IN, kwh=3)
    status, ack = await world.post("select", "txn-ours", msg, context=same)
    assert ack["ack_status"] == "ACK", ack
    status, ack = await world.post("select", "txn-theirs", msg, context=same, as_bap=OTHER_BAP)
    assert (status, ack["ack_status"]) == (200, "ACK"), ack
    await world.bap.wait_for("on_select", "txn-ours")
    for _ in range(100):
        theirs = [m for m in world.bap.other_received
                  if m["context"]["transaction_id"] == world.txn("txn-theirs")]
        if theirs:
            break
        await asyncio.sleep(0.1)
    assert theirs and theirs[0]["context"]["message_id"] == same["message_id"]
    assert view.state(theirs[0]) == "QUOTED"
    assert (await world.order("txn-theirs")).bap_id == OTHER_BAP
