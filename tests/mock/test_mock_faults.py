"""Every fault of the mock, scripted."""

from __future__ import annotations

import itertools
import time
from decimal import Decimal

from ocpi_mock.cli import main as cli_main
from tests.mock.conftest import MockServer
from tests.mock.emsp_double import EmspDouble, token
from tests.mock.test_mock_sessions import SMALL_CAR, command, push_token, result_of


async def start(cpo: MockServer, emsp: EmspDouble, evse: str = "IN*TPC*E1001*1",
                car: dict | None = None) -> str:
    await push_token(cpo, emsp, token("DRV"))
    status, data = await cpo.admin("POST", "/admin/sessions/start", {
        "evse": evse, "token_uid": "DRV", "token_type": "APP_USER", "car": car or SMALL_CAR})
    assert status == 200, data
    return data["session_id"]


async def test_power_cut_then_resume(connected: MockServer, emsp: EmspDouble) -> None:
    sid = await start(connected, emsp, car={**SMALL_CAR, "target_soc": 0.9})
    await emsp.wait(lambda: emsp.sessions.get(sid, {}).get("status") == "ACTIVE")
    await emsp.wait(lambda: any(s == sid for s, _ in emsp.session_patches))
    status, _ = await connected.admin("POST", "/admin/faults/power-cut", {
        "location_id": "TPC-BLR-KRM", "duration": 1800, "outcome": "resume"})
    assert status == 200
    assert set(emsp.evse_statuses("TPC-KRM-2")) == {"UNKNOWN"}
    assert emsp.evse_statuses("TPC-KRM-1")[-1] == "UNKNOWN"
    n = len(emsp.session_patches)
    await connected.mock.clock.sleep(1200)  # well inside the cut: no updates
    assert len(emsp.session_patches) == n
    await emsp.wait(lambda: emsp.evse_statuses("TPC-KRM-2")[-1] == "AVAILABLE")
    assert emsp.evse_statuses("TPC-KRM-1")[-1] == "CHARGING"
    await emsp.wait(lambda: len(emsp.cdrs) == 1)
    assert Decimal(str(emsp.cdrs[0]["total_energy"])) == Decimal("16")  # 50% -> 90% of 40 kWh


async def test_power_cut_then_end(connected: MockServer, emsp: EmspDouble) -> None:
    sid = await start(connected, emsp, car={**SMALL_CAR, "target_soc": 0.95})
    await emsp.wait(lambda: any(s == sid and p.get("kwh", 0) > 0
                                for s, p in emsp.session_patches))
    await connected.admin("POST", "/admin/faults/power-cut", {
        "location_id": "TPC-BLR-KRM", "duration": 900, "outcome": "end"})
    await emsp.wait(lambda: len(emsp.cdrs) == 1)
    cdr = emsp.cdrs[0]
    assert cdr["remark"] == "power cut"
    assert 0 < Decimal(str(cdr["total_energy"])) < 18  # less than 50% -> 95% of 40 kWh
    assert emsp.sessions[sid]["status"] == "COMPLETED"
    assert emsp.evse_statuses("TPC-KRM-1")[-1] == "AVAILABLE"


async def test_offline_charger_late_bigger_cdr(connected: MockServer, emsp: EmspDouble) -> None:
    sid = await start(connected, emsp, car={**SMALL_CAR, "target_soc": 0.8})
    await emsp.wait(lambda: any(s == sid and p.get("kwh", 0) > 0
                                for s, p in emsp.session_patches))
    await connected.admin("POST", "/admin/faults/offline-charger",
                          {"evse": "IN*TPC*E1001*1", "cdr_delay": 1800})
    last_kwh = max(Decimal(str(p["kwh"])) for s, p in emsp.session_patches if s == sid)
    n = len(emsp.session_patches)
    # the eMSP's stop does not reach the charger
    resp = await command(connected, emsp, "STOP_SESSION", "stop", {"session_id": sid})
    assert resp["result"] == "ACCEPTED" and await result_of(emsp, "stop") == "TIMEOUT"
    await emsp.wait(lambda: len(emsp.cdrs) == 1)
    assert len(emsp.session_patches) == n  # no PATCH while offline
    assert Decimal(str(emsp.cdrs[0]["total_energy"])) > last_kwh
    assert emsp.sessions[sid]["status"] == "COMPLETED"  # late full PUT


async def test_command_faults(connected: MockServer, emsp: EmspDouble) -> None:
    await push_token(connected, emsp, token("T"))
    body = {"location_id": "TPC-BLR-KRM", "evse_uid": "TPC-KRM-1", "connector_id": "1"}
    await connected.admin("POST", "/admin/faults/command", {"mode": "reject"})
    assert (await command(connected, emsp, "UNLOCK_CONNECTOR", "a", body))["result"] == "REJECTED"
    await connected.admin("POST", "/admin/faults/command", {"mode": "no-result"})
    assert (await command(connected, emsp, "UNLOCK_CONNECTOR", "b", body))["result"] == "ACCEPTED"
    await connected.admin("POST", "/admin/faults/command",
                          {"mode": "timeout", "command": "UNLOCK_CONNECTOR"})
    began = time.monotonic()
    assert (await command(connected, emsp, "UNLOCK_CONNECTOR", "c", body))["result"] == "ACCEPTED"
    assert await result_of(emsp, "c") == "TIMEOUT"
    assert time.monotonic() - began >= 0.9  # after the announced 1 s timeout
    assert "b" not in emsp.command_results  # never arrives
    await connected.admin("POST", "/admin/faults/command", {"mode": "fail"})
    await command(connected, emsp, "UNLOCK_CONNECTOR", "d", body)
    assert await result_of(emsp, "d") == "FAILED"
    await command(connected, emsp, "UNLOCK_CONNECTOR", "e", body)  # faults used up
    assert await result_of(emsp, "e") == "ACCEPTED"


async def test_duplicate_and_out_of_order_patches(connected: MockServer,
                                                  emsp: EmspDouble) -> None:
    await connected.admin("POST", "/admin/faults/duplicate-patches", {"count": 1})
    await connected.admin("POST", "/admin/faults/out-of-order-patches", {"count": 1})
    sid = await start(connected, emsp)
    await emsp.wait(lambda: len(emsp.cdrs) == 1)
    bodies = [p for s, p in emsp.session_patches if s == sid]
    stamps = [p["last_updated"] for p in bodies]
    assert any(later < earlier for earlier, later in itertools.pairwise(stamps))
    assert any(a == b for a, b in itertools.pairwise(bodies))  # exact duplicate


async def test_unknown_session_patch_and_duplicate_cdr(connected: MockServer,
                                                       emsp: EmspDouble) -> None:
    status, data = await connected.admin("POST", "/admin/faults/unknown-session-patch", {})
    assert status == 200 and data["accepted_by_emsp"] is False  # the double answers 404
    assert emsp.session_patches[-1][0] == data["session_id"]
    await connected.admin("POST", "/admin/faults/duplicate-cdr", {})
    sid = await start(connected, emsp)
    await emsp.wait(lambda: len(emsp.cdrs) == 2)
    assert emsp.cdrs[0] == emsp.cdrs[1]
    await connected.admin("POST", "/admin/faults/duplicate-cdr", {"session_id": sid})
    assert len(emsp.cdrs) == 3


async def test_slow_emsp_and_retries(connected: MockServer, emsp: EmspDouble) -> None:
    emsp.fail_next = 2  # two 503s, then fine: the pusher retries with backoff
    status, data = await connected.admin("POST", "/admin/push")
    assert status == 200 and connected.mock.push.failed == 0
    await connected.admin("POST", "/admin/faults/slow-emsp", {"delay": 0.3})
    began = time.monotonic()
    await connected.admin("POST", "/admin/faults/unknown-session-patch", {})
    assert time.monotonic() - began >= 0.3


async def test_slow_mock(connected: MockServer, emsp: EmspDouble) -> None:
    await connected.admin("POST", "/admin/faults/slow-mock", {"delay": 0.3})
    client = connected.ocpi(emsp.token_b or "")
    began = time.monotonic()
    await client.get(f"{connected.url}/ocpi/versions")
    assert time.monotonic() - began >= 0.3
    status, _ = await connected.admin("DELETE", "/admin/faults")
    assert status == 200 and connected.mock.faults.mock_delay == 0


async def test_cli_commands_against_running_mock(connected: MockServer, capsys) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    loop = asyncio.get_running_loop()
    code = await loop.run_in_executor(None, cli_main, [
        "fault", "slow-emsp", "delay=0.01", "--mock-url", connected.url])
    assert code == 0 and connected.mock.faults.emsp_delay == 0.01
    code = await loop.run_in_executor(None, cli_main, ["invite", "--mock-url", connected.url])
    out = capsys.readouterr().out
    assert code == 0 and out.split()[-1] in connected.mock.state.invites
