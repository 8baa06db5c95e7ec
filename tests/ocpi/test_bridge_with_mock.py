"""The bridge and the bundled mock CPO, both real servers on 127.0.0.1 over a real
Redis: handshake, network push, our tokens sender and commands sender."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from bridge.ocpi.commands import send_command
from bridge.ocpi.deps import OcpiDeps
from bridge.ocpi.models import AllowedType, CommandType, LocationReferences, Token
from bridge.ocpi.tokens import push_token
from bridge.store.credentials import CredentialsStore
from bridge.store.ocpi_store import OcpiStore
from ocpi_mock.app import create_app
from ocpi_mock.config import MockConfig
from tests.conftest import ROOT, free_port
from tests.ocpi.conftest import Bridge, Ocpi

FAST = MockConfig(network=ROOT / "config" / "networks" / "india.toml", speed=3600,
                  tick_seconds=180, push_attempts=3, push_backoff=0.02, push_timeout=5,
                  command_timeout=1, start_delay_seconds=30, park_after_full_seconds=360)


@pytest.fixture
async def mock_url() -> AsyncIterator[str]:
    port = free_port()
    cfg = replace(FAST, port=port, public_url=f"http://127.0.0.1:{port}")
    runner = web.AppRunner(create_app(cfg))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield cfg.base_url
    await runner.cleanup()


async def connect(bridge: Bridge, mock_url: str, http: aiohttp.ClientSession) -> None:
    token_a = await bridge.invite("IN", "TPC", ("IN", "ZEO"), ("IN", "STK"))
    async with http.post(f"{mock_url}/admin/connect",
                         data=orjson.dumps({"versions_url": f"{bridge.url}/ocpi/versions",
                                            "token": token_a})) as resp:
        assert resp.status == 200, await resp.text()


def deps_for(bridge: Bridge) -> OcpiDeps:
    return OcpiDeps(settings=bridge.settings, store=OcpiStore(bridge.redis),
                    creds=CredentialsStore(bridge.redis))


def driver_token(uid: str = "ORDER1TOKEN", valid: bool = True) -> Token:
    return Token.model_validate({
        "country_code": "IN", "party_id": "BKN", "uid": uid, "type": "APP_USER",
        "contract_id": f"IN-BKN-{uid[:8]}", "issuer": "Open Charge eMSP", "valid": valid,
        "whitelist": "NEVER", "last_updated": datetime.now(UTC)})


async def wait_for(predicate: Any, seconds: float = 10) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_mock_registers_and_pushes_its_network(bridge: Bridge, mock_url: str,
                                                     http: aiohttp.ClientSession) -> None:
    await connect(bridge, mock_url, http)
    conns = await CredentialsStore(bridge.redis).connections()
    assert conns[0].parties == {("IN", "TPC"), ("IN", "ZEO"), ("IN", "STK")}
    assert await bridge.redis.zcard("obb:ocpi:idx:locations") >= 12
    assert await bridge.redis.zcard("obb:ocpi:idx:tariffs") >= 3


async def test_tokens_sender_list_and_authorize(bridge: Bridge, cpo, http) -> None:
    deps = deps_for(bridge)
    for i in range(3):
        await deps.tokens.put(driver_token(f"TOK{i}"), location=LocationReferences(
            location_id="LOC1", evse_uids=["EVSE1"]), authorization_reference=f"REF{i}")
    await deps.tokens.put(driver_token("BLOCKED1"), allowed=AllowedType.BLOCKED)
    status, body, headers = await cpo.call("GET", "/ocpi/2.2.1/tokens?limit=2")
    assert status == 200 and len(body["data"]) == 2
    assert headers["X-Total-Count"] == "4" and 'rel="next"' in headers["Link"]
    status, body, _ = await cpo.call("GET", headers["Link"][1:headers["Link"].index(">")])
    assert len(body["data"]) == 2

    async def authorize(uid: str, loc: Any = None, ttype: str = "APP_USER") -> tuple[int, Any]:
        status, body, _ = await cpo.call("POST", f"/ocpi/2.2.1/tokens/{uid}/authorize?type={ttype}",
                                         loc)
        return status, body

    status, body = await authorize("TOK1", {"location_id": "LOC1", "evse_uids": ["EVSE1"]})
    assert body["data"]["allowed"] == "ALLOWED" and body["data"]["authorization_reference"] == "REF1"
    status, body = await authorize("TOK1", {"location_id": "LOC2"})
    assert body["data"]["allowed"] == "NOT_ALLOWED"
    assert "authorization_reference" not in body["data"]
    status, body = await authorize("TOK1", {"location_id": "LOC1", "evse_uids": ["EVSE2"]})
    assert body["data"]["allowed"] == "NOT_ALLOWED"
    status, body = await authorize("BLOCKED1")
    assert body["data"]["allowed"] == "BLOCKED"
    status, body = await authorize("NOPE")
    assert (status, body["status_code"]) == (200, 2004)
    status, body = await authorize("TOK1", ttype="CARD")
    assert (status, body["status_code"]) == (200, 2001)
    status, body = await authorize("TOK1", {"evse_uids": ["x"]})
    assert (status, body["status_code"]) == (200, 2001)
    await deps.close()


async def test_push_token_and_start_session_with_the_mock(bridge: Bridge, mock_url: str,
                                                          http: aiohttp.ClientSession) -> None:
    await connect(bridge, mock_url, http)
    deps = deps_for(bridge)
    try:
        conn = (await deps.creds.connections())[0]
        token = driver_token()
        await deps.tokens.put(token, location=LocationReferences(location_id="TPC-BLR-KRM"),
                              authorization_reference="ORDER1")
        await push_token(deps, conn, token, ("IN", "TPC"))
        async with http.get(f"{mock_url}/admin/state") as resp:
            state = await resp.json()
        assert state["tokens"] == 1

        # find the QR demo EVSE's location
        loc = await wait_for(lambda: _find_evse(bridge, "IN*TPC*E1001*1"))
        uid, response = await send_command(
            deps, conn, ("IN", "TPC"), CommandType.START_SESSION,
            {"token": token.model_dump(mode="json", exclude_none=True), "location_id": loc[0],
             "evse_uid": loc[1], "authorization_reference": "ORDER1"}, order_id="ORDER1")
        assert response.result.value == "ACCEPTED"
        result = await wait_for(lambda: deps.tokens.get_command(uid))
        result = await wait_for(lambda: _result(deps, uid))
        assert result["result"] == "ACCEPTED"
        events = await bridge.redis.xrange("obb:ocpi:events")
        kinds = [(e[1][b"module"], e[1][b"op"]) for e in events]
        assert (b"commands", b"result") in kinds
        # the mock started a session and pushes it to us with our reference
        session = await wait_for(lambda: _session_with_ref(bridge, "ORDER1"))
        assert session["status"] in ("PENDING", "ACTIVE")
    finally:
        await deps.close()


async def test_command_result_for_unknown_command_is_refused(cpo: Ocpi) -> None:
    status, body, _ = await cpo.call("POST", "/ocpi/2.2.1/commands/START_SESSION/nope",
                                     {"result": "ACCEPTED"})
    assert (status, body["status_code"]) == (404, 2000)
    status, body, _ = await cpo.call("POST", "/ocpi/2.2.1/commands/FLY/nope", {"result": "ACCEPTED"})
    assert (status, body["status_code"]) == (200, 2001)


async def _find_evse(bridge: Bridge, evse_id: str) -> tuple[str, str] | None:
    store = OcpiStore(bridge.redis)
    for member in await bridge.redis.zrange("obb:ocpi:idx:locations", 0, -1):
        cc, pid, lid = member.decode().split(":", 2)
        loc = await store.get_location(cc, pid, lid)
        for evse in (loc or {}).get("evses", []):
            if evse.get("evse_id") == evse_id:
                return loc["id"], evse["uid"]
    return None


async def _result(deps: OcpiDeps, uid: str) -> dict[str, Any] | None:
    cmd = await deps.tokens.get_command(uid)
    return orjson.loads(cmd["result"]) if cmd and cmd.get("result") else None


async def _session_with_ref(bridge: Bridge, ref: str) -> dict[str, Any] | None:
    store = OcpiStore(bridge.redis)
    for member in await bridge.redis.zrange("obb:ocpi:idx:sessions", 0, -1):
        cc, pid, sid = member.decode().split(":", 2)
        s = await store.get("sessions", cc, pid, sid)
        if s and s.data.get("authorization_reference") == ref:
            return s.data
    return None


async def test_sync_pulls_the_mock_cpo_network(bridge: Bridge, mock_url: str,
                                               http: aiohttp.ClientSession) -> None:
    """After an outage: `bridge sync` reads the CPO's senders (paginated) and fills the store."""
    from bridge.ocpi.sync import sync

    await connect(bridge, mock_url, http)
    total = await bridge.redis.zcard("obb:ocpi:idx:locations")
    store = OcpiStore(bridge.redis)
    assert await store.delete("locations", "IN", "TPC", "TPC-HWY-MDR")
    assert await bridge.redis.zcard("obb:ocpi:idx:locations") == total - 1
    deps = deps_for(bridge)
    try:
        reports = await sync(deps, datetime.now(UTC), ("IN", "TPC"), ("locations", "tariffs"),
                             full=True)
    finally:
        await deps.close()
    by = {r.module: r for r in reports}
    assert by["locations"].written == 1 and by["locations"].invalid == 0, by
    assert by["locations"].unchanged >= 4
    assert await bridge.redis.zcard("obb:ocpi:idx:locations") == total
