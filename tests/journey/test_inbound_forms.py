"""Requests in the rc2 schema's shapes are read like the guide's: the amount as a
Quantity, the driver's phone and UPI id in `beckn:buyer`, track with `message.tracking`,
rating with `ratingValue`, support by `refId`."""

from __future__ import annotations

import uuid
from typing import Any

from bridge.demo import view
from bridge.mapping.catalog import item_id
from bridge.payments import SandboxGateway
from tests.journey.conftest import WALK_IN, World, pay

CORE = ("https://raw.githubusercontent.com/beckn/protocol-specifications-new/refs/heads/main/"
        "schema/core/v2/context.jsonld")
SESSION = ("https://raw.githubusercontent.com/beckn/protocol-specifications-v2/refs/heads/"
           "core-v2.0.0-rc2/schema/EvChargingSession/v1/context.jsonld")
PHONE = "+919800008001"


def rc2_order(**fields: Any) -> dict[str, Any]:
    return {"order": {"@context": CORE, "@type": "beckn:Order", "beckn:orderStatus": "CREATED",
                      "beckn:seller": "IN-TPC", **fields}}


def rc2_buyer(vpa: str | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {"@context": CORE, "@type": "beckn:Buyer", "beckn:id": "driver-42",
                         "beckn:displayName": "Asha", "beckn:telephone": PHONE,
                         "beckn:email": "asha@example.org"}
    if vpa:
        b["beckn:buyerAttributes"] = {"@context": "https://example.org/upi.jsonld",
                                      "@type": "BuyerUPI", "vpa": vpa}
    return b


def start_message(order_id: str, line: dict[str, Any], otp: str) -> dict[str, Any]:
    """rc2's start: the ChargingSession asks for ACTIVE; the start code (rc2 has no field
    for it) in a bag of its own in the fulfilment."""
    return rc2_order(**{
        "beckn:id": order_id, "beckn:buyer": rc2_buyer(), "beckn:orderItems": [line],
        "beckn:fulfillment": {"@context": CORE, "@type": "beckn:Fulfillment",
                              "beckn:mode": "RESERVATION", "beckn:deliveryAttributes": {
                                  "@context": "https://example.org/authorization.jsonld",
                                  "@type": "ChargingAuthorization",
                                  "authorization": {"type": "OTP", "token": otp}}},
        "beckn:orderAttributes": {"@context": SESSION, "@type": "ChargingSession",
                                  "sessionStatus": "ACTIVE"}})


LINE = {"beckn:lineId": "line-001", "beckn:orderedItem": item_id(*WALK_IN),
        "beckn:quantity": {"unitCode": "KWH", "unitQuantity": 3}}


def rc2_requests(order_id: str, otp: str, callback: str) -> dict[str, dict[str, Any]]:
    """The `message` of each request a BAP built from the rc2 schema sends (the
    conformance suite validates them against the schema)."""
    return {
        "select": rc2_order(**{"beckn:buyer": rc2_buyer(), "beckn:orderItems": [LINE]}),
        "init": rc2_order(**{"beckn:id": order_id, "beckn:buyer": rc2_buyer("asha@okbank"),
                             "beckn:orderItems": [LINE]}),
        "confirm": rc2_order(**{"beckn:id": order_id, "beckn:buyer": rc2_buyer(),
                                "beckn:orderItems": [LINE]}),
        "update": start_message(order_id, LINE, otp),
        "track": {"tracking": {"id": order_id, "callbackUrl": callback}},
        "rating": {"ratings": [{
            "@context": CORE, "@type": "beckn:RatingInput", "id": order_id, "ratingValue": 8,
            "bestRating": 10, "worstRating": 0, "category": "ORDER",
            "feedback": {"comments": "quick", "tags": ["clean"]}}]},
        "support": {"refId": order_id, "refType": "ORDER"},
    }


async def test_an_rc2_bap_books_tracks_and_rates(world: World) -> None:
    txn = "txn-rc2-forms"
    on_select = await world.call("select", txn, rc2_requests("", "", "")["select"])
    assert view.state(on_select) == "QUOTED"
    order = await world.order(txn)
    assert order.request["energy_kwh"] == "3" and order.customer["buyer"] == "driver-42"

    on_init = await world.call("init", txn, rc2_requests(order.id, "", "")["init"])
    assert view.payment(on_init).status == "NOT-PAID"
    order = await world.order(txn)
    assert (order.customer["phone"], order.customer["vpa"]) == (PHONE, "asha@okbank")
    # the UPI id reached the payment gateway (a UPI PSP sends its collect request there)
    state = await SandboxGateway(world.redis, world.bridge_url).get(order.payment["id"])
    assert state.payer_vpa == "asha@okbank"
    # and the driver's own buyer bag comes back on the order
    assert on_init["message"]["order"]["beckn:buyer"]["beckn:buyerAttributes"]["vpa"] == \
        "asha@okbank"

    await pay(world, txn)
    await world.bap.wait_for("on_status", txn)
    await world.call("confirm", txn, rc2_requests(order.id, "", "")["confirm"])
    otp = await world.otp(PHONE)
    started = await world.call("update", txn, rc2_requests(order.id, otp, "")["update"])
    assert view.fulfillment(started)[0] == "ACTIVE"

    callback = f"{world.bap.url}/track/{order.id}"
    on_track = await world.call("track", txn, rc2_requests(order.id, otp, callback)["track"])
    assert view.tracking(on_track)[0].endswith(f"/track/{order.id}")
    assert (await world.order(txn)).track["callback"] == callback

    on_rating = await world.call("rating", txn, rc2_requests(order.id, otp, callback)["rating"])
    assert on_rating["message"].get("received") is True or on_rating["message"].get("rating_ack")
    rating = (await world.order(txn)).rating
    assert rating["value"] == 4.2 and rating["feedback"] == {"comments": "quick",
                                                             "tags": ["clean"]}

    on_support = await world.call("support", txn, rc2_requests(order.id, otp, "")["support"])
    assert on_support["message"]["support"]["phone"]


async def test_the_guide_s_source_vpa_is_the_buyers_upi_id(world: World) -> None:
    from tests.journey.conftest import init_message, select_message

    txn = f"txn-vpa-{uuid.uuid4().hex[:6]}"
    await world.call("select", txn, select_message(WALK_IN, kwh=2))
    msg = init_message(PHONE)
    msg["order"]["beckn:orderAttributes"]["payment-details"]["beckn:paymentAttributes"] = {
        "source-vpa": "ravi@ptsbi", "payment-method": "UPI-TRANSFER"}
    await world.call("init", txn, msg)
    order = await world.order(txn)
    assert order.customer["vpa"] == "ravi@ptsbi"
    state = await SandboxGateway(world.redis, world.bridge_url).get(order.payment["id"])
    assert state.payer_vpa == "ravi@ptsbi"
