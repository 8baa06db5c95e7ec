"""The guide profile against the implementation guide's examples 01-17: a BAP built from
the guide sends the guide's own requests (01, 03, 04, 06, 09, 11, 13, adapted only where
they must be: our charger, our order id, fresh times and ids, our callback URLs), and
every message the bridge writes for the next step carries every field path of the
guide's example of it (02, 05, 07, 08, 10, 12, 14, 15, 16, 17; values may differ).

The paths the bridge has nothing to fill with are listed, with the reason, in
tests/conformance/beckn/guide.py (`NO_SOURCE`) and docs/protocol-notes.md.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from bridge.mapping.catalog import item_id
from tests.conformance.beckn import guide
from tests.journey.conftest import BAP_ID, BPP_ID, WALK_IN, World, pay


@pytest.fixture
def profile() -> str:
    return "guide"


@pytest.fixture
def bridge_overrides() -> dict[str, Any]:
    # the network the guide's examples are on: items carry it (beckn:networkId)
    return {"beckn_network_id": "beckn.energy.india"}


def request(world: World, name: str, txn: str) -> dict[str, Any]:
    """The guide's example request `name`, sent by our test BAP in transaction `txn`."""
    body = copy.deepcopy(guide.example(name))
    body["context"].update(bap_id=BAP_ID, bap_uri=f"{world.bap.url}/bap", bpp_id=BPP_ID,
                           bpp_uri=f"{world.bridge_url}/beckn", transaction_id=txn,
                           message_id=str(uuid.uuid4()),
                           timestamp=datetime.now(UTC).isoformat().replace("+00:00", "Z"))
    return body


async def send(world: World, body: dict[str, Any]) -> None:
    raw = orjson.dumps(body)
    async with world.http.post(f"{world.bridge_url}/beckn/{body['context']['action']}", data=raw,
                               headers={"Content-Type": "application/json",
                                        "Authorization": world.bap.sign(raw)}) as r:
        ack = orjson.loads(await r.read())
    assert ack["ack_status"] == "ACK", ack


async def answer(world: World, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    txn = body["context"]["transaction_id"]
    cb = f"on_{body['context']['action']}"
    seen = len(world.bap.of(cb, txn))
    await send(world, body)
    return await world.bap.wait_for(cb, txn, count=seen + 1, **kw)


def carries(message: dict[str, Any], name: str) -> None:
    gaps = guide.missing(message, name)
    assert not gaps, f"missing paths of the guide's {name}:\n  " + "\n  ".join(gaps)


def slot(order: dict[str, Any], start: datetime, end: datetime) -> None:
    for stop in order["beckn:orderAttributes"]["fulfillment-details"]["stops"]:
        stop["time"]["timestamp"] = (start if stop["type"] == "START" else end).isoformat()


async def test_the_guide_journey_carries_every_path_of_the_guides_examples(world: World) -> None:
    txn = str(uuid.uuid4())
    # 01 -> 02: discover (the catalog may still be building from the CPO's pushes)
    for _ in range(100):
        found = await answer(world, request(world, "01-discover.json", txn))
        if any(c.get("beckn:items") for c in found.get("catalogs") or []):
            break
        await asyncio.sleep(0.2)
    carries(found, "02-on_discover.json")
    charger = item_id(*WALK_IN)
    now = datetime.now(UTC)

    # 03 (a budget) and 04 (quantity-measure): select -> 05 on_select, each time
    for name, budget in (("03-select-budget-inr.json", None), ("04-select-by-quantity-measure.json",
                                                               "500")):
        body = request(world, name, txn)
        order = body["message"]["order"]
        order["beckn:orderItems"][0]["beckn:orderedItem"] = charger
        if budget:  # enough for the charge to be cut by the power cut below, not the budget
            order["beckn:orderItems"][0]["beckn:orderItemAttributes"]["quantity-measure"][
                "value"] = budget
        slot(order, now, now + timedelta(hours=1))
        # a BAP that knows the car's registration sends it (example 15 shows it back)
        order["beckn:orderAttributes"]["fulfillment-details"]["vehicle"]["registration"] = \
            "KA-01-XX-1234"
        on_select = await answer(world, body)
        carries(on_select, "05-on_select.json")
    order_id = on_select["message"]["order"]["beckn:id"]

    # 06: init -> 07 on_init
    body = request(world, "06-init.json", txn)
    slot(body["message"]["order"], now, now + timedelta(hours=1))
    on_init = await answer(world, body)
    carries(on_init, "07-on_init.json")

    # payment -> 08 on_status (paid, not yet confirmed)
    await pay(world, txn)
    paid = await world.bap.wait_for("on_status", txn)
    carries(paid, "08-on_status-payment-paid.json")

    # 09: confirm (naming our order) -> 10 on_confirm
    body = request(world, "09-confirm.json", txn)
    body["message"]["order"]["beckn:id"] = order_id
    slot(body["message"]["order"], now, now + timedelta(hours=1))
    carries(await answer(world, body), "10-on_confirm.json")

    # 11: start-charging with the SMS code -> 12 on_update ACTIVE
    body = request(world, "11-update-start-charging.json", txn)
    body["message"]["order"]["beckn:id"] = order_id
    phone = on_init["message"]["order"]["beckn:orderAttributes"]["billing-details"][
        "schema:telephone"]
    body["message"]["order"]["beckn:orderAttributes"]["fulfillment-update"]["authorization"][
        "token"] = await world.otp(phone)
    started = await answer(world, body, timeout=30)
    carries(started, "12-on_update-charging-started.json")

    # 13: track with a callback URL -> 15 on_track; the PATCHes -> 14
    body = request(world, "13-track.json", txn)
    body["message"]["order"]["beckn:id"] = order_id
    body["message"]["order"]["beckn:orderAttributes"]["callback-url"] = \
        f"{world.bap.url}/track/{order_id}"
    carries(await answer(world, body), "15-on_track.json")
    for _ in range(200):
        if any(p.get("ev:chargingPeriods") for p in world.bap.patches):
            break
        await asyncio.sleep(0.1)
    carries(next(p for p in world.bap.patches if p.get("ev:chargingPeriods")),
            "14-track-callback-patch-body.json")

    # a power cut -> 16 on_status CONNECTION-INTERRUPTED; the end -> 17 on_update COMPLETED
    await world.mock("POST", "/admin/faults/power-cut", {"location_id": WALK_IN[2],
                                                         "duration": 60, "outcome": "end"})
    cut = await world.bap.wait_for("on_status", txn, where=lambda m: (
        m["message"]["order"]["beckn:orderAttributes"]["fulfillment-details"]["beckn:status"]
        == "CONNECTION-INTERRUPTED"))
    carries(cut, "16-on_status-connection-interrupted.json")
    done = await world.bap.wait_for("on_update", txn, timeout=40, where=lambda m: (
        m["message"]["order"]["beckn:state"] == "COMPLETED"))
    carries(done, "17-on_update-charging-completed.json")


def test_no_source_paths_are_few_and_said_why() -> None:
    """What the bridge cannot fill is a short, reasoned list (also in protocol-notes)."""
    assert len(guide.NO_SOURCE) <= 5
    assert all(len(why) > 20 for why in guide.NO_SOURCE.values())
