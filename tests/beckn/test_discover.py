"""discover end to end: signed request -> ACK -> worker -> signed on_discover at the test BAP."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from bridge.beckn import signing
from bridge.beckn.catalog_consumer import drain
from bridge.mapping.catalog import parse_item_id
from bridge.ocpi.models import EVSE
from bridge.store.catalog import CatalogStore
from bridge.store.ocpi_store import OcpiStore
from tests.beckn.conftest import (
    CENTER,
    Bridge,
    LoopbackBap,
    connector,
    evse,
    load_sample,
    location,
    run_worker,
    tariff,
)


async def discover(bridge: Bridge, bap: LoopbackBap, message: dict[str, Any], **top: Any
                   ) -> dict[str, Any]:
    body = {"context": bap.context("discover", bpp_id=None), "message": message, **top}
    if not message:
        del body["message"]
    status, ack = await bridge.post("discover", body, bap)
    assert (status, ack["ack_status"]) == (200, "ACK"), ack
    await run_worker(bridge.settings)
    got = [c for c in bap.callbacks() if c["context"]["message_id"] == body["context"]["message_id"]]
    assert len(got) == 1
    return got[0]


def catalogs(cb: dict[str, Any]) -> list[dict[str, Any]]:
    """The catalogs of an on_discover: in `message` (rc2), or beside `context` (the
    guide profile, example 02)."""
    return list((cb.get("message") or cb)["catalogs"])


def items(cb: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for c in catalogs(cb) for i in c["beckn:items"]]


def attr(item: dict[str, Any], name: str) -> Any:
    """An item attribute in either profile's words (`connectorType` / `ev:connectorType`)."""
    a = item["beckn:itemAttributes"]
    return a.get(name, a.get(f"ev:{name}"))


def ids(cb: dict[str, Any]) -> list[str]:
    out = []
    for i in items(cb):
        ref = parse_item_id(i["beckn:id"])
        assert ref is not None
        out.append(f"{ref.location_id}/{ref.evse_uid}/{ref.connector_id}")
    return out


def near(meters: float, lon: float = CENTER[0], lat: float = CENTER[1]) -> list[dict[str, Any]]:
    return [{"op": "s_dwithin", "targets": "$['beckn:availableAt'][*]['geo']",
             "geometry": {"type": "Point", "coordinates": [lon, lat]}, "distanceMeters": meters}]


@pytest.fixture
async def catalog(redis_client: Any, settings: Any) -> CatalogStore:
    return await load_sample(redis_client, settings)


async def test_place_and_radius_signed_callback(bridge: Bridge, bap: LoopbackBap,
                                                catalog: CatalogStore, bridge_key: Any) -> None:
    cb = await discover(bridge, bap, {"spatial": near(5000)})
    # ordered by distance; REMOVED EVSE and unpublished location not listed
    assert ids(cb) == ["loc-mg/e1/1", "loc-mg/e1/2", "loc-mg/e3/1", "loc-ind/e1/1"]
    assert cb["context"]["action"] == "on_discover"
    assert cb["context"]["bpp_id"] == bridge.settings.beckn_subscriber_id
    # signed with the bridge's key, over the exact body
    path, headers, raw = next(r for r in bap.received if r[0].endswith("on_discover"))
    assert path == "/bap/on_discover"
    header = signing.parse_header(headers["Authorization"])
    assert header.subscriber_id == bridge.settings.beckn_subscriber_id
    signing.verify(header, raw, bridge_key[0].public_key(), time.time())
    # one catalog per CPO, with offers carrying the ENERGY price and the peak window
    cats = catalogs(cb)
    assert [c["beckn:providerId"] for c in cats] == ["IN-TPC"]
    assert cats[0]["beckn:bppId"] == bridge.settings.beckn_subscriber_id
    offer = cats[0]["beckn:offers"][0]
    assert offer["beckn:price"]["value"] == 21.24  # 18 + 18 % VAT
    assert offer["beckn:price"]["currency"] == "INR"
    peak = offer["beckn:price"]["components"][0]
    assert (peak["startTime"], peak["endTime"], peak["value"]) == ("18:00", "22:00", 28.32)
    assert offer["beckn:offerAttributes"]["tariffModel"] == "TIME_OF_DAY"
    first = items(cb)[0]
    assert (attr(first, "connectorType"), attr(first, "maxPowerKW"), attr(first, "evseId")) == (
        "CCS2", 60, "IN*TPC*E0001")
    attrs = first["beckn:itemAttributes"]
    # only the EV pack's fields (additionalProperties: false): the status is in the
    # descriptor and the index, the exact OCPI standard in the descriptor
    assert "stationStatus" not in attrs and "connectorId" not in attrs
    desc = items(cb)[0]["beckn:descriptor"]
    assert desc["ocpi:standard"] == "IEC_62196_T2_COMBO" and "Available" in desc["beckn:shortDesc"]
    # opening hours with the location's UTC offset (rc2's `format: time`); none when 24/7
    mall = items(cb)[3]["beckn:availabilityWindow"]
    assert len(mall) == 7 and (mall[0]["schema:startTime"], mall[0]["schema:endTime"]) == (
        "10:00:00+05:30", "22:00:00+05:30")
    assert "beckn:availabilityWindow" not in items(cb)[0]


async def test_connector_type_and_power(bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore
                                        ) -> None:
    f = "$[?@['beckn:itemAttributes']['connectorType'] == 'CCS2']"
    cb = await discover(bridge, bap, {"spatial": near(5000),
                                      "filters": {"type": "jsonpath", "expression": f}})
    assert ids(cb) == ["loc-mg/e1/1", "loc-ind/e1/1"]
    f = "$[?@['beckn:itemAttributes']['maxPowerKW'] >= 100]"
    cb = await discover(bridge, bap, {"spatial": near(50_000),
                                      "filters": {"type": "jsonpath", "expression": f}})
    assert ids(cb) == ["loc-ind/e1/1"]


async def test_jsonpath_without_place(bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore
                                      ) -> None:
    f = ("$[?@['beckn:itemAttributes']['stationStatus'] == 'Available' && "
         "@['beckn:provider']['beckn:id'] == 'IN-ZAP']")
    cb = await discover(bridge, bap, {"filters": {"type": "jsonpath", "expression": f}})
    assert ids(cb) == ["loc-wf/e1/1"]
    assert [c["beckn:providerId"] for c in catalogs(cb)] == ["IN-ZAP"]


async def test_text_search(bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore) -> None:
    cb = await discover(bridge, bap, {"text_search": "Indiranagar"})
    assert ids(cb) == ["loc-ind/e1/1"]
    cb = await discover(bridge, bap, {"text_search": "zap charge whitefield"})
    assert ids(cb) == ["loc-wf/e1/1"]
    cb = await discover(bridge, bap, {"text_search": "CCS2 charger", "spatial": near(5000)})
    assert ids(cb) == ["loc-mg/e1/1", "loc-ind/e1/1"]
    cb = await discover(bridge, bap, {"text_search": "nowhere-to-be-found"})
    assert catalogs(cb) == []


async def test_pagination(bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore) -> None:
    pages = []
    for page in (1, 2, 3):
        cb = await discover(bridge, bap, {"spatial": near(50_000),
                                          "pagination": {"page": page, "limit": 2}})
        pages.append(ids(cb))
    assert pages == [["loc-mg/e1/1", "loc-mg/e1/2"], ["loc-mg/e3/1", "loc-ind/e1/1"],
                     ["loc-wf/e1/1"]]


async def test_polygon_within(bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore) -> None:
    poly = [[77.62, 12.95], [77.66, 12.95], [77.66, 13.0], [77.62, 13.0], [77.62, 12.95]]
    cb = await discover(bridge, bap, {"spatial": [{"op": "s_within", "targets": "$",
                                                   "geometry": {"type": "Polygon",
                                                                "coordinates": [poly]}}]})
    assert ids(cb) == ["loc-ind/e1/1"]


@pytest.mark.parametrize("text", ["IN*TPC*E0101", "intpce0101",
                                  "https://qr.tatapower.example/c?evse_id=IN*TPC*E0101"])
async def test_walk_in_by_evse_id_or_qr(bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore,
                                        text: str) -> None:
    cb = await discover(bridge, bap, {"text_search": text})
    assert ids(cb) == ["loc-ind/e1/1"]


async def test_bad_filter_is_nacked(bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore
                                    ) -> None:
    body = {"context": bap.context("discover"),
            "message": {"filters": {"type": "jsonpath", "expression": "$[?@.a =="}}}
    status, ack = await bridge.post("discover", body, bap)
    assert status == 400 and ack["error"]["code"] == "30000"
    assert ack["error"]["details"]["field"] == "message.filters.expression"


async def test_catalog_follows_ocpi_changes(bridge: Bridge, bap: LoopbackBap,
                                            catalog: CatalogStore, redis_client: Any) -> None:
    store = OcpiStore(redis_client)
    # EVSE goes out of order, then the location gets a new EVSE; the worker re-renders
    e1 = await store.get_evse("IN", "TPC", "LOC-IND", "E1")
    assert e1 is not None
    await store.patch_evse("IN", "TPC", "LOC-IND", "E1",
                           {"status": "OUTOFORDER", "last_updated": "2025-02-01T00:00:00Z"})
    await store.put_evse("IN", "TPC", "LOC-IND", EVSE.model_validate(
        {**evse("E9", "IN*TPC*E0109", "AVAILABLE", connector("1", "CHADEMO", "DC", 50)),
         "last_updated": "2025-02-01T00:00:00Z"}))
    assert await drain(redis_client, catalog) == 1  # both events, one render
    f = "$[?@['beckn:itemAttributes']['stationStatus'] == 'Available']"
    cb = await discover(bridge, bap, {"spatial": near(500, 77.6250, 12.9784),
                                      "filters": {"type": "jsonpath", "expression": f}})
    assert ids(cb) == ["loc-ind/e9/1"]
    # tariff change re-renders every location using it
    from tests.beckn.conftest import tariff

    t = tariff(price=20).model_copy(update={"last_updated": datetime(2025, 3, 1, tzinfo=UTC)})
    await store.put("tariffs", t)
    assert await drain(redis_client, catalog) == 2  # both locations using T1
    cb = await discover(bridge, bap, {"spatial": near(100)})
    offers = catalogs(cb)[0]["beckn:offers"]
    assert offers[0]["beckn:price"]["value"] == 23.6
    # location unpublished: gone
    await store.patch_location("IN", "TPC", "LOC-MG", {"publish": False,
                                                       "last_updated": "2025-04-01T00:00:00Z"})
    await drain(redis_client, catalog)
    cb = await discover(bridge, bap, {"spatial": near(100)})
    assert catalogs(cb) == []


async def test_memory_of_rendered_location(catalog: CatalogStore, redis_client: Any) -> None:
    raw = await redis_client.hgetall("obb:beckn:cat:IN:TPC:loc-mg")
    assert {k.decode()[:2] for k in raw} >= {"f", "i:", "t:", "k", "p"}
    item = orjson.loads(raw[b"i:IN:TPC:loc-mg:e1:1"])
    assert item["@type"] == "beckn:Item"
    assert item["beckn:availableAt"][0]["geo"]["coordinates"] == [CENTER[0], CENTER[1]]
    # one offer template per tariff, shared by the location's items
    assert [k for k in raw if k.startswith(b"t:")] == [b"t:t1"]
    ((item_b, offer_b),) = await catalog.items([("IN:TPC:loc-mg", "IN:TPC:loc-mg:e1:1")])
    offer = orjson.loads(offer_b or b"null")
    assert offer["beckn:id"] == "offer:IN:TPC:loc-mg:e1:1"
    assert offer["beckn:items"] == ["IN:TPC:loc-mg:e1:1"]
    assert orjson.loads(item_b or b"null") == item
    assert await catalog.items([("IN:TPC:loc-mg", "IN:TPC:loc-mg:e9:1")]) == [(None, None)]


async def test_spliced_and_rendered_answers_agree(bridge: Bridge, bap: LoopbackBap,
                                                  catalog: CatalogStore) -> None:
    """A query the indexes answer whole is spliced in Redis by the worker (recipe); one
    with a JSONPath left to evaluate is assembled by serve: same catalogs either way."""
    ct = "@['beckn:itemAttributes']['connectorType'] == 'CCS2'"
    spliced = await discover(bridge, bap, {"spatial": near(5000), "filters": {
        "type": "jsonpath", "expression": f"$[?{ct}]"}})
    rendered = await discover(bridge, bap, {"spatial": near(5000), "filters": {
        "type": "jsonpath", "expression": f"$[?{ct} && @['beckn:rateable'] == true]"}})
    assert ids(spliced) == ["loc-mg/e1/1", "loc-ind/e1/1"]
    assert catalogs(spliced) == catalogs(rendered)
    offers = [o for c in catalogs(spliced) for o in c["beckn:offers"]]
    assert [o["beckn:items"] for o in offers] == [["IN:TPC:loc-mg:e1:1"], ["IN:TPC:loc-ind:e1:1"]]


@pytest.mark.parametrize("profile", ["rc2", "guide"])
@pytest.mark.parametrize("expression", [
    # RFC 9535 with the guide's name for the attribute
    "$[?(@['beckn:itemAttributes']['ev:connectorType'] == 'CCS2')]",
    # what the sandboxes send: dotted names with a prefix (not RFC 9535)
    "$[?(@.beckn:itemAttributes.connectorType == 'CCS2')]",
    # the guide's hyphenated name, dotted
    "$[?(@.itemAttributes.connector-type == 'CCS2')]",
    # evaluated item by item (not all index terms): both vocabularies still apply
    "$[?(@['beckn:itemAttributes']['ev:connectorType'] == 'CCS2' && @['beckn:rateable'] == true)]",
])
async def test_filters_in_every_vocabulary_find_ccs2_chargers(
        bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore, expression: str,
        profile: str) -> None:
    cb = await discover(bridge, bap, {"spatial": near(5000), "filters": {
        "type": "jsonpath", "expression": expression}})
    assert ids(cb) == ["loc-mg/e1/1", "loc-ind/e1/1"]
    assert {attr(i, "connectorType") for i in items(cb)} == {"CCS2"}


@pytest.mark.parametrize("expression", [
    "$[?(@['beckn:itemAttributes']['ev:availability'] == 'AVAILABLE' && "
    "@['beckn:rateable'] == true)]",
    "$[?(@['beckn:itemAttributes']['stationStatus'] == 'Available' && "
    "@['beckn:rateable'] == true)]",
])
async def test_availability_filters_see_the_evse_status(bridge: Bridge, bap: LoopbackBap,
                                                        catalog: CatalogStore,
                                                        expression: str) -> None:
    """The EVSE's status is not in the rc2 item (the pack has no field for it), yet a
    filter on it, evaluated item by item, sees it: the busy CHAdeMO is left out."""
    cb = await discover(bridge, bap, {"spatial": near(5000), "filters": {
        "type": "jsonpath", "expression": expression}})
    assert ids(cb) == ["loc-mg/e1/1", "loc-mg/e1/2", "loc-ind/e1/1"]


async def test_connectors_the_pack_cannot_name_are_listed_in_the_guide_profile_only(
        redis_client: Any, settings: Any) -> None:
    """CCS1 (no value of the EvChargingService enum fits): not listed in rc2, where
    `connectorType` is required; listed in the guide profile with its readable name."""
    from bridge.beckn.discover import plan_query, search
    from bridge.beckn.models import DiscoverQuery

    store = OcpiStore(redis_client)
    await store.put("tariffs", tariff())
    await store.put_location(location("LOC-US", CENTER[0], CENTER[1], [
        evse("E1", "IN*TPC*E0901", "AVAILABLE", connector("1", "IEC_62196_T1_COMBO", "DC", 50))]))
    catalog = CatalogStore(redis_client, store)
    await drain(redis_client, catalog)
    q = DiscoverQuery(text="Station")
    plan = await plan_query(q, catalog)
    assert len(await search(q, catalog)) == 1  # as the guide profile searches
    plan.pack_only = True  # as the rc2 profile searches
    from bridge.beckn.discover import _search

    assert await _search(q, plan, catalog) == []
