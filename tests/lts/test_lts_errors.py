"""LTS refusals and the smaller actions: every answer in the LTS's shape (`{status,
signature, error: {errorCode, errorMessage}}` with the HTTP status the LTS gives it),
counter-signed (the stand-in BAP checks each: tests/lts/conftest.py), and nothing
changed by a refusal."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from bridge.beckn import signing
from bridge.mapping.catalog import item_id
from bridge.payments import SandboxGateway
from tests.journey.conftest import BAP_KEY, LTS_BAP, RESERVABLE, WALK_IN, World, money, pay
from tests.lts.conftest import (
    LtsBap,
    check_counter,
    contract,
    contract_state,
    init_contract,
    select_contract,
)


async def raw_post(world: World, lts: LtsBap, path: str, body: bytes, *, method: str = "POST",
                   sign: bool = True) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if sign:
        headers["Authorization"] = signing.Signer(LTS_BAP, BAP_KEY, world.bap.lts_key,
                                                  300).header(body, time.time())
    async with world.http.request(method, f"{world.bridge_url}{path}", data=body,
                                  headers=headers) as r:
        assert r.content_type == "application/json", await r.text()
        ack = orjson.loads(await r.read())
    if lts.inspect is not None:
        lts.inspect(f"ack:{r.status}", ack)
    return r.status, ack


def refused(status: int, ack: dict[str, Any], http: int, code: str, text: str = "") -> None:
    assert status == http and ack["status"] == "NACK", (status, ack)
    assert ack["error"]["errorCode"] == code, ack
    assert text in ack["error"]["errorMessage"], ack
    assert set(ack) == {"status", "signature", "error"}, ack


async def test_signature_problems_are_401_nacks(world: World, lts: LtsBap) -> None:
    message = select_contract(WALK_IN, budget=100)
    status, ack = await lts.post("select", "lts-err-1", message, sign=False)
    refused(status, ack, 401, "10001", "Authorization header missing")
    # signed by another key than the registry's for bap.lts.test
    body = orjson.dumps({"context": lts.context("select", "lts-err-1"), "message": message})
    headers = {"Content-Type": "application/json",
               "Authorization": signing.Signer(LTS_BAP, BAP_KEY, world.bap.key, 300).header(
                   body, time.time())}
    async with world.http.post(f"{world.bridge_url}/select", data=body, headers=headers) as r:
        ack = orjson.loads(await r.read())
    refused(r.status, ack, 401, "10001", "does not verify")
    check_counter(ack, body, orjson.loads(body)["context"]["messageId"],
                  world.bap.bridge_public, world.settings.beckn_subscriber_id)
    assert await world.orders.get(world.txn("lts-err-1")) is None


async def test_bad_requests_are_400_nacks_naming_the_lts_field(world: World,
                                                               lts: LtsBap) -> None:
    txn = "lts-err-2"
    message = select_contract(WALK_IN, budget=100)
    ctx = lts.context("select", txn)
    del ctx["bapId"]
    status, ack = await lts.post("select", txn, message, context=None, raw=orjson.dumps(
        {"context": ctx, "message": message}))
    refused(status, ack, 400, "30000", "context.bapId")
    status, ack = await lts.post("select", txn, message, context={"version": "2.0.1"}, bad=True)
    refused(status, ack, 400, "30000", "context.version")
    status, ack = await lts.post("select", txn, message, context={"action": "init"}, bad=True)
    refused(status, ack, 400, "30000", "context.action")
    status, ack = await lts.post("select", txn, message, context={"bppId": "someone.else"})
    refused(status, ack, 400, "30000", "context.bppId")
    # the draft's order where the LTS has a contract
    status, ack = await lts.post("select", txn, {"order": {"beckn:orderItems": []}}, bad=True)
    refused(status, ack, 400, "30000", "message.contract")
    bad = select_contract(WALK_IN)
    bad["contract"]["commitments"][0]["resources"][0]["quantity"] = 5
    status, ack = await lts.post("select", txn, bad, bad=True)
    refused(status, ack, 400, "30000", "message.contract.commitments[0].resources[0].quantity")
    status, ack = await raw_post(world, lts, "/select", b"{not json")
    refused(status, ack, 400, "30000", "invalid JSON")
    status, ack = await lts.post("discover", txn, {"intent": {"filters": {
        "type": "jsonpath", "expression": "$[?@.resourceAttributes.connectorType =="}}},
        bad=True)
    refused(status, ack, 400, "30000", "message.intent.filters.expression")
    assert await world.orders.get(world.txn(txn)) is None


async def test_refusals_after_reading_are_409_ack_no_callback(world: World,
                                                               lts: LtsBap) -> None:
    txn = "lts-err-3"
    bad = select_contract(WALK_IN, budget=100)
    bad["contract"]["commitments"][0]["resources"][0]["id"] = item_id(
        "IN", "TPC", "NOWHERE", "X", "1")
    status, ack = await lts.post("select", txn, bad)
    refused(status, ack, 409, "30004", "unknown charger")
    status, ack = await lts.post("confirm", txn, {"contract": {
        "commitments": select_contract(WALK_IN)["contract"]["commitments"]}})
    refused(status, ack, 409, "40001", "start with select")
    # context.try: previews are offered for cancel, rate and support, not for update
    on_select = await lts.call("select", txn, select_contract(WALK_IN, budget=100))
    status, ack = await lts.post("update", txn, {"contract": {
        "id": contract(on_select)["id"], "commitments": contract(on_select)["commitments"]}},
        context={"try": True})
    refused(status, ack, 409, "40001", "context.try")
    assert (await world.order(txn)).state.value == "QUOTED"


async def test_paths_a_bpp_does_not_serve_answer_in_the_lts_shape(world: World,
                                                                  lts: LtsBap) -> None:
    for method, path in (("POST", "/on_select"), ("POST", "/catalog/publish"),
                         ("GET", "/catalog/subscriptions"), ("DELETE",
                                                              "/catalog/subscription/abc"),
                         ("GET", "/catalog/master/schemaTypes")):
        status, ack = await raw_post(world, lts, path, b"{}", method=method)
        refused(status, ack, 404, "40001", "does not serve it")
        check_counter(ack, b"{}", "", world.bap.bridge_public,
                      world.settings.beckn_subscriber_id)
    # the draft's family is untouched: /beckn/... answers the draft's AckResponse
    body = orjson.dumps({"context": {}, "message": {}})
    async with world.http.post(f"{world.bridge_url}/beckn/rate", data=body) as r:
        nack = await r.json()
    assert r.status == 404 and nack["ack_status"] == "NACK", nack


async def test_duplicates(world: World, lts: LtsBap) -> None:
    """The same request again gets its answer again; the same message id with another
    body is refused (400: the LTS has no code of its own for it)."""
    txn = "lts-dup-1"
    message = select_contract(WALK_IN, budget=100)
    ctx = lts.context("select", txn)
    status, ack = await lts.post("select", txn, message, context=ctx)
    assert (status, ack["status"]) == (200, "ACK")
    first = await lts.wait_for("on_select", txn)
    status, ack = await lts.post("select", txn, message, context=ctx)
    assert (status, ack["status"]) == (200, "ACK"), ack
    again = await lts.wait_for("on_select", txn, count=2)
    assert again["message"] == first["message"]
    assert again["context"]["requestDigest"] == first["context"]["requestDigest"]
    status, ack = await lts.post("select", txn, select_contract(WALK_IN, budget=50),
                                 context=ctx)
    refused(status, ack, 400, "30020", "context.messageId")


async def test_status_cancel_rate_and_support(world: World, lts: LtsBap) -> None:
    """A reservation four hours and more ahead, cancelled: on_cancel has the contract
    CANCELLED and the refund the terms give (85 %) as a settlement; status, rate and
    support answer in the LTS's words."""
    txn, phone = "lts-cancel-1", "+919811100041"
    slot = datetime.now(UTC) + timedelta(hours=5)
    on_select = await lts.call("select", txn, select_contract(
        RESERVABLE, kwh=5, start=slot, end=slot + timedelta(hours=1)))
    on_init = await lts.call("init", txn, init_contract(on_select, phone))
    await pay(world, txn)
    await lts.wait_for("on_status", txn)
    ref = {"id": contract(on_init)["id"], "commitments": contract(on_init)["commitments"]}
    on_confirm = await lts.call("confirm", txn, {"contract": ref})
    assert contract_state(on_confirm)[:2] == ("ACTIVE", "RESERVED")
    on_status = await lts.call("status", txn, {"contract": ref})
    assert contract_state(on_status)[:2] == ("ACTIVE", "RESERVED")
    # first the terms (context.try): what a cancel now would give back, nothing changed
    status, ack = await lts.post("cancel", txn, {"contract": ref}, context={"try": True})
    assert (status, ack["status"]) == (200, "ACK"), ack
    preview = await lts.wait_for("on_cancel", txn)
    assert preview["context"]["try"] is True
    assert contract_state(preview)[0] == "CANCELLED"
    would = next(s for s in contract(preview)["settlements"] if s["id"].startswith("refund-"))
    assert would["status"] == "DRAFT"
    order = await world.order(txn)
    assert order.state.value == "RESERVED" and order.settlement is None
    gw = SandboxGateway(world.redis, world.bridge_url)
    assert (await gw.get(order.payment["id"])).refunded == 0
    on_cancel = await lts.call("cancel", txn, {"contract": ref})
    c = contract(on_cancel)
    assert contract_state(on_cancel)[:2] == ("CANCELLED", "CANCELLED")
    paid = money(c["settlements"][0]["settlementAttributes"]["beckn:amount"]["value"])
    refund = next(s for s in c["settlements"] if s["id"].startswith("refund-"))
    assert refund["status"] == "COMPLETE"
    assert refund["settlementAttributes"]["beckn:paymentStatus"] == "REFUNDED"
    assert money(refund["settlementAttributes"]["beckn:amount"]["value"]) == money(
        paid * money("0.85")) == money(would["settlementAttributes"]["beckn:amount"]["value"])
    # a rating previewed (context.try) is answered, not kept
    status, ack = await lts.post("rate", txn, {"ratingInputs": [{
        "target": {"id": ref["id"], "descriptor": {"code": "ORDER"}},
        "range": {"min": 1, "max": 5, "value": 2}}]}, context={"try": True})
    assert (status, ack["status"]) == (200, "ACK")
    shown = await lts.wait_for("on_rate", txn)
    assert shown["message"]["ratings"][0]["range"]["value"] == 2
    assert (await world.order(txn)).rating is None
    on_rate = await lts.call("rate", txn, {"ratingInputs": [{
        "target": {"id": ref["id"], "descriptor": {"code": "ORDER"}},
        "range": {"min": 1, "max": 10, "value": 9},
        "feedbackFormSubmission": {"data": {"comments": "easy booking"}}}]})
    rating = on_rate["message"]["ratings"][0]
    assert rating["target"]["id"] == ref["id"] and rating["range"]["value"] == 4.56, rating
    assert (await world.order(txn)).rating["value"] == 4.56
    on_support = await lts.call("support", txn, {"support": {"orderId": ref["id"]}})
    support = on_support["message"]["support"]
    assert support["orderId"] == ref["id"]
    assert {c["contactType"] for c in support["channels"]} == {"PHONE", "EMAIL", "WEB"}
    # a support preview (context.try) is answered like any support request
    status, ack = await lts.post("support", txn, {"support": {"orderId": ref["id"]}},
                                 context={"try": True})
    assert (status, ack["status"]) == (200, "ACK")
    preview = await lts.wait_for("on_support", txn, count=2)
    assert preview["context"]["try"] is True
