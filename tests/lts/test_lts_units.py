"""The LTS edge without a network: settings, routing by profile, and the pure mappings
(context in and out, the request's contract read as the draft's order, the catalog)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bridge.beckn import countersign, lts, signing
from bridge.beckn.errors import SchemaError
from bridge.beckn.models import Context
from bridge.config import Settings
from bridge.mapping.catalog_lts import lts_offer, lts_resource


def test_settings_name_the_profiles_served() -> None:
    assert Settings().beckn_profiles == "rc2,guide,lts"
    assert Settings(beckn_profiles=" lts , rc2").beckn_profiles == "lts,rc2"
    with pytest.raises(ValueError, match="v3"):
        Settings(beckn_profiles="rc2,v3")
    with pytest.raises(ValueError, match="name one or more"):
        Settings(beckn_profiles=" , ")
    with pytest.raises(ValueError, match="wire_profile 'guide' is not among"):
        Settings(beckn_profiles="rc2,lts", beckn_wire_profile="guide")
    Settings(beckn_profiles="lts", beckn_wire_profile="guide")  # /beckn is off: moot


@pytest.fixture
async def served(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
                 ) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    from bridge.app import build_app
    from bridge.extensions import app_extensions

    key = tmp_path / "k.pem"
    key.write_bytes(signing.private_key_pem(signing.generate_private_key()))
    settings = Settings(redis_url=redis_url, beckn_profiles=request.param,
                        beckn_private_key=str(key))
    server = TestServer(build_app(settings, extensions=app_extensions()), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        yield str(server.make_url("")).rstrip("/"), http
    await server.close()


async def _status(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.post(url, data=b"{}") as r:
        return r.status, (await r.json() if r.content_type == "application/json" else None)


@pytest.mark.parametrize("served", ["rc2,guide,lts", "rc2", "lts"], indirect=True)
async def test_routes_follow_the_profiles_on(served: tuple[str, aiohttp.ClientSession],
                                             request: pytest.FixtureRequest) -> None:
    url, http = served
    on = request.node.callspec.params["served"].split(",")
    status, body = await _status(http, f"{url}/select")
    if "lts" in on:  # unsigned: NackUnauthorized, counter-signed
        assert status == 401 and body["status"] == "NACK" and body["signature"], body
    else:
        assert (status, body) == (404, None)
    status, body = await _status(http, f"{url}/beckn/select")
    if "rc2" in on:
        assert status == 401 and body["ack_status"] == "NACK", body
    else:  # not served: the draft's NACK says so
        assert status == 404 and body["error"]["message"] == "no Beckn endpoint at /beckn/select"


def _ctx(**over: Any) -> dict[str, Any]:
    return {"action": "select", "version": "2.0.0", "bapId": "bap.x", "bapUri": "https://bap.x/b",
            "bppId": "bpp.y", "bppUri": "https://bpp.y", "transactionId": "t-1",
            "messageId": "m-1", "timestamp": "2026-01-01T00:00:00Z", **over}


def test_context_in_and_out() -> None:
    """camelCase in, the draft's names inside, camelCase out; the release branch's sender
    and receiver swapped in the answer; the request's digest as requestDigest; names of
    the draft's smuggled into an LTS context are dropped."""
    raw = _ctx(senderId="did:bap", receiverId="did:bpp", networkId="net/1", **{"try": False},
               bap_id="evil", obb_request_digest="forged", custom={"a": 1})
    inner = lts.context_in(raw, "BLAKE-512=abc")
    assert inner["bap_id"] == "bap.x" and inner["obb_request_digest"] == "BLAKE-512=abc"
    ctx = Context.model_validate({**inner, "action": "on_select"})
    out = lts.context_out(ctx)
    assert out["bapId"] == "bap.x" and out["senderId"] == "did:bpp"
    assert out["receiverId"] == "did:bap" and out["requestDigest"] == {"digest": "BLAKE-512=abc"}
    assert out["networkId"] == "net/1" and out["try"] is False and out["custom"] == {"a": 1}
    assert "bap_id" not in out and "obb_request_digest" not in out and "domain" not in out
    assert lts.wire_action("on_rating") == "on_rate"
    for bad, field in ((_ctx(version="2.0.1"), "context.version"),
                       (_ctx(bapUri="ftp://x"), "context.bapUri"),
                       ({k: v for k, v in _ctx().items() if k != "messageId"}, "context.messageId"),
                       (_ctx(**{"try": "maybe"}), "context.try")):
        with pytest.raises(SchemaError) as err:
            lts.context_in(bad, "d")
        assert err.value.details == {"field": field}, err.value.details


def test_the_contract_read_as_the_drafts_order() -> None:
    oid = "a9ea815dcaae4c73aa60d6355f251f40"
    order = lts.contract_to_order({
        "id": lts.contract_id(oid),
        "commitments": [{"id": "c1", "resources": [{"id": "IN:TPC:l:e:1", "quantity": {
            "unitCode": "KWH", "unitQuantity": 5}}], "offer": {"id": "o", "resourceIds": []}}],
        "performance": [{"id": "p", "performanceAttributes": {"@type": "ChargingSession",
                                                              "sessionStatus": "ACTIVE"}}],
        "participants": [{"id": "seller"}, {"id": "d-1", "descriptor": {"code": "BUYER",
                                                                        "name": "Ana"},
                                            "participantAttributes": {"telephone": "+91"}}],
        "settlements": [{"settlementAttributes": {"@type": "beckn:Payment",
                                                  "beckn:paymentStatus": "AUTHORIZED"}}]})
    assert order["beckn:id"] == oid
    assert order["beckn:orderItems"] == [{"beckn:lineId": "c1", "beckn:orderedItem":
                                          "IN:TPC:l:e:1", "beckn:quantity": {
                                              "unitCode": "KWH", "unitQuantity": 5}}]
    assert order["beckn:fulfillment"]["beckn:deliveryAttributes"]["sessionStatus"] == "ACTIVE"
    assert order["beckn:buyer"] == {"@type": "beckn:Buyer", "beckn:id": "d-1",
                                    "beckn:displayName": "Ana", "beckn:telephone": "+91"}
    assert order["beckn:payment"]["beckn:paymentStatus"] == "AUTHORIZED"
    with pytest.raises(SchemaError, match=r"message\.contract\.commitments"):
        lts.contract_to_order({"commitments": "x"})


def test_discover_intent_and_filter_names() -> None:
    msg = lts.discover_in({"intent": {"textSearch": "maddur", "filters": {
        "type": "jsonpath", "expression": "$[?@.resourceAttributes.connectorType == 'CCS2' "
                                          "&& @.provider.id == 'IN-TPC']"},
        "spatial": [{"op": "S_DWITHIN", "targets": "$['availableAt'][*]['geo']",
                     "quantifier": "ANY", "geometry": {"type": "Point", "coordinates": [1, 2]},
                     "distanceMeters": 10}]}})
    assert msg["text_search"] == "maddur"
    assert msg["filters"]["expression"] == (
        "$[?@['beckn:itemAttributes']['connectorType'] == 'CCS2' && "
        "@['beckn:provider']['beckn:id'] == 'IN-TPC']")
    assert msg["spatial"][0]["quantifier"] == "any"


def test_catalog_item_as_resource_and_offer() -> None:
    item = {"beckn:id": "IN:TPC:l:e:1", "beckn:descriptor": {
        "schema:name": "Site - E1", "beckn:shortDesc": "CCS2 60 kW DC, Available",
        "ocpi:standard": "IEC_62196_T2_COMBO", "schema:image": ["https://img/1.png"]},
        "beckn:availableAt": [{"@type": "beckn:Location", "geo": {"type": "Point",
                                                                  "coordinates": [1, 2]}}],
        "beckn:availabilityWindow": [{"schema:dayOfWeek": "https://schema.org/Monday",
                                      "schema:startTime": "08:00:00+05:30",
                                      "schema:endTime": "20:00:00+05:30"}],
        "beckn:itemAttributes": {"@type": "ChargingService", "connectorType": "CCS2",
                                 "chargingStation": {"id": "L"}}}
    r = lts_resource(item, "Available")
    assert r["descriptor"] == {"name": "Site - E1", "shortDesc": "CCS2 60 kW DC, Available",
                               "thumbnailImage": "https://img/1.png", "code": "Available",
                               "longDesc": "Open Mon 08:00-20:00. OCPI connector "
                                           "IEC_62196_T2_COMBO"}
    assert r["resourceAttributes"]["chargingStation"]["serviceLocation"]["geo"][
        "coordinates"] == [1, 2]
    o = lts_offer({"beckn:id": "offer:x", "beckn:items": ["x"], "beckn:price": {
        "currency": "INR", "value": 20}, "beckn:validity": {"schema:endDate": "2027-01-01Z"}})
    assert o["considerations"][0]["considerationAttributes"]["value"] == 20
    assert o["validity"] == {"endDate": "2027-01-01Z"} and o["resourceIds"] == ["x"]


def test_counter_signature_round_trip_and_tampering() -> None:
    key = signing.generate_private_key()
    ack = {"status": "ACK"}
    sig = countersign.counter_sign(key.sign, "bpp", "k1", ack, b"request", "m-1", 1000.0, 300)
    signed = {**ack, "signature": sig}
    countersign.verify(signed, b"request", "m-1", key.public_key(), 1100.0)
    for body, mid, tampered in ((b"other", "m-1", signed), (b"request", "m-2", signed),
                                (b"request", "m-1", {**signed, "status": "NACK"})):
        with pytest.raises(Exception, match="does not verify"):
            countersign.verify(tampered, body, mid, key.public_key(), 1100.0)
    with pytest.raises(Exception, match="expired"):
        countersign.verify(signed, b"request", "m-1", key.public_key(), 5000.0)
    with pytest.raises(Exception, match="no signature"):
        countersign.verify(ack, b"request", "m-1", key.public_key(), 1100.0)
    plain = sig.replace("(created) (expires) digest (request-digest) (message-id)",
                        "(created) (expires) digest")
    with pytest.raises(Exception, match="must cover"):
        countersign.verify({**ack, "signature": plain}, b"request", "m-1", key.public_key(),
                           1100.0)
