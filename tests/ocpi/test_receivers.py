"""The eMSP receivers over real HTTP and a real Redis, played by a CPO."""

from __future__ import annotations

import pytest

from tests.ocpi.conftest import Ocpi, cdr, location, session, tariff

LOC = "/ocpi/2.2.1/locations/IN/TPC/LOC1"


async def test_put_then_get_location_round_trips(cpo: Ocpi) -> None:
    status, body, _ = await cpo.call("PUT", LOC, location())
    assert (status, body["status_code"]) == (201, 1000)  # new: 201; an update is 200
    assert "timestamp" in body
    status, body, _ = await cpo.call("GET", LOC)
    assert status == 200
    data = body["data"]
    assert data["id"] == "LOC1" and data["evses"][0]["uid"] == "EVSE1"
    assert data["evses"][0]["connectors"][0]["max_electric_power"] == 60000
    assert data["last_updated"] == "2026-11-25T10:00:00Z"


async def test_patch_evse_status_bumps_location_last_updated(cpo: Ocpi) -> None:
    await cpo.call("PUT", LOC, location())
    status, body, _ = await cpo.call("PATCH", f"{LOC}/EVSE1",
                                     {"status": "CHARGING", "last_updated": "2026-11-25T10:05:00Z"})
    assert (status, body["status_code"]) == (200, 1000)
    _, body, _ = await cpo.call("GET", LOC)
    assert body["data"]["evses"][0]["status"] == "CHARGING"
    assert body["data"]["last_updated"] == "2026-11-25T10:05:00Z"


async def test_stale_patch_is_ignored_with_1000(cpo: Ocpi) -> None:
    await cpo.call("PUT", LOC, location(lu="2026-11-25T10:10:00Z"))
    status, body, _ = await cpo.call("PATCH", f"{LOC}/EVSE1",
                                     {"status": "OUTOFORDER", "last_updated": "2026-11-25T09:00:00Z"})
    assert (status, body["status_code"]) == (200, 1000)
    assert "Ignored" in body["status_message"]
    _, body, _ = await cpo.call("GET", f"{LOC}/EVSE1")
    assert body["data"]["status"] == "AVAILABLE"


async def test_stale_put_is_ignored(cpo: Ocpi) -> None:
    await cpo.call("PUT", LOC, location(lu="2026-11-25T10:10:00Z"))
    old = location(lu="2026-11-25T09:00:00Z")
    old["name"] = "Old name"
    status, body, _ = await cpo.call("PUT", LOC, old)
    assert body["status_code"] == 1000
    _, body, _ = await cpo.call("GET", LOC)
    assert body["data"]["name"] == "Koramangala Hub"


async def test_patch_without_last_updated_is_2001(cpo: Ocpi) -> None:
    await cpo.call("PUT", LOC, location())
    status, body, _ = await cpo.call("PATCH", f"{LOC}/EVSE1", {"status": "CHARGING"})
    assert (status, body["status_code"]) == (200, 2001)
    assert "last_updated" in body["status_message"]


async def test_connector_put_and_patch(cpo: Ocpi) -> None:
    await cpo.call("PUT", LOC, location())
    conn = location()["evses"][0]["connectors"][0] | {"id": "2", "standard": "CHADEMO",
                                                      "last_updated": "2026-11-25T10:01:00Z"}
    status, body, _ = await cpo.call("PUT", f"{LOC}/EVSE1/2", conn)
    assert body["status_code"] == 1000, body
    status, body, _ = await cpo.call("PATCH", f"{LOC}/EVSE1/2",
                                     {"max_electric_power": 50000,
                                      "last_updated": "2026-11-25T10:02:00Z"})
    assert body["status_code"] == 1000, body
    _, body, _ = await cpo.call("GET", f"{LOC}/EVSE1/2")
    assert body["data"]["max_electric_power"] == 50000
    _, body, _ = await cpo.call("GET", LOC)
    assert body["data"]["last_updated"] == "2026-11-25T10:02:00Z"  # bumped up the tree
    assert len(body["data"]["evses"][0]["connectors"]) == 2


async def test_removed_evse_is_kept(cpo: Ocpi) -> None:
    await cpo.call("PUT", LOC, location())
    await cpo.call("PATCH", f"{LOC}/EVSE1", {"status": "REMOVED",
                                             "last_updated": "2026-11-25T10:05:00Z"})
    _, body, _ = await cpo.call("GET", f"{LOC}/EVSE1")
    assert body["data"]["status"] == "REMOVED"


@pytest.mark.parametrize("path", [LOC, f"{LOC}/EVSE9", f"{LOC}/EVSE1/9"])
async def test_unknown_location_objects_are_2003_404(cpo: Ocpi, path: str) -> None:
    if path != LOC:
        await cpo.call("PUT", LOC, location())
    status, body, _ = await cpo.call("GET", path.replace("LOC1", "NOPE") if path == LOC else path)
    assert (status, body["status_code"]) == (404, 2003)


async def test_evse_put_on_unknown_location_is_2003(cpo: Ocpi) -> None:
    evse = location()["evses"][0]
    status, body, _ = await cpo.call("PUT", "/ocpi/2.2.1/locations/IN/TPC/NOPE/EVSE1", evse)
    assert (status, body["status_code"]) == (404, 2003)


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda b: b.pop("coordinates"), "coordinates"),
        (lambda b: b.update(address="x" * 46), "address"),
        (lambda b: b["evses"][0].update(status="BROKEN"), "evses[0].status"),
        (lambda b: b["evses"][0]["connectors"][0].update(standard="BHARAT"),
         "evses[0].connectors[0].standard"),
        (lambda b: b["evses"][0]["connectors"][0].update(max_voltage="lots"),
         "evses[0].connectors[0].max_voltage"),
        (lambda b: b.update(publish="maybe"), "publish"),
        (lambda b: b["coordinates"].update(latitude="12.9"), "coordinates.latitude"),
        (lambda b: b.update(last_updated="yesterday"), "last_updated"),
        (lambda b: b.update(id="OTHER"), "id"),
        (lambda b: b.update(party_id="ZEO"), "party_id"),
    ],
)
async def test_invalid_location_is_2001_and_changes_nothing(cpo: Ocpi, mutate, field) -> None:
    await cpo.call("PUT", LOC, location())
    bad = location(lu="2026-11-25T11:00:00Z")
    bad["name"] = "Changed"
    mutate(bad)
    status, body, _ = await cpo.call("PUT", LOC, bad)
    assert (status, body["status_code"]) == (200, 2001), body
    assert field in body["status_message"]
    _, body, _ = await cpo.call("GET", LOC)
    assert body["data"]["name"] == "Koramangala Hub"


async def test_malformed_json_is_2001(cpo: Ocpi) -> None:
    status, body, _ = await cpo.call("PUT", LOC, raw=b'{"id": "LOC1",')
    assert (status, body["status_code"]) == (400, 2001)  # not JSON: the transport layer
    assert "JSON" in body["status_message"]


async def test_invalid_patch_is_2001_and_changes_nothing(cpo: Ocpi) -> None:
    await cpo.call("PUT", LOC, location())
    status, body, _ = await cpo.call("PATCH", f"{LOC}/EVSE1",
                                     {"status": "NOPE", "last_updated": "2026-11-25T11:00:00Z"})
    assert (status, body["status_code"]) == (200, 2001)
    assert "status" in body["status_message"]
    _, body, _ = await cpo.call("GET", f"{LOC}/EVSE1")
    assert body["data"]["status"] == "AVAILABLE"


async def test_other_party_objects_are_forbidden(cpo: Ocpi) -> None:
    body = location(cc="IN", pid="STK")
    status, resp, _ = await cpo.call("PUT", "/ocpi/2.2.1/locations/IN/STK/LOC1", body)
    assert (status, resp["status_code"]) == (200, 2000)
    status, resp, _ = await cpo.call("GET", "/ocpi/2.2.1/locations/IN/STK/LOC1")
    assert (status, resp["status_code"]) == (200, 2000)


async def test_second_party_of_the_same_platform_may_write(cpo: Ocpi) -> None:
    status, resp, _ = await cpo.call("PUT", "/ocpi/2.2.1/locations/IN/ZEO/LOC1",
                                     location(pid="ZEO"))
    assert resp["status_code"] == 1000


async def test_ocpi_from_header_must_match_token(cpo: Ocpi) -> None:
    status, resp, _ = await cpo.call("GET", LOC, headers={"OCPI-from-country-code": "NL",
                                                          "OCPI-from-party-id": "ABC"})
    assert (status, resp["status_code"]) == (200, 2000)


async def test_ocpi_to_header_must_be_us(cpo: Ocpi) -> None:
    status, resp, _ = await cpo.call("GET", LOC, headers={"OCPI-to-country-code": "NL",
                                                          "OCPI-to-party-id": "ABC"})
    assert (status, resp["status_code"]) == (200, 2001)


async def test_request_ids_are_echoed_and_generated(cpo: Ocpi) -> None:
    _, _, headers = await cpo.call("GET", "/ocpi/versions", headers={"X-Request-ID": "req-1",
                                                                     "X-Correlation-ID": "cor-1"})
    assert headers["X-Request-ID"] == "req-1" and headers["X-Correlation-ID"] == "cor-1"
    _, _, headers = await cpo.call("GET", "/ocpi/versions")
    assert len(headers["X-Request-ID"]) == 36


async def test_unsupported_method_is_405_in_envelope(cpo: Ocpi) -> None:
    status, body, _ = await cpo.call("DELETE", LOC)
    assert (status, body["status_code"]) == (405, 2000)


async def test_tariff_put_get_delete(cpo: Ocpi) -> None:
    path = "/ocpi/2.2.1/tariffs/IN/TPC/T1"
    status, body, _ = await cpo.call("PUT", path, tariff())
    assert body["status_code"] == 1000
    _, body, _ = await cpo.call("GET", path)
    assert body["data"]["elements"][0]["price_components"][0]["price"] == 16
    status, body, _ = await cpo.call("DELETE", path)
    assert body["status_code"] == 1000
    status, body, _ = await cpo.call("GET", path)
    assert status == 404
    status, body, _ = await cpo.call("DELETE", path)
    assert status == 404


async def test_tariff_without_last_updated_is_refused(cpo: Ocpi) -> None:
    body = tariff()
    del body["last_updated"]
    status, resp, _ = await cpo.call("PUT", "/ocpi/2.2.1/tariffs/IN/TPC/T1", body)
    assert (status, resp["status_code"]) == (200, 2001)
    assert "last_updated" in resp["status_message"]


async def test_session_patch_appends_charging_periods(cpo: Ocpi) -> None:
    path = "/ocpi/2.2.1/sessions/IN/TPC/S1"
    await cpo.call("PUT", path, session())
    for minute, kwh in ((5, 1.5), (10, 3.0)):
        status, body, _ = await cpo.call("PATCH", path, {
            "kwh": kwh, "last_updated": f"2026-11-25T10:{minute:02d}:00Z",
            "charging_periods": [{"start_date_time": f"2026-11-25T10:{minute - 5:02d}:00Z",
                                  "dimensions": [{"type": "ENERGY", "volume": 1.5}]}]})
        assert body["status_code"] == 1000, body
    _, body, _ = await cpo.call("GET", path)
    assert body["data"]["kwh"] == 3.0
    assert len(body["data"]["charging_periods"]) == 2


async def test_session_patch_unknown_is_404(cpo: Ocpi) -> None:
    status, body, _ = await cpo.call("PATCH", "/ocpi/2.2.1/sessions/IN/TPC/NOPE",
                                     {"kwh": 1, "last_updated": "2026-11-25T10:00:00Z"})
    assert (status, body["status_code"]) == (404, 2000)


async def test_cdr_post_location_header_get_and_immutability(cpo: Ocpi) -> None:
    status, body, headers = await cpo.call("POST", "/ocpi/2.2.1/cdrs", cdr())
    assert (status, body["status_code"]) == (201, 1000)
    url = headers["Location"]
    assert url.endswith("/ocpi/2.2.1/cdrs/IN/TPC/CDR1")
    status, body, _ = await cpo.call("GET", url)
    assert body["data"]["total_cost"] == {"excl_vat": 80, "incl_vat": 94.4}
    again = cdr(total_cost={"excl_vat": 1, "incl_vat": 1.18})
    status, body, _ = await cpo.call("POST", "/ocpi/2.2.1/cdrs", again)
    assert (status, body["status_code"]) == (200, 2000)
    _, body, _ = await cpo.call("GET", url)
    assert body["data"]["total_cost"]["excl_vat"] == 80


async def test_credit_cdr_is_stored_beside_the_original(cpo: Ocpi) -> None:
    await cpo.call("POST", "/ocpi/2.2.1/cdrs", cdr())
    credit = cdr("CDR1-C", credit=True, credit_reference_id="CDR1",
                 total_cost={"excl_vat": -80, "incl_vat": -94.4})
    status, body, _ = await cpo.call("POST", "/ocpi/2.2.1/cdrs", credit)
    assert status == 201, body
    _, body, _ = await cpo.call("GET", "/ocpi/2.2.1/cdrs/IN/TPC/CDR1-C")
    assert body["data"]["credit_reference_id"] == "CDR1"
    _, body, _ = await cpo.call("GET", "/ocpi/2.2.1/cdrs/IN/TPC/CDR1")
    assert body["data"]["total_cost"]["excl_vat"] == 80


async def test_credit_cdr_needs_reference(cpo: Ocpi) -> None:
    status, body, _ = await cpo.call("POST", "/ocpi/2.2.1/cdrs", cdr("C2", credit=True))
    assert (status, body["status_code"]) == (200, 2001)


async def test_cdr_of_another_party_is_forbidden(cpo: Ocpi) -> None:
    status, body, _ = await cpo.call("POST", "/ocpi/2.2.1/cdrs", cdr(party_id="STK"))
    assert (status, body["status_code"]) == (200, 2000)


async def test_every_write_emits_a_change_event(cpo: Ocpi, bridge) -> None:
    await cpo.call("PUT", LOC, location())
    await cpo.call("PATCH", f"{LOC}/EVSE1", {"status": "CHARGING",
                                             "last_updated": "2026-11-25T10:05:00Z"})
    await cpo.call("PATCH", f"{LOC}/EVSE1", {"status": "CHARGING",  # stale: no event
                                             "last_updated": "2026-11-25T09:05:00Z"})
    await cpo.call("PUT", "/ocpi/2.2.1/tariffs/IN/TPC/T1", tariff())
    events = await bridge.redis.xrange("obb:ocpi:events")
    fields = [{k.decode(): v.decode() for k, v in e[1].items()} for e in events]
    assert [(f["module"], f["op"]) for f in fields] == [
        ("locations", "put"), ("locations", "patch"), ("tariffs", "put")]
    assert fields[1]["evse_uid"] == "EVSE1" and fields[1]["status"] == "CHARGING"
    assert fields[1]["cc"] == "IN" and fields[1]["pid"] == "TPC" and fields[1]["id"] == "LOC1"


@pytest.mark.parametrize("patch, needle", [
    ({"status": "NOPE", "last_updated": "2026-11-25T11:00:00Z"}, "status"),
    ({"status": "CHARGING", "last_updated": "soon"}, "last_updated"),
    ({"status": None, "last_updated": "2026-11-25T11:00:00Z"}, "status"),
])
async def test_invalid_status_patch_fast_path(cpo: Ocpi, patch, needle) -> None:
    await cpo.call("PUT", LOC, location())
    status, body, _ = await cpo.call("PATCH", f"{LOC}/EVSE1", patch)
    assert (status, body["status_code"]) == (200, 2001), body
    assert needle in body["status_message"]


async def test_status_patch_then_full_patch_keep_each_other(cpo: Ocpi) -> None:
    await cpo.call("PUT", LOC, location())
    await cpo.call("PATCH", f"{LOC}/EVSE1", {"status": "CHARGING",
                                             "last_updated": "2026-11-25T10:01:00Z"})
    await cpo.call("PATCH", f"{LOC}/EVSE1", {"physical_reference": "B7",
                                             "last_updated": "2026-11-25T10:02:00Z"})
    _, body, _ = await cpo.call("GET", f"{LOC}/EVSE1")
    assert (body["data"]["status"], body["data"]["physical_reference"]) == ("CHARGING", "B7")
    assert body["data"]["last_updated"] == "2026-11-25T10:02:00Z"
    status, body, _ = await cpo.call("PATCH", "/ocpi/2.2.1/locations/IN/TPC/LOC1/NOPE",
                                     {"status": "CHARGING", "last_updated": "2026-11-25T10:03:00Z"})
    assert (status, body["status_code"]) == (404, 2003)


async def test_health_and_readiness(own_redis, http) -> None:
    from tests.ocpi.conftest import start_bridge, stop_bridge

    bridge = await start_bridge(own_redis.url)
    try:
        async with http.get(f"{bridge.url}/healthz") as r:
            assert (r.status, (await r.json())["status"]) == (200, "ok")
        async with http.get(f"{bridge.url}/readyz") as r:
            assert r.status == 200
        own_redis.stop()
        async with http.get(f"{bridge.url}/readyz") as r:
            assert r.status == 503 and (await r.json())["status"] == "unavailable"
        async with http.get(f"{bridge.url}/healthz") as r:
            assert r.status == 200  # the process is up even when Redis is not
    finally:
        own_redis.start()
        await stop_bridge(bridge)
