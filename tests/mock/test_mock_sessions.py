"""Tokens, commands, a full session with its CDR, reservations."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from bridge.ocpi.models import CDR, Session
from ocpi_mock import pricing
from ocpi_mock.simulator import Car, charge_power, tick
from tests.mock.conftest import MockServer
from tests.mock.emsp_double import EmspDouble, token

SMALL_CAR = {"battery_kwh": 40, "soc": 0.5, "target_soc": 0.6, "max_kw": 60}


async def command(cpo: MockServer, emsp: EmspDouble, kind: str, ref: str,
                  body: dict) -> dict:
    client = cpo.ocpi(emsp.token_b or "")
    return await client.post(f"{cpo.url}/ocpi/2.2.1/commands/{kind}",
                             {"response_url": emsp.response_url(ref), **body})


async def result_of(emsp: EmspDouble, ref: str) -> str:
    await emsp.wait(lambda: ref in emsp.command_results)
    return emsp.command_results[ref][0]["result"]


async def push_token(cpo: MockServer, emsp: EmspDouble, tok: dict) -> None:
    client = cpo.ocpi(emsp.token_b or "")
    await client.put(f"{cpo.url}/ocpi/2.2.1/tokens/IN/EMS/{tok['uid']}", tok)


# ----------------------------------------------------------------------------- pure


@pytest.mark.parametrize(("soc", "limit", "expected"), [
    ("0.2", 60, "60"), ("0.79", 60, "60"), ("0.8", 60, "60"), ("0.9", 60, "33"),
    ("1.0", 60, "6"), ("0.5", 7.4, "7.4")])
def test_power_curve(soc: str, limit: float, expected: str) -> None:
    assert charge_power(Decimal(soc), Decimal(str(limit))) == Decimal(expected)


def test_tick_stops_at_target() -> None:
    car = Car(Decimal(40), Decimal("0.59"), Decimal("0.6"), Decimal(60))
    energy, power = tick(car, Decimal(120), 180)
    assert energy == Decimal("0.4") and car.soc == Decimal("0.6") and power == Decimal("8.00")
    assert tick(car, Decimal(120), 180) == (Decimal(0), Decimal(0))


# ----------------------------------------------------------------------------- tokens


async def test_token_receiver_put_patch_get(connected: MockServer, emsp: EmspDouble) -> None:
    await push_token(connected, emsp, token("TOK1"))
    client = connected.ocpi(emsp.token_b or "")
    url = f"{connected.url}/ocpi/2.2.1/tokens/IN/EMS/TOK1"
    await client.patch(url, {"valid": False, "last_updated": "2024-01-02T00:00:00Z"})
    assert (await client.get(url))["valid"] is False
    await client.patch(url, {"valid": True, "last_updated": "2023-01-02T00:00:00Z"})  # older
    assert (await client.get(url))["valid"] is False


@pytest.mark.parametrize(("setup", "expected_status"), [
    ("known", 200), ("realtime-allowed", 200), ("realtime-blocked", 403), ("unknown", 403),
    ("known-invalid", 403)])
async def test_driver_rfid_authorization(connected: MockServer, emsp: EmspDouble, setup: str,
                                         expected_status: int) -> None:
    if setup == "known":
        await push_token(connected, emsp, token("CARD"))
    elif setup == "known-invalid":
        await push_token(connected, emsp, token("CARD", valid=False))
    elif setup == "realtime-allowed":
        emsp.authorize["CARD"] = "ALLOWED"
    elif setup == "realtime-blocked":
        emsp.authorize["CARD"] = "BLOCKED"
    status, data = await connected.admin("POST", "/admin/sessions/start", {
        "evse": "IN*TPC*E1001*1", "token_uid": "CARD", "token_type": "APP_USER",
        "car": SMALL_CAR})
    assert status == expected_status, data
    if status == 200:
        sid = data["session_id"]
        assert data["auth_method"] == ("WHITELIST" if setup == "known" else "AUTH_REQUEST")
        await emsp.wait(lambda: sid in emsp.sessions)
        assert emsp.sessions[sid]["location_id"] == "TPC-BLR-KRM"
    else:
        assert connected.mock.live == {}
    if setup.startswith("realtime") or setup == "unknown":
        assert emsp.authorize_calls == ["CARD"]


# ----------------------------------------------------------------------------- commands


async def test_full_session_start_to_cdr(connected: MockServer, emsp: EmspDouble) -> None:
    emsp.authorize["APP1"] = "ALLOWED"
    await connected.admin("POST", "/admin/next-car", SMALL_CAR)
    resp = await command(connected, emsp, "START_SESSION", "start-1", {
        "token": token("APP1", whitelist="NEVER"), "location_id": "TPC-BLR-KRM",
        "evse_uid": "TPC-KRM-1", "connector_id": "1", "authorization_reference": "ORDER-42"})
    assert resp == {"result": "ACCEPTED", "timeout": 1}
    assert await result_of(emsp, "start-1") == "ACCEPTED"
    await emsp.wait(lambda: len(emsp.cdrs) == 1)
    # Session PUT PENDING then ACTIVE, PATCHes with growing kwh, then COMPLETED
    puts = [r.body for r in emsp.log if r.method == "PUT" and "/sessions/" in r.path]
    assert [p["status"] for p in puts] == ["PENDING", "ACTIVE"]
    sid = puts[0]["id"]
    assert all(p["authorization_reference"] == "AUTH-REF-RT" for p in puts)
    patches = [b for s, b in emsp.session_patches if s == sid]
    kwhs = [Decimal(str(p["kwh"])) for p in patches]
    assert kwhs == sorted(kwhs) and kwhs[-1] > 0
    assert patches[-1]["status"] == "COMPLETED"
    periods = [cp for p in patches for cp in p.get("charging_periods", [])]
    dims = {d["type"] for cp in periods for d in cp["dimensions"]}
    assert {"ENERGY", "TIME", "PARKING_TIME", "POWER"} <= dims
    assert "total_cost" in patches[1]
    # EVSE: CHARGING then AVAILABLE
    assert emsp.evse_statuses("TPC-KRM-1")[:1] == ["CHARGING"]
    assert emsp.evse_statuses("TPC-KRM-1")[-1] == "AVAILABLE"
    # the CDR: complete and priced exactly by the tariff
    cdr = CDR.model_validate(emsp.cdrs[0])
    assert cdr.session_id == sid and cdr.authorization_reference == "AUTH-REF-RT"
    assert cdr.cdr_location.evse_id == "IN*TPC*E1001*1"
    assert cdr.tariffs and cdr.tariffs[0].id == "TPC-DC"
    assert cdr.total_energy == Decimal("4") == Decimal(str(kwhs[-1]))
    assert cdr.total_parking_time and cdr.total_parking_time > 0
    assert cdr.total_time == Decimal((cdr.end_date_time - cdr.start_date_time).seconds) / 3600
    again = pricing.price(cdr.tariffs[0], pricing.periods_from_charging_periods(
        cdr.charging_periods, cdr.end_date_time), "Asia/Kolkata")
    assert cdr.total_cost.excl_vat == pricing.round_money(again.total.excl)
    assert cdr.total_cost.incl_vat == pricing.round_money(again.total.incl)
    assert cdr.total_energy_cost and cdr.total_energy_cost.excl_vat == \
        pricing.round_money(again.energy.excl)
    assert cdr.total_fixed_cost and cdr.total_fixed_cost.excl_vat == Decimal(30)
    # sender interface has it too
    client = connected.ocpi(emsp.token_b or "")
    sessions = await client.get(f"{connected.url}/ocpi/2.2.1/sessions")
    assert Session.model_validate(sessions[0]).status == "COMPLETED"
    assert len(await client.get(f"{connected.url}/ocpi/2.2.1/cdrs")) == 1


async def test_start_rejected_tokens(connected: MockServer, emsp: EmspDouble) -> None:
    emsp.authorize["BLK"] = "BLOCKED"
    cases = {"r-unknown": token("NOPE", whitelist="NEVER"),
             "r-blocked": token("BLK", whitelist="NEVER"),
             "r-invalid": token("INV", valid=False)}
    for ref, tok in cases.items():
        resp = await command(connected, emsp, "START_SESSION", ref,
                             {"token": tok, "location_id": "TPC-BLR-KRM", "evse_uid": "TPC-KRM-1"})
        assert resp["result"] == "ACCEPTED"
        assert await result_of(emsp, ref) == "REJECTED"
    assert connected.mock.live == {} and emsp.sessions == {}


async def test_stop_session_and_unknown_session(connected: MockServer, emsp: EmspDouble) -> None:
    await connected.admin("POST", "/admin/next-car", {**SMALL_CAR, "target_soc": 1.0})
    await push_token(connected, emsp, token("APP2"))
    await command(connected, emsp, "START_SESSION", "s", {
        "token": token("APP2"), "location_id": "ZEO-BLR-IND", "evse_uid": "ZEO-IND-1"})
    assert await result_of(emsp, "s") == "ACCEPTED"
    await emsp.wait(lambda: any(s.get("status") == "ACTIVE" for s in emsp.sessions.values()))
    sid = next(iter(emsp.sessions))
    resp = await command(connected, emsp, "STOP_SESSION", "stop", {"session_id": sid})
    assert resp["result"] == "ACCEPTED"
    assert await result_of(emsp, "stop") == "ACCEPTED"
    await emsp.wait(lambda: len(emsp.cdrs) == 1)
    assert emsp.cdrs[0]["remark"] == "stopped by the eMSP"
    resp = await command(connected, emsp, "STOP_SESSION", "stop2", {"session_id": sid})
    assert resp["result"] == "UNKNOWN_SESSION"


async def test_unlock_and_not_supported(connected: MockServer, emsp: EmspDouble) -> None:
    ok = await command(connected, emsp, "UNLOCK_CONNECTOR", "u1", {
        "location_id": "TPC-BLR-KRM", "evse_uid": "TPC-KRM-1", "connector_id": "1"})
    assert ok["result"] == "ACCEPTED" and await result_of(emsp, "u1") == "ACCEPTED"
    no = await command(connected, emsp, "UNLOCK_CONNECTOR", "u2", {
        "location_id": "TPC-BLR-KRM", "evse_uid": "TPC-KRM-2", "connector_id": "1"})
    assert no["result"] == "NOT_SUPPORTED"
    bad = await command(connected, emsp, "START_SESSION", "x", {
        "token": token("A"), "location_id": "NOWHERE"})
    assert bad["result"] == "REJECTED"
    nores = await command(connected, emsp, "RESERVE_NOW", "x2", {
        "token": token("A"), "location_id": "TPC-BLR-KRM", "evse_uid": "TPC-KRM-1",
        "reservation_id": "R0", "expiry_date": "2999-01-01T00:00:00Z"})
    assert nores["result"] == "NOT_SUPPORTED"


# ----------------------------------------------------------------------------- reservations


async def test_reservation_hold_only_owner_then_expiry(connected: MockServer,
                                                       emsp: EmspDouble) -> None:
    mock = connected.mock
    await push_token(connected, emsp, token("OWNER"))
    await push_token(connected, emsp, token("OTHER"))
    expiry = mock.clock.now() + timedelta(minutes=30)  # 0.5 s of real time at x3600
    resp = await command(connected, emsp, "RESERVE_NOW", "res", {
        "token": token("OWNER"), "location_id": "TPC-HWY-MDR", "evse_uid": "TPC-MDR-1",
        "reservation_id": "R1", "expiry_date": expiry.isoformat(),
        "authorization_reference": "ORDER-7"})
    assert resp["result"] == "ACCEPTED" and await result_of(emsp, "res") == "ACCEPTED"
    await emsp.wait(lambda: emsp.evse_statuses("TPC-MDR-1") == ["RESERVED"])
    other = await command(connected, emsp, "START_SESSION", "other", {
        "token": token("OTHER"), "location_id": "TPC-HWY-MDR", "evse_uid": "TPC-MDR-1"})
    assert other["result"] == "ACCEPTED" and await result_of(emsp, "other") == "EVSE_OCCUPIED"
    await emsp.wait(lambda: emsp.evse_statuses("TPC-MDR-1")[-1] == "AVAILABLE", limit=5)
    assert "R1" not in mock.state.reservations


async def test_reservation_then_owner_starts(connected: MockServer, emsp: EmspDouble) -> None:
    mock = connected.mock
    await push_token(connected, emsp, token("OWNER"))
    await connected.admin("POST", "/admin/next-car", SMALL_CAR)
    expiry = mock.clock.now() + timedelta(hours=5)
    await command(connected, emsp, "RESERVE_NOW", "res", {
        "token": token("OWNER"), "location_id": "TPC-HWY-MDR", "evse_uid": "TPC-MDR-1",
        "reservation_id": "R2", "expiry_date": expiry.isoformat(),
        "authorization_reference": "ORDER-8"})
    assert await result_of(emsp, "res") == "ACCEPTED"
    await command(connected, emsp, "START_SESSION", "go", {
        "token": token("OWNER"), "location_id": "TPC-HWY-MDR", "evse_uid": "TPC-MDR-1",
        "authorization_reference": "ORDER-8"})
    assert await result_of(emsp, "go") == "ACCEPTED"
    await emsp.wait(lambda: len(emsp.cdrs) == 1)
    assert emsp.cdrs[0]["authorization_reference"] == "ORDER-8"
    assert "R2" not in mock.state.reservations


async def test_cancel_reservation(connected: MockServer, emsp: EmspDouble) -> None:
    await push_token(connected, emsp, token("OWNER"))
    expiry = connected.mock.clock.now() + timedelta(hours=5)
    await command(connected, emsp, "RESERVE_NOW", "res", {
        "token": token("OWNER"), "location_id": "STK-BLR-HBL", "reservation_id": "R3",
        "expiry_date": expiry.isoformat()})
    assert await result_of(emsp, "res") == "ACCEPTED"
    await command(connected, emsp, "CANCEL_RESERVATION", "cancel", {"reservation_id": "R3"})
    assert await result_of(emsp, "cancel") == "CANCELED_RESERVATION"
    await emsp.wait(lambda: emsp.evse_statuses("STK-HBL-1") == ["RESERVED", "AVAILABLE"])
    await command(connected, emsp, "CANCEL_RESERVATION", "cancel2", {"reservation_id": "R3"})
    assert await result_of(emsp, "cancel2") == "UNKNOWN_RESERVATION"
