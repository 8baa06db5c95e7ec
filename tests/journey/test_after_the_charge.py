"""After the charge: status, rating, support; a CDR pushed twice; a credit CDR; bad input."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import orjson

from bridge.demo import view
from bridge.journey.common import JourneyDeps
from bridge.journey.settle import journey_settle
from bridge.ocpi.models import CDR
from bridge.payments import SandboxGateway
from bridge.store.ocpi_store import OcpiStore
from tests.journey.conftest import (
    WALK_IN,
    World,
    init_message,
    order_message,
    pay,
    select_message,
    state_of,
    update_message,
)


async def charged(world: World, txn: str, phone: str) -> None:
    await world.call("select", txn, select_message(WALK_IN, kwh=2))
    await world.call("init", txn, init_message(phone))
    await pay(world, txn)
    await world.bap.wait_for("on_status", txn)
    await world.call("confirm", txn, order_message())
    await world.call("update", txn, update_message("start-charging", await world.otp(phone)))
    await world.bap.wait_for("on_update", txn, count=2, timeout=40)


async def test_status_rating_support_and_cdr_twice(world: World) -> None:
    txn, phone = "txn-after-1", "+919800002001"
    await world.mock("POST", "/admin/faults/duplicate-cdr", {"count": 1})
    await charged(world, txn, phone)
    order = await world.order(txn)
    on_status = await world.call("status", txn, order_message(order.id))
    assert state_of(on_status)[0] == "COMPLETED"
    assert view.payment(on_status).status == "PAID"
    on_rating = await world.call("rating", txn, {"ratings": [{"id": order.id, "value": 5,
                                                               "rating_category": "ORDER"}]})
    assert on_rating["message"].get("rating_ack", on_rating["message"].get("received")) is True
    assert (await world.order(txn)).rating["value"] == 5
    on_support = await world.call("support", txn, {})
    assert on_support["message"]["support"]["phone"]
    # the tracking URL shows the charge, not the driver's billing details
    async with world.http.get(f"{world.bridge_url}/track/{order.id}") as r:
        tracked = await r.json()
    assert view.state({"message": {"order": tracked}}) == "COMPLETED"
    assert "billing-details" not in tracked["beckn:orderAttributes"]
    assert phone not in orjson.dumps(tracked).decode()
    async with world.http.get(f"{world.bridge_url}/track/{order.id}",
                              headers={"Accept": "text/html"}) as r:
        assert "kWh" in await r.text()
    async with world.http.get(f"{world.bridge_url}/track/nope") as r:
        assert r.status == 404
    # the CDR came twice: one settlement, one bill
    await asyncio.sleep(1.0)
    bills = [m for m in await _outbox(world, phone) if m.kind == "bill"]
    assert len(bills) == 1, bills
    gw = SandboxGateway(world.redis, world.bridge_url)
    state = await gw.get(order.payment["id"])
    assert state.refunded == Decimal(str(order.settlement["refund"]))


async def test_credit_cdr_refunds_once(world: World) -> None:
    txn, phone = "txn-credit-1", "+919800002101"
    await charged(world, txn, phone)
    order = await world.order(txn)
    original = (await OcpiStore(world.redis).get("cdrs", "IN", "TPC", order.cdr_id)).data
    credit = CDR.model_validate({**original, "id": f"{order.cdr_id}-C", "credit": True,
                                 "credit_reference_id": order.cdr_id,
                                 "total_cost": {"excl_vat": -5, "incl_vat": -5.9}})
    await OcpiStore(world.redis).put("cdrs", credit, create_only=True)
    deps = JourneyDeps.build(world.settings, world.redis)
    gw = SandboxGateway(world.redis, world.bridge_url)
    before = (await gw.get(order.payment["id"])).refunded
    try:
        # the worker settles the pushed credit CDR too: one of the runs credits, the
        # others find it done
        outcomes = [await journey_settle({"journey": deps}, "IN", "TPC", credit.id)
                    for _ in range(2)]
        assert outcomes[1] == "already credited" and outcomes[0] in ("credited",
                                                                     "already credited")
    finally:
        await deps.close()
    assert (await gw.get(order.payment["id"])).refunded == before + Decimal("5.90")
    order = await world.order(txn)
    assert [c["id"] for c in order.settlement["credits"]] == [credit.id]


async def test_bad_requests_change_nothing(world: World) -> None:
    txn = "txn-bad-1"
    # unknown item, unsigned request, schema errors: NACKs, and no order is created
    status, ack = await world.post("select", txn, select_message(
        ("IN", "TPC", "NOPE", "X", "1"), budget=100))
    assert (status, ack["error"]["code"]) == (400, "30004")
    status, ack = await world.post("select", txn, select_message(WALK_IN, budget=100), sign=False)
    assert (status, ack["error"]["code"]) == (401, "10001")
    bad = select_message(WALK_IN, budget=100)
    bad["order"]["beckn:orderItems"][0]["beckn:price"]["value"] = "lots"
    status, ack = await world.post("select", txn, bad)
    assert (status, ack["error"]["code"]) == (400, "30000") and "price" in ack["error"]["message"]
    status, ack = await world.post("init", txn, init_message("+919800002201"))
    assert (status, ack["error"]["code"]) == (400, "40001")
    assert await world.orders.get(world.txn(txn)) is None
    # confirm before paying: 40004 with the payment link, and the order stays INITIALIZED
    await world.call("select", txn, select_message(WALK_IN, budget=100))
    await world.call("init", txn, init_message("+919800002201"))
    status, ack = await world.post("confirm", txn, order_message())
    assert (status, ack["error"]["code"]) == (400, "40004")
    assert (await world.order(txn)).state.value == "INITIALIZED"
    status, ack = await world.post("update", txn, update_message("start-charging", "1234"))
    assert (status, ack["error"]["code"]) == (400, "50002")


async def _outbox(world: World, phone: str):
    from bridge.notify import Outbox

    return await Outbox(world.redis).messages(phone)


async def test_loyalty_and_fleet_rate_after_otp(world: World) -> None:
    """Loyalty by phone applies at init; a fleet id applies only once its OTP is verified."""
    txn, phone = "txn-fleet-1", "+91-9887766554"  # a GreenCharge Gold member
    await world.call("select", txn, select_message(WALK_IN, kwh=6))
    msg = init_message(phone)
    msg["order"]["beckn:orderAttributes"]["fleet-details"] = {"beckn:id": "FLEET-ACME-01"}
    on_init = await world.call("init", txn, msg)
    assert any(-price for _, price in view.breakup(on_init)[0] if price < 0)  # loyalty
    code = next(m.text.split("code ")[1].split(" ")[0] for m in await _outbox(world, phone)
                if "Fleet verification" in m.text)
    msg["order"]["beckn:orderAttributes"]["fleet-details"]["otp"] = "000000" if code != "000000" else "111111"
    on_init = await world.call("init", txn, msg)
    assert not (await world.order(txn)).customer.get("fleet_verified")
    msg["order"]["beckn:orderAttributes"]["fleet-details"]["otp"] = code
    on_init = await world.call("init", txn, msg)
    order = await world.order(txn)
    assert order.customer["fleet_verified"] is True
    titles = " ".join(name for name, _ in view.breakup(on_init)[0])
    assert "Acme" in titles or "fleet" in titles.lower(), titles


async def test_recovery_after_missed_events_settles_nothing_twice(world: World) -> None:
    """A worker down longer than the change stream keeps entries recovers by re-reading
    active sessions and re-queueing recent CDRs; what is settled stays settled."""
    from datetime import UTC, datetime

    from bridge.journey.events import recover

    txn, phone = "txn-recover-1", "+919800002301"
    await charged(world, txn, phone)
    before = len(world.bap.of("on_update", txn))
    deps = JourneyDeps.build(world.settings, world.redis)
    try:
        assert await recover(deps, datetime.now(UTC)) >= 1
    finally:
        await deps.close()
    await asyncio.sleep(1.0)
    assert len(world.bap.of("on_update", txn)) == before
    bills = [m for m in await _outbox(world, phone) if m.kind == "bill"]
    assert len(bills) == 1
