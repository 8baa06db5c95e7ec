"""The discover forms of the EV networks (bridge/beckn/geo.py, discover_terms.py):
a route corridor along the Bengaluru-Mysuru highway (ordered along the route, each item
with its distance from it), a MultiPoint, a Polygon with a hole, a MultiPolygon,
s_intersects; an availability window (opening hours, the reservation calendar, the EVSE's
status); by CPO, station, item, EVSE id, connector spec and vehicle (the table of Indian
EV models; an unknown one said in the answer); every refusal a NACK naming the field."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bridge.beckn.catalog_consumer import drain
from bridge.store.catalog import CatalogStore
from bridge.store.ocpi_store import OcpiStore
from bridge.store.orders import slots_key
from tests.beckn.conftest import Bridge, LoopbackBap, connector, evse, load_sample, location
from tests.beckn.test_discover import catalogs, discover, ids, items

# Bengaluru (MG Road) -> Bidadi -> Ramanagara -> Channapatna -> Maddur -> Mandya ->
# Srirangapatna -> Mysuru: about 140 km of NH 275
ROUTE = [[77.5946, 12.9716], [77.3890, 12.7970], [77.2810, 12.7230], [77.2090, 12.6510],
         [77.0440, 12.5840], [76.8950, 12.5220], [76.6930, 12.4140], [76.6394, 12.2958]]
IST = ZoneInfo("Asia/Kolkata")


async def load_route(redis_client: Any, store: CatalogStore) -> None:
    """Chargers along the highway (a few hundred metres to 1.5 km off it), one 10 km away
    (Magadi), one with opening hours, on top of the Bengaluru sample."""
    ocpi = OcpiStore(redis_client)
    hours = {"twentyfourseven": False, "regular_hours": [
        {"weekday": d, "period_begin": "08:00", "period_end": "20:00"} for d in range(1, 8)]}
    for loc in (
        location("LOC-BID", 77.3905, 12.8000, [
            evse("E1", "IN*TPC*E1001", "AVAILABLE", connector("1", "IEC_62196_T2_COMBO", "DC",
                                                              60))], name="Bidadi Dhaba"),
        location("LOC-CPT", 77.2070, 12.6580, [
            evse("E1", "IN*ZAP*E2001", "AVAILABLE", connector("1", "IEC_62196_T2", "AC_3_PHASE",
                                                              22, tariff="Z1"))],
                 name="Channapatna Toys", pid="ZAP", operator="Zap Charge"),
        location("LOC-MDY", 76.8950, 12.5360, [
            evse("E1", "IN*TPC*E3001", "AVAILABLE",
                 connector("1", "IEC_62196_T2_COMBO", "DC", 120)),
            evse("E2", "IN*TPC*E3002", "AVAILABLE", connector("1", "CHADEMO", "DC", 50))],
                 name="Mandya Plaza", opening_times=hours),
        location("LOC-MAG", 77.2240, 12.9570, [
            evse("E1", "IN*TPC*E4001", "AVAILABLE",
                 connector("1", "IEC_62196_T2_COMBO", "DC", 60))], name="Magadi Road"),
        location("LOC-MYS", 76.6420, 12.3000, [
            evse("E1", "IN*TPC*E5001", "AVAILABLE",
                 connector("1", "IEC_62196_T2_COMBO", "DC", 60))], name="Mysuru Palace"),
    ):
        await ocpi.put_location(loc)
    await drain(redis_client, store)


@pytest.fixture
async def catalog(redis_client: Any, settings: Any) -> CatalogStore:
    """The Bengaluru sample (tests/beckn/conftest.py); each test adds the highway."""
    return await load_sample(redis_client, settings)


def corridor(meters: float, route: list[list[float]] = ROUTE) -> list[dict[str, Any]]:
    return [{"op": "s_dwithin", "targets": "$['beckn:availableAt'][*]['geo']",
             "geometry": {"type": "LineString", "coordinates": route}, "distanceMeters": meters}]


def jp(expression: str) -> dict[str, Any]:
    return {"type": "jsonpath", "expression": expression}


def warnings(cb: dict[str, Any]) -> list[dict[str, Any]]:
    """`message.warnings` (rc2), or beside `context` (the guide profile)."""
    return list((cb.get("message") or cb)["warnings"])


async def nack(bridge: Bridge, bap: LoopbackBap, message: dict[str, Any]) -> dict[str, Any]:
    body = {"context": bap.context("discover", bpp_id=None), "message": message}
    status, ack = await bridge.post("discover", body, bap)
    assert (status, ack["ack_status"], ack["error"]["code"]) == (400, "NACK", "30000"), ack
    return dict(ack["error"])


async def test_route_corridor_in_order_with_distances(bridge: Bridge, bap: LoopbackBap,
                                                      catalog: CatalogStore,
                                                      redis_client: Any) -> None:
    await load_route(redis_client, catalog)
    cb = await discover(bridge, bap, {"spatial": corridor(2000),
                                      "pagination": {"page": 1, "limit": 50}})
    # along the route from MG Road, in each CPO's catalog (Channapatna is Zap Charge's);
    # Indiranagar (3 km east of the start), Whitefield and Magadi (25 km off) are not in
    # a 2 km corridor
    assert ids(cb) == ["loc-mg/e1/1", "loc-mg/e1/2", "loc-mg/e3/1", "loc-bid/e1/1",
                       "loc-mdy/e1/1", "loc-mdy/e2/1", "loc-mys/e1/1", "loc-cpt/e1/1"]
    desc = {i["beckn:id"].split(":")[2]: i["beckn:descriptor"] for i in items(cb)}
    along = [desc[k]["geo:alongRouteMeters"] for k in ("loc-mg", "loc-bid", "loc-cpt",
                                                       "loc-mdy", "loc-mys")]
    assert along == sorted(along) and along[0] == 0 and 125_000 < along[-1] < 150_000
    assert desc["loc-mg"]["geo:distanceMeters"] == 0
    assert 100 < desc["loc-bid"]["geo:distanceMeters"] < 1000
    assert 1000 < desc["loc-mdy"]["geo:distanceMeters"] < 2000
    # a narrower corridor drops Mandya (1.5 km off); a page continues the order
    cb = await discover(bridge, bap, {"spatial": corridor(1200),
                                      "pagination": {"page": 2, "limit": 3}})
    assert ids(cb) == ["loc-bid/e1/1", "loc-mys/e1/1", "loc-cpt/e1/1"]  # 4th to 6th
    # with a connector filter answered from the index; Indiranagar in a 12 km corridor
    # (after MG Road: the same route position, farther from it), Magadi still not
    cb = await discover(bridge, bap, {"spatial": corridor(12_000), "filters": jp(
        "$[?@['beckn:itemAttributes']['connectorType'] == 'CCS2']")})
    assert ids(cb) == ["loc-mg/e1/1", "loc-ind/e1/1", "loc-bid/e1/1", "loc-mdy/e1/1",
                       "loc-mys/e1/1"]


async def test_multipoint_polygon_with_hole_multipolygon(bridge: Bridge, bap: LoopbackBap,
                                                         catalog: CatalogStore,
                                                         redis_client: Any) -> None:
    await load_route(redis_client, catalog)
    two = [{"op": "s_dwithin", "targets": "$", "distanceMeters": 3000, "geometry": {
        "type": "MultiPoint", "coordinates": [[76.6394, 12.2958], [77.3890, 12.7970]]}}]
    cb = await discover(bridge, bap, {"spatial": two})
    assert ids(cb) == ["loc-bid/e1/1", "loc-mys/e1/1"]  # 370 m and 540 m from them
    assert all("geo:distanceMeters" in i["beckn:descriptor"] for i in items(cb))
    # Bengaluru with a hole around MG Road: Indiranagar stays, MG Road does not
    shell = [[77.50, 12.90], [77.70, 12.90], [77.70, 13.05], [77.50, 13.05], [77.50, 12.90]]
    hole = [[77.58, 12.96], [77.61, 12.96], [77.61, 12.99], [77.58, 12.99], [77.58, 12.96]]
    cb = await discover(bridge, bap, {"spatial": [{"op": "s_within", "targets": "$",
                                                   "geometry": {"type": "Polygon",
                                                                "coordinates": [shell, hole]}}]})
    assert ids(cb) == ["loc-ind/e1/1"]
    # two boxes, around Bidadi and around Mandya
    def box(lon: float, lat: float, d: float = 0.03) -> list[list[list[float]]]:
        return [[[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d],
                 [lon - d, lat - d]]]

    cb = await discover(bridge, bap, {"spatial": [{"op": "s_intersects", "targets": "$",
                                                   "geometry": {"type": "MultiPolygon",
                                                                "coordinates": [
                                                                    box(77.39, 12.80),
                                                                    box(76.895, 12.536)]}}]})
    assert sorted(ids(cb)) == ["loc-bid/e1/1", "loc-mdy/e1/1", "loc-mdy/e2/1"]
    # two constraints: the corridor, inside the Mandya box
    cb = await discover(bridge, bap, {"spatial": [*corridor(2000), {
        "op": "s_within", "targets": "$", "geometry": {"type": "Polygon",
                                                       "coordinates": box(76.895, 12.536)}}]})
    assert ids(cb) == ["loc-mdy/e1/1", "loc-mdy/e2/1"]


@pytest.mark.parametrize(("spatial", "field", "says"), [
    (corridor(2000, ROUTE[:1]), "message.spatial.0.geometry.coordinates",
     "at least 2 positions"),
    (corridor(2000, [[77.5, 12.9], [200.0, 12.9]]), "message.spatial.0.geometry.coordinates.1",
     "not a longitude and latitude"),
    (corridor(2000, [[77.5, 12.9], ["x", 1]]), "message.spatial.0.geometry.coordinates.1",
     "[longitude, latitude]"),
    (corridor(0), "message.spatial.0.distanceMeters", "more than 0"),
    (corridor(250_000), "message.spatial.0.distanceMeters", "at most"),
    (corridor(2000, [[0.0, 0.0], [60.0, 0.0]]), "message.spatial.0.geometry",
     "the route is"),
    ([{"op": "s_within", "targets": "$", "geometry": {"type": "Polygon", "coordinates": [
        [[77.5, 12.9], [77.6, 12.9], [77.6, 13.0], [77.5, 13.0]]]}}],
     "message.spatial.0.geometry.coordinates.0", "ends where it starts"),
    ([{"op": "s_within", "targets": "$", "geometry": {"type": "Polygon", "coordinates": [
        [[77.5, 12.9], [77.6, 13.0], [77.6, 12.9], [77.5, 13.0], [77.5, 12.9]]]}}],
     "message.spatial.0.geometry.coordinates", "not a valid polygon"),
    ([{"op": "s_within", "targets": "$", "geometry": {"type": "MultiPolygon",
                                                      "coordinates": []}}],
     "message.spatial.0.geometry.coordinates", "polygons expected"),
    ([{"op": "s_within", "targets": "$", "geometry": {"type": "LineString",
                                                      "coordinates": ROUTE}}],
     "message.spatial.0.geometry.type", "has no inside"),
    ([{"op": "s_dwithin", "targets": "$", "distanceMeters": 10, "geometry": {
        "type": "Polygon", "coordinates": [[[77.5, 12.9], [77.6, 12.9], [77.6, 13.0],
                                            [77.5, 12.9]]]}}],
     "message.spatial.0.geometry.type", "s_dwithin needs"),
    ([{"op": "s_crosses", "targets": "$", "geometry": {"type": "LineString",
                                                       "coordinates": ROUTE}}],
     "message.spatial.0.op", "not supported"),
    ([{"op": "s_dwithin", "targets": "$", "distanceMeters": 10, "geometry": {
        "type": "Point", "coordinates": [77.5]}}], "message.spatial.0.geometry.coordinates",
     "[longitude, latitude]"),
])
async def test_bad_geometries_are_nacked(bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore,
                                         spatial: list[dict[str, Any]], field: str,
                                         says: str) -> None:
    err = await nack(bridge, bap, {"spatial": spatial})
    assert err["details"]["field"] == field, err
    assert says in err["message"], err


def window(start: str, end: str, names: tuple[str, str] = ("schema:startDate",
                                                            "schema:endDate")) -> str:
    aw = "@['beckn:availabilityWindow'][*]"
    return f"$[?{aw}['{names[0]}'] <= '{start}' && {aw}['{names[1]}'] >= '{end}']"


async def test_availability_window(bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore,
                                   redis_client: Any) -> None:
    await load_route(redis_client, catalog)
    near_mandya = [{"op": "s_dwithin", "targets": "$", "distanceMeters": 3000,
                    "geometry": {"type": "Point", "coordinates": [76.895, 12.536]}}]
    tomorrow = (datetime.now(IST) + timedelta(days=1)).date()

    def at(hhmm: str) -> str:
        return f"{tomorrow.isoformat()}T{hhmm}:00+05:30"

    # open 08:00-20:00: tomorrow 12:30-14:30 both EVSEs; 19:00-21:00 none (it closes)
    cb = await discover(bridge, bap, {"spatial": near_mandya,
                                      "filters": jp(window(at("12:30"), at("14:30")))})
    assert ids(cb) == ["loc-mdy/e1/1", "loc-mdy/e2/1"]
    cb = await discover(bridge, bap, {"spatial": near_mandya,
                                      "filters": jp(window(at("19:00"), at("21:00")))})
    assert ids(cb) == []
    # a reservation on E1 from 13:00 to 13:30 tomorrow: E1 is not free 12:30-14:30
    start = datetime.fromisoformat(at("13:00"))
    end = start + timedelta(minutes=30)
    await redis_client.zadd(slots_key("IN", "TPC", "E1".lower()), {
        f"order-1|{int(end.timestamp() * 1000)}": int(start.timestamp() * 1000)})
    cb = await discover(bridge, bap, {"spatial": near_mandya,
                                      "filters": jp(window(at("12:30"), at("14:30")))})
    assert ids(cb) == ["loc-mdy/e2/1"]
    # but free afterwards
    cb = await discover(bridge, bap, {"spatial": near_mandya,
                                      "filters": jp(window(at("14:00"), at("15:00")))})
    assert ids(cb) == ["loc-mdy/e1/1", "loc-mdy/e2/1"]
    # 24/7 MG Road, a window starting now: the busy CHAdeMO (CHARGING) is not free now
    now = datetime.now(IST)
    cb = await discover(bridge, bap, {"spatial": [{"op": "s_dwithin", "targets": "$",
                                                   "distanceMeters": 100, "geometry": {
                                                       "type": "Point",
                                                       "coordinates": [77.5946, 12.9716]}}],
                                      "filters": jp(window(now.isoformat(), (
                                          now + timedelta(hours=1)).isoformat()))})
    assert ids(cb) == ["loc-mg/e1/1", "loc-mg/e1/2"]
    # the time-of-day form: today, local time (MG Road is open round the clock)
    cb = await discover(bridge, bap, {"spatial": [{"op": "s_dwithin", "targets": "$",
                                                   "distanceMeters": 100, "geometry": {
                                                       "type": "Point",
                                                       "coordinates": [77.5946, 12.9716]}}],
                                      "filters": jp(window("02:00", "03:00", (
                                          "schema:startTime", "schema:endTime")))})
    assert "loc-mg/e1/1" in ids(cb)


@pytest.mark.parametrize(("expression", "says"), [
    ("$[?@['beckn:availabilityWindow'][*]['schema:startDate'] <= '2030-01-01T10:00:00Z']",
     "both a start and an end"),
    (window("tomorrow", "later"), "is not a date-time or a time"),
    (window("2030-01-01T12:00:00+05:30", "2030-01-01T11:00:00+05:30"), "end is not after"),
    (window("2030-01-01T12:00:00+05:30", "13:00"), "both bounds as date-times"),
    ("$[?@['beckn:availabilityWindow'][*]['schema:startDate'] <= '2030-01-01T10:00:00Z' || "
     "@['beckn:rateable'] == true]", "top-level && terms"),
    ("$[?@['beckn:availabilityWindow'][*]['schema:foo'] <= '2030-01-01T10:00:00Z']",
     "is not a start or an end"),
    (f"{window('2030-01-01T10:00:00Z', '2030-01-01T11:00:00Z')[:-1]} && @['x'] === 1]",
     "filters.expression"),
])
async def test_bad_windows_are_nacked(bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore,
                                      expression: str, says: str) -> None:
    err = await nack(bridge, bap, {"text_search": "Station", "filters": jp(expression)})
    assert err["details"]["field"] == "message.filters.expression"
    assert says in err["message"], err


IA = "@['beckn:itemAttributes']"


async def found(bridge: Bridge, bap: LoopbackBap, expression: str, **message: Any) -> list[str]:
    return ids(await discover(bridge, bap, {"filters": jp(expression), **message}))


async def test_by_cpo(bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore,
                      redis_client: Any) -> None:
    await load_route(redis_client, catalog)
    assert await found(bridge, bap, "$[?@['beckn:provider']['beckn:id'] == 'IN-ZAP']") == [
        "loc-cpt/e1/1", "loc-wf/e1/1"]
    # the CPO's chargers along the route only
    assert await found(bridge, bap, "$[?@['beckn:provider']['beckn:id'] == 'IN-ZAP']",
                       spatial=corridor(2000)) == ["loc-cpt/e1/1"]


async def test_by_station(bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore,
                          redis_client: Any) -> None:
    await load_route(redis_client, catalog)
    assert await found(bridge, bap, f"$[?{IA}['chargingStation']['id'] == 'LOC-MDY']") == [
        "loc-mdy/e1/1", "loc-mdy/e2/1"]
    # a station and an item of another station: nothing
    assert await found(bridge, bap, f"$[?{IA}['chargingStation']['id'] == 'LOC-MDY' && "
                       "@['beckn:id'] == 'IN:TPC:loc-mg:e1:1']") == []


async def test_by_evse_and_item(bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore,
                                redis_client: Any) -> None:
    await load_route(redis_client, catalog)
    assert await found(bridge, bap, f"$[?{IA}['evseId'] == 'IN*TPC*E3001']") == [
        "loc-mdy/e1/1"]
    assert await found(bridge, bap, "$[?@['beckn:id'] == 'IN:TPC:loc-mdy:e2:1']") == [
        "loc-mdy/e2/1"]


async def test_by_connector_spec(bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore,
                                 redis_client: Any) -> None:
    await load_route(redis_client, catalog)
    assert await found(bridge, bap, f"$[?{IA}['connectorType'] == 'CCS2' && "
                       f"{IA}['maxPowerKW'] >= 100]", spatial=corridor(2000)) == [
        "loc-mdy/e1/1"]
    assert await found(bridge, bap, f"$[?{IA}['connectorType'] == 'CHAdeMO' && "
                       f"{IA}['maxPowerKW'] >= 50 && {IA}['powerType'] == 'DC']") == [
        "loc-mdy/e2/1", "loc-mg/e3/1"]


async def test_by_vehicle(bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore,
                          redis_client: Any) -> None:
    await load_route(redis_client, catalog)
    v = "@['beckn:fulfillment']['vehicle']"

    async def ask(make: str, model: str) -> dict[str, Any]:
        return await discover(bridge, bap, {"spatial": corridor(2000), "filters": jp(
            f"$[?{v}['make'] == '{make}' && {v}['model'] == '{model}']")})

    nexon = await ask("Tata", "Nexon EV")  # CCS2 (DC) and Type 2 (AC): no CHAdeMO
    assert ids(nexon) == ["loc-mg/e1/1", "loc-mg/e1/2", "loc-bid/e1/1", "loc-mdy/e1/1",
                          "loc-mys/e1/1", "loc-cpt/e1/1"]
    (note,) = warnings(nexon)
    assert note["code"] == "VEHICLE_MATCHED" and note["details"]["maxDcKW"] == 50
    comet = await ask("MG", "Comet EV")  # AC only
    assert ids(comet) == ["loc-mg/e1/2", "loc-cpt/e1/1"]
    # dotted names, the rc2 session's names, the make in the model
    cb = await discover(bridge, bap, {"spatial": corridor(2000), "filters": jp(
        "$[?@.beckn:fulfillment.beckn:deliveryAttributes.vehicleModel == 'Tata Punch EV']")})
    assert ids(cb) == ids(nexon)
    unknown = await ask("Hindustan", "Ambassador EV")  # no filter, and said so
    assert len(ids(unknown)) == 8
    (warn,) = warnings(unknown)
    assert warn["code"] == "VEHICLE_UNKNOWN" and "Ambassador" in warn["message"]


async def test_route_answers_are_the_same_spliced_or_assembled(
        bridge: Bridge, bap: LoopbackBap, catalog: CatalogStore, redis_client: Any) -> None:
    """A corridor answer is always assembled by serve (its items carry figures of the
    query); the same items come with a JSONPath evaluated item by item."""
    await load_route(redis_client, catalog)
    ct = "@['beckn:itemAttributes']['connectorType'] == 'CCS2'"
    a = await discover(bridge, bap, {"spatial": corridor(2000), "filters": jp(f"$[?{ct}]")})
    b = await discover(bridge, bap, {"spatial": corridor(2000), "filters": jp(
        f"$[?{ct} && @['beckn:rateable'] == true]")})
    assert catalogs(a) == catalogs(b)
