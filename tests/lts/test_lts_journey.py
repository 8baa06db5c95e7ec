"""A Beckn 2.0 LTS BAP's whole journey on the bridge, and the two families side by side.

The LTS BAP (tests/lts/conftest.py) signs its requests, checks the counter-signature of
every Ack, and counter-signs its own Acks to the bridge's callbacks. It reads only the
wire: the contract's status, its consideration (the quote, the bill) and its settlements.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from tests.journey.conftest import (
    BAP_ID,
    GUIDE_BAP,
    RESERVABLE,
    WALK_IN,
    World,
    init_message,
    money,
    order_message,
    pay,
    select_message,
    state_of,
    update_message,
    wire_txn,
)
from tests.lts.conftest import (
    LtsBap,
    contract,
    contract_state,
    init_contract,
    ledgers_agree,
    select_contract,
    update_contract,
)

# a third charger for the guide BAP: 24/7, CCS2, another CPO (ZEO's own fees and terms)
GUIDE_ITEM = ("IN", "ZEO", "ZEO-BLR-IND", "ZEO-IND-1", "1")


def bill(m: dict[str, Any]) -> Decimal:
    spec = contract(m)["consideration"][0]["considerationAttributes"]
    return money(spec["value"])


def settled(m: dict[str, Any]) -> dict[str, Decimal]:
    """What each settlement moved: the payment (what was collected), refund, top-up..."""
    out: dict[str, Decimal] = {}
    for s in contract(m).get("settlements") or []:
        kind = s["id"].split("-")[0] if s["id"].split("-")[0] in (
            "refund", "capture", "release", "top") else "payment"
        out[kind] = money(s["settlementAttributes"]["beckn:amount"]["value"])
    return out


async def discover_charger(lts: LtsBap, txn: str) -> dict[str, Any]:
    """Discover CCS2 chargers within 5 km of the Maddur highway plaza (the catalog is
    rendered by the worker as the CPO's locations arrive: asked until it shows)."""
    message = {"intent": {
        "filters": {"type": "jsonpath",
                    "expression": "$[?@.resourceAttributes.connectorType == 'CCS2']"},
        "spatial": [{"op": "S_DWITHIN", "targets": "$['availableAt'][*]['geo']",
                     "geometry": {"type": "Point", "coordinates": [77.04372, 12.58531]},
                     "distanceMeters": 5000}]}}
    for _ in range(50):
        found = await lts.call("discover", txn, message)
        if found["message"]["catalogs"]:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError("the catalog never showed the Maddur chargers")


async def test_lts_journey_walk_in_power_cut_stop_and_final_bill(world: World,
                                                                 lts: LtsBap) -> None:
    """Discover, select, init, pay, confirm, start with the OTP, track, a power cut and
    its recovery, stop, and the final bill, balanced to the paisa from the wire."""
    txn, phone = "lts-journey-1", "+919811100011"
    on_discover = await discover_charger(lts, txn)
    catalog = on_discover["message"]["catalogs"][0]
    ids = {r["id"] for r in catalog["resources"]}
    rid = "IN:TPC:tpc-hwy-mdr:tpc-mdr-2:1"
    assert rid in ids, ids
    assert all(r["resourceAttributes"]["connectorType"] == "CCS2" for r in catalog["resources"])
    offer = next(o for o in catalog["offers"] if rid in o["resourceIds"])
    assert offer["considerations"][0]["considerationAttributes"]["value"] > 0

    on_select = await lts.call("select", txn, select_contract(WALK_IN, kwh=12))
    assert contract_state(on_select)[:2] == ("DRAFT", "PENDING")
    quote = bill(on_select)
    on_init = await lts.call("init", txn, init_contract(on_select, phone))
    main = contract(on_init)["settlements"][0]
    assert main["status"] == "DRAFT"
    url = main["settlementAttributes"]["beckn:paymentURL"]
    assert url.startswith(world.bridge_url)
    await pay(world, txn)
    paid = await lts.wait_for("on_status", txn)
    assert contract(paid)["settlements"][0]["status"] == "COMMITTED"
    assert money(contract(paid)["settlements"][0]["settlementAttributes"]["beckn:amount"][
        "value"]) == quote
    on_confirm = await lts.call("confirm", txn, {"contract": {
        "id": contract(on_init)["id"], "commitments": contract(on_init)["commitments"]}})
    assert contract_state(on_confirm)[0] == "ACTIVE"

    # a wrong start code is refused: no callback will follow (409 AckNoCallback)
    otp = await world.otp(phone)
    status, ack = await lts.post("update", txn, update_contract(
        on_confirm, "ACTIVE", "0000" if otp != "0000" else "1111"))
    assert (status, ack["status"], ack["error"]["errorCode"]) == (409, "NACK", "40010"), ack
    on_update = await lts.call("update", txn, update_contract(on_confirm, "ACTIVE", otp))
    assert contract_state(on_update)[:2] == ("ACTIVE", "ACTIVE"), contract_state(on_update)

    on_track = await lts.call("track", txn, {"tracking": {
        "contract": {"id": contract(on_confirm)["id"],
                     "commitments": contract(on_confirm)["commitments"]},
        "status": "ACTIVE", "url": f"{world.bap.url}/track/lts"}})
    tracking = on_track["message"]["tracking"]
    assert tracking["status"] == "ACTIVE" and tracking["url"].startswith(
        f"{world.bridge_url}/track/")
    # the tracking URL's JSON is the contract, as the BAP reads it everywhere else
    async with world.http.get(tracking["url"], headers={"Accept": "application/json"}) as r:
        assert r.status == 200, await r.text()
        page = await r.json()
    assert page["id"] == contract(on_track)["id"] and page["status"]["code"] == "ACTIVE"
    assert not [p for p in page["participants"] if p["descriptor"]["code"] == "BUYER"]

    await asyncio.sleep(1.0)
    await world.mock("POST", "/admin/faults/power-cut", {"location_id": WALK_IN[2],
                                                         "duration": 120, "outcome": "resume"})
    await lts.wait_for("on_status", txn, where=lambda m: contract_state(m)[1]
                       == "CONNECTION-INTERRUPTED", timeout=30)
    await lts.wait_for("on_status", txn, where=lambda m: contract_state(m)[1] == "ACTIVE",
                       timeout=30)
    status, ack = await lts.post("update", txn, update_contract(on_confirm, "STOP"))
    assert (status, ack["status"]) == (200, "ACK"), ack
    done = await lts.wait_for("on_update", txn, count=2, timeout=40)
    assert contract_state(done)[:2] == ("COMPLETE", "COMPLETED"), contract_state(done)
    assert contract(done)["consideration"][0]["status"]["code"] == "FINAL"
    # the driver's money, from the wire: collected + top-up = bill + refund, to the paisa
    moved = settled(done)
    assert moved["payment"] == quote
    assert moved["payment"] + moved.get("top", Decimal(0)) == bill(done) + moved.get(
        "refund", Decimal(0)), (moved, bill(done))
    # ... and what the wire says is what the books, the gateway and the CDR say
    books = await ledgers_agree(world, txn)
    assert (books["paid"], books["bill"], books["refund"], books["top_up"]) == (
        moved["payment"], bill(done), moved.get("refund", Decimal(0)),
        moved.get("top", Decimal(0))), (books, moved, bill(done))
    assert world.bap.patches, "live tracking PATCHes were expected"
    assert lts.unverified == 0 and world.bap.unverified == 0


async def test_one_journey_per_profile_at_once(world: World, lts: LtsBap) -> None:
    """An rc2 BAP, a guide BAP and an LTS BAP book, charge and are billed on the same
    bridge (one serve, one worker) at the same time; each gets its messages in its own
    dialect only, every callback signed, and each bill balances against the gateway and
    the CDR to the paisa."""

    async def draft(txn: str, phone: str, item: tuple[str, str, str, str, str],
                    as_bap: str | None) -> dict[str, Decimal]:
        inbox = world.bap.guide_received if as_bap == GUIDE_BAP else None
        await world.call("select", txn, select_message(item, budget=100), as_bap=as_bap)
        await world.call("init", txn, init_message(phone), as_bap=as_bap)
        await pay(world, txn)
        await world.bap.wait_for("on_status", txn, inbox=inbox)
        await world.call("confirm", txn, order_message(), as_bap=as_bap)
        on_update = await world.call("update", txn, update_message(
            "start-charging", await world.otp(phone)), as_bap=as_bap)
        assert state_of(on_update)[:2] == ("ACTIVE", "ACTIVE")
        done = await world.bap.wait_for("on_update", txn, count=2, timeout=60, inbox=inbox)
        assert state_of(done)[0] == "COMPLETED"
        return await ledgers_agree(world, txn)

    async def lts_side() -> dict[str, Decimal]:
        txn, phone = "both-lts-1", "+919811100022"
        on_select = await lts.call("select", txn, select_contract(RESERVABLE, budget=100))
        on_init = await lts.call("init", txn, init_contract(on_select, phone))
        await pay(world, txn)
        await lts.wait_for("on_status", txn)
        on_confirm = await lts.call("confirm", txn, {"contract": {
            "id": contract(on_init)["id"], "commitments": contract(on_init)["commitments"]}})
        on_update = await lts.call("update", txn, update_contract(on_confirm, "ACTIVE",
                                                                  await world.otp(phone)))
        assert contract_state(on_update)[:2] == ("ACTIVE", "ACTIVE")
        done = await lts.wait_for("on_update", txn, count=2, timeout=60)
        assert contract_state(done)[0] == "COMPLETE"
        books = await ledgers_agree(world, txn)
        assert bill(done) == books["bill"], (bill(done), books)
        return books

    results = await asyncio.gather(
        draft("both-rc2-1", "+919811100021", WALK_IN, None),
        draft("both-guide-1", "+919811100023", GUIDE_ITEM, GUIDE_BAP),
        lts_side())
    assert all(r["bill"] > 0 and r["cdr"] > 0 for r in results), results
    # each BAP got its own dialect only, and only its own transactions
    assert lts.received and all(
        "contract" in (m.get("message") or {}) or "catalogs" in (m.get("message") or {})
        for m in lts.received), "an LTS BAP got a draft message"
    assert {m["context"]["transactionId"] for m in lts.received} == {wire_txn("both-lts-1")}
    for inbox, key, txn in ((world.bap.received, "beckn:orderStatus", "both-rc2-1"),
                            (world.bap.guide_received, "beckn:state", "both-guide-1")):
        assert inbox and all("transaction_id" in m["context"] for m in inbox), \
            "a draft BAP got an LTS context"
        assert {m["context"]["transaction_id"] for m in inbox} == {wire_txn(txn)}
        orders = [m["message"]["order"] for m in inbox if "order" in (m.get("message") or {})]
        assert orders and all(key in o for o in orders), (key, orders[0])
    assert world.bap.unverified == 0 and world.bap.guide_unverified == 0
    assert lts.unverified == 0


async def test_an_lts_bap_cannot_touch_a_draft_order_nor_the_reverse(world: World,
                                                                     lts: LtsBap) -> None:
    """Orders keep their family: an LTS request in a draft order's transaction finds no
    order (and changes nothing), and the reverse, even from the same BAP (same bap_id,
    key and callback address: only the dialect differs); a select reusing the other
    family's transaction id is refused."""
    draft_txn, lts_txn = "family-draft-1", "family-lts-1"
    # the draft BAP speaking LTS too: same subscriber, key and bapUri
    same = LtsBap(world, bap_id=BAP_ID, key=world.bap.key, uri=f"{world.bap.url}/bap")
    await world.call("select", draft_txn, select_message(WALK_IN, budget=100))
    on_select = await lts.call("select", lts_txn, select_contract(WALK_IN, budget=100))
    before = (await world.order(draft_txn)).model_dump(), (await world.order(lts_txn)).model_dump()
    status, ack = await same.post("status", draft_txn, {"contract": {
        "id": contract(on_select)["id"], "commitments": contract(on_select)["commitments"]}})
    assert (status, ack["status"], ack["error"]["errorCode"]) == (409, "NACK", "40001"), ack
    status, ack = await same.post("select", draft_txn, select_contract(WALK_IN, budget=50))
    assert (status, ack["error"]["errorCode"]) == (409, "40001"), ack
    # another LTS BAP in the draft order's transaction, the draft BAP in the LTS order's
    status, ack = await lts.post("status", draft_txn, {"contract": {
        "id": contract(on_select)["id"], "commitments": contract(on_select)["commitments"]}})
    assert (status, ack["status"], ack["error"]["errorCode"]) == (409, "NACK", "40001"), ack
    status, ack = await lts.post("select", draft_txn, select_contract(WALK_IN, budget=50))
    assert (status, ack["error"]["errorCode"]) == (409, "40001"), ack
    status, nack = await world.post("status", lts_txn, order_message())
    assert nack["ack_status"] == "NACK" and nack["error"]["code"] == "40001", nack
    status, nack = await world.post("init", lts_txn, init_message("+919811100031"))
    assert nack["ack_status"] == "NACK", nack
    after = (await world.order(draft_txn)).model_dump(), (await world.order(lts_txn)).model_dump()
    assert after == before
    assert not lts.of("on_status", draft_txn) and not world.bap.of("on_status", lts_txn)
