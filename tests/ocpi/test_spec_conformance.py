"""What an independent OCPI 2.2.1 implementation found (issues 11 and 12), one test each:
registration without gaps, the spec's status codes, strict types, transport details.

Real servers on 127.0.0.1 over a real Redis; each test failed before its fix.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.app import build_app
from bridge.ocpi.commands import send_command
from bridge.ocpi.credentials import RegistrationFailed, register_with
from bridge.ocpi.deps import OcpiDeps
from bridge.ocpi.errors import OcpiClientError
from bridge.ocpi.models import CommandType
from bridge.ocpi.tokens import push_token
from bridge.store.credentials import Connection, CredentialsStore
from bridge.store.ocpi_store import OcpiStore
from ocpi_mock.app import create_app
from tests.conftest import free_port
from tests.ocpi.conftest import (
    Bridge,
    Ocpi,
    cdr,
    location,
    make_settings,
    register_cpo,
    start_bridge,
    stop_bridge,
)
from tests.ocpi.cpo_double import CpoDouble
from tests.ocpi.test_bridge_with_mock import FAST, driver_token

LOC = "/ocpi/2.2.1/locations/IN/TPC/LOC1"


def deps_for(bridge: Bridge) -> OcpiDeps:
    return OcpiDeps(settings=bridge.settings, store=OcpiStore(bridge.redis),
                    creds=CredentialsStore(bridge.redis))


# ------------------------------------------------------------------ 1. no 403 window


async def test_no_refusal_window_after_bridge_register(bridge: Bridge, cpo_double: CpoDouble,
                                                       http: aiohttp.ClientSession) -> None:
    """The CPO reads our versions with token B during its POST (the serve process then
    knew token B without parties) and pushes right after: it must be accepted."""
    cpo_double.verify_during_post = True
    deps = deps_for(bridge)  # the CLI's process; the bridge app is another one
    try:
        await register_with(deps, f"{cpo_double.base_url}/ocpi/versions", cpo_double.token_a)
    finally:
        await deps.close()
    assert cpo_double.verified == [200]
    cpo = Ocpi(bridge.url, cpo_double.bridge_token, http)
    status, body, _ = await cpo.call("PUT", LOC, location())
    assert (status, body["status_code"]) == (201, 1000), body


async def test_a_cached_principal_never_refuses_a_registered_party(
        bridge: Bridge, cpo_double: CpoDouble, http: aiohttp.ClientSession) -> None:
    """Another process adds a party to the connection: the serve process, which has
    the token cached without it, checks Redis before refusing."""
    cpo = await register_cpo(bridge, cpo_double, http)
    assert (await cpo.call("PUT", LOC, location()))[1]["status_code"] == 1000  # now cached
    store = CredentialsStore(bridge.redis)
    conn = next(c for c in await store.connections())
    conn.roles.append({"role": "CPO", "country_code": "IN", "party_id": "NEW",
                       "business_details": {"name": "new"}})
    await store.save_connection(conn, None)
    status, body, _ = await cpo.call("PUT", "/ocpi/2.2.1/locations/IN/NEW/L9",
                                     location("L9", pid="NEW"))
    assert body["status_code"] == 1000, body


# ------------------------------------------------------------------ 2. all or nothing


async def test_bridge_register_on_a_taken_party_leaves_nothing(
        bridge: Bridge, cpo_double: CpoDouble, http: aiohttp.ClientSession) -> None:
    other = CpoDouble(parties=[("IN", "TPC")])
    port = free_port()
    other.base_url = f"http://127.0.0.1:{port}"
    runner = web.AppRunner(other.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await register_cpo(bridge, other, http)  # IN-TPC is another platform's
        before = await CredentialsStore(bridge.redis).connections()
        deps = deps_for(bridge)
        try:
            with pytest.raises(RegistrationFailed, match="IN-TPC is already registered"):
                await register_with(deps, f"{cpo_double.base_url}/ocpi/versions",
                                    cpo_double.token_a)
        finally:
            await deps.close()
        after = await CredentialsStore(bridge.redis).connections()
        assert [c.id for c in after] == [c.id for c in before]
        assert cpo_double.deleted == 1  # the CPO's side was undone too
        # the token B we had handed out is gone
        status, _, _ = await Ocpi(bridge.url, cpo_double.bridge_token, http).call(
            "GET", "/ocpi/versions")
        assert status == 401
    finally:
        await runner.cleanup()


async def test_bridge_register_cli_says_why_in_one_line(
        bridge: Bridge, cpo_double: CpoDouble, http: aiohttp.ClientSession,
        tmp_path: Any, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.cli import main

    # in this process beside a live bridge: keep the CLI's logging set-up out of it
    monkeypatch.setattr("bridge.cli.configure_logging", lambda *_a, **_k: None)
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(f'[server]\nredis_url = "{bridge.settings.redis_url}"\n'
                   '[ocpi]\nallow_loopback_urls = true\n')
    loop = asyncio.get_running_loop()
    code = await loop.run_in_executor(None, main, [
        "--config", str(cfg), "register", f"{cpo_double.base_url}/ocpi/versions", "wrong"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "401" in err, err
    assert await CredentialsStore(bridge.redis).connections() == []


# ------------------------------------------------------------------ 3. trailing slashes


@pytest.fixture
async def slash_mock() -> AsyncIterator[str]:
    port = free_port()
    cfg = replace(FAST, port=port, public_url=f"http://127.0.0.1:{port}", trailing_slash=True)
    runner = web.AppRunner(create_app(cfg))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield cfg.base_url
    await runner.cleanup()


async def test_endpoint_urls_ending_in_slash(bridge: Bridge, slash_mock: str,
                                             http: aiohttp.ClientSession) -> None:
    deps = deps_for(bridge)
    async with http.post(f"{slash_mock}/admin/invite") as resp:
        token_a = (await resp.json())["token"]
    try:
        conn = await register_with(deps, f"{slash_mock}/ocpi/versions", token_a)
        assert conn.endpoint("commands", "RECEIVER").endswith("/commands/")
        await push_token(deps, conn, driver_token(), ("IN", "TPC"))
        uid, response = await send_command(deps, conn, ("IN", "TPC"), CommandType.START_SESSION, {
            "token": driver_token().to_json_dict(), "location_id": "NOPE"})
        assert response.result.value in ("ACCEPTED", "REJECTED")
    finally:
        await deps.close()


# ------------------------------------------------------------------ 4./8. status codes, transport


async def test_status_codes_follow_the_spec_chapter(cpo: Ocpi) -> None:
    status, body, _ = await cpo.call("PUT", LOC, location())
    assert (status, body["status_code"]) == (201, 1000)  # new object
    status, body, _ = await cpo.call("PUT", LOC, location(lu="2026-11-25T11:00:00Z"))
    assert (status, body["status_code"]) == (200, 1000)  # update
    bad = location() | {"publish": "yes"}
    status, body, _ = await cpo.call("PUT", LOC, bad)
    assert (status, body["status_code"]) == (200, 2001)
    status, body, _ = await cpo.call("POST", "/ocpi/2.2.1/cdrs", cdr())
    status, body, _ = await cpo.call("POST", "/ocpi/2.2.1/cdrs", cdr())
    assert (status, body["status_code"]) == (200, 2000)  # duplicate: the OCPI layer says so


async def test_token_a_on_a_functional_module_is_401(bridge: Bridge, http) -> None:
    token_a = await bridge.invite()
    for method, path in (("GET", "/ocpi/2.2.1/tokens"), ("PUT", LOC),
                         ("POST", "/ocpi/2.2.1/cdrs")):
        status, body, _ = await Ocpi(bridge.url, token_a, http).call(method, path, {})
        assert (status, body["status_code"]) == (401, 2000), (method, path)


async def test_oversized_body_is_the_envelope_not_3000(cpo: Ocpi) -> None:
    status, body, _ = await cpo.call("PUT", LOC, raw=b'{"x": "' + b"a" * (9 * 1024 * 1024) + b'"}')
    assert (status, body["status_code"]) == (413, 2001), body
    assert "larger than" in body["status_message"]


async def test_405_carries_allow(cpo: Ocpi) -> None:
    status, body, headers = await cpo.call("DELETE", LOC)
    assert (status, body["status_code"]) == (405, 2000)
    assert set(headers["Allow"].replace(" ", "").split(",")) >= {"GET", "PUT", "PATCH"}
    status, body, headers = await cpo.call("POST", "/ocpi/2.2.1/credentials", {})
    assert status == 405 and "PUT" in headers["Allow"]


async def test_answers_carry_routing_headers(cpo: Ocpi) -> None:
    _, _, headers = await cpo.call("PUT", LOC, location(), headers={
        "OCPI-from-country-code": "IN", "OCPI-from-party-id": "TPC",
        "OCPI-to-country-code": "IN", "OCPI-to-party-id": "BKN"})
    assert (headers["OCPI-from-country-code"], headers["OCPI-from-party-id"]) == ("IN", "BKN")
    assert (headers["OCPI-to-country-code"], headers["OCPI-to-party-id"]) == ("IN", "TPC")


async def test_mock_token_a_is_401_with_routing_headers(http: aiohttp.ClientSession) -> None:
    port = free_port()
    cfg = replace(FAST, port=port, public_url=f"http://127.0.0.1:{port}")
    runner = web.AppRunner(create_app(cfg))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with http.post(f"{cfg.base_url}/admin/invite") as resp:
            token_a = (await resp.json())["token"]
        mock = Ocpi(cfg.base_url, token_a, http)
        status, body, headers = await mock.call("GET", "/ocpi/2.2.1/locations")
        assert (status, body["status_code"]) == (401, 2000)
        assert headers["OCPI-from-party-id"] in ("TPC", "ZEO", "STK")
        status, _, headers = await mock.call("DELETE", "/ocpi/versions")
        assert status == 405 and "GET" in headers["Allow"]
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------ 6. strict types, bounded numbers


def big_json(obj: Any) -> bytes:
    """JSON with integers past 64 bits (orjson refuses to write them; peers do send them)."""
    return json.dumps(obj).encode()


def _set(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target: Any = obj
    parts = path.replace("]", "").replace("[", ".").split(".")
    for p in parts[:-1]:
        target = target[int(p)] if p.isdigit() else target[p]
    last = parts[-1]
    target[int(last) if last.isdigit() else last] = value
    return obj


@pytest.mark.parametrize(("path", "value"), [
    ("evses[0].connectors[0].max_voltage", "400"),
    ("evses[0].connectors[0].max_voltage", 400.0),
    ("evses[0].connectors[0].max_voltage", True),
    ("evses[0].connectors[0].max_voltage", 2**64),
    ("publish", "true"),
    ("publish", 1),
    ("last_updated", 1764064800),
    ("last_updated", "2026-11-25"),
    ("last_updated", "2026-11-25 10:00:00"),
])
async def test_wrong_types_are_2001_naming_the_field(cpo: Ocpi, path: str, value: Any) -> None:
    status, body, _ = await cpo.call("PUT", LOC, raw=big_json(_set(location(), path, value)))
    assert (status, body["status_code"]) == (200, 2001), body
    assert path in body["status_message"]
    status, _, _ = await cpo.call("GET", LOC)
    assert status == 404  # nothing was stored


SESSION = "/ocpi/2.2.1/sessions/IN/TPC/S1"


def session(**over: Any) -> dict[str, Any]:
    return {"country_code": "IN", "party_id": "TPC", "id": "S1",
            "start_date_time": "2026-11-25T10:00:00Z", "kwh": 1.5,
            "cdr_token": {"country_code": "IN", "party_id": "BKN", "uid": "T1",
                          "type": "APP_USER", "contract_id": "C1"},
            "auth_method": "COMMAND", "location_id": "LOC1", "evse_uid": "EVSE1",
            "connector_id": "1", "currency": "INR", "status": "ACTIVE",
            "last_updated": "2026-11-25T10:00:00Z"} | over


@pytest.mark.parametrize(("field", "value"), [
    ("kwh", "18.5"), ("kwh", 2**64), ("kwh", 1e308), ("kwh", -1),
    ("total_cost", {"excl_vat": 1e308}), ("total_cost", {"excl_vat": "18.5"}),
    ("total_cost", {"excl_vat": 18446744073709551616}),
])
async def test_numbers_are_json_numbers_and_bounded(cpo: Ocpi, field: str, value: Any) -> None:
    status, body, _ = await cpo.call("PUT", SESSION, raw=big_json(session(**{field: value})))
    assert (status, body["status_code"]) == (200, 2001), body
    assert field in body["status_message"]


async def test_number_bounds_hold_in_a_patch_too(cpo: Ocpi) -> None:
    assert (await cpo.call("PUT", SESSION, session()))[1]["status_code"] == 1000
    for kwh in (2**64, 1e308, "3"):
        status, body, _ = await cpo.call("PATCH", SESSION, raw=big_json(
            {"kwh": kwh, "last_updated": "2026-11-25T10:05:00Z"}))
        assert (status, body["status_code"]) == (200, 2001), body


async def test_timestamps_offsets_and_microseconds(cpo: Ocpi) -> None:
    """An explicit offset is normalised to UTC; fractions come back as sent, never cut."""
    await cpo.call("PUT", LOC, location(lu="2026-11-25T15:30:00.123456+05:30"))
    _, body, _ = await cpo.call("GET", LOC)
    assert body["data"]["last_updated"] == "2026-11-25T10:00:00.123456Z"
    await cpo.call("PUT", SESSION, session(last_updated="2026-11-25T10:00:00.5Z"))
    _, body, _ = await cpo.call("GET", SESSION)
    assert body["data"]["last_updated"] == "2026-11-25T10:00:00.500Z"


# ------------------------------------------------------------------ 7. malformed CommandResponse


async def test_malformed_command_response_is_an_ocpi_client_error(bridge: Bridge) -> None:
    async def commands(_request: web.Request) -> web.Response:
        return web.json_response({"status_code": 1000, "status_message": "ok",
                                  "timestamp": "2026-11-25T10:00:00Z",
                                  "data": [{"result": "ACCEPTED", "timeout": "30"}]})

    app = web.Application()
    app.router.add_post("/ocpi/2.2.1/commands/{command}", commands)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    conn = Connection(id="c1", their_token="t", versions_url="http://x", endpoints=[
        {"identifier": "commands", "role": "RECEIVER",
         "url": f"http://127.0.0.1:{port}/ocpi/2.2.1/commands"}])
    deps = deps_for(bridge)
    try:
        with pytest.raises(OcpiClientError, match="not a valid CommandResponse"):
            await send_command(deps, conn, ("IN", "TPC"), CommandType.STOP_SESSION,
                               {"session_id": "S1"})
    finally:
        await deps.close()
        await runner.cleanup()


# ------------------------------------------------------------------ issue 12: scope, SSRF


async def test_token_a_registers_only_its_own_party(bridge: Bridge, cpo_double: CpoDouble,
                                                    http: aiohttp.ClientSession) -> None:
    token_a = await bridge.invite("IN", "YZF")
    cpo_double.parties = [("IN", "YZF"), ("IN", "YYK")]
    body = {"token": cpo_double.token_b, "url": f"{cpo_double.base_url}/ocpi/versions",
            "roles": [{"role": "CPO", "country_code": "IN", "party_id": pid,
                       "business_details": {"name": pid}} for pid in ("YZF", "YYK")]}
    status, resp, _ = await Ocpi(bridge.url, token_a, http).call(
        "POST", "/ocpi/2.2.1/credentials", body)
    assert (status, resp["status_code"]) == (200, 2001)
    assert "IN-YYK not allowed" in resp["status_message"]
    assert await CredentialsStore(bridge.redis).connections() == []


# Loopback targets only: were the guard broken, a test must not send traffic off this
# machine. Private and link-local addresses are refused by the same check, which
# tests/ocpi/test_urlguard.py covers as a pure function.
@pytest.mark.parametrize("url", [
    "http://127.0.0.1:6379/",
    "http://localhost:6379/",
    "http://[::1]:6379/",
    "file:///etc/passwd",
])
async def test_credentials_url_is_guarded(redis_url: str, http: aiohttp.ClientSession,
                                          url: str) -> None:
    """With the default (safe) settings the bridge does not call the addresses a
    token A holder names when they are loopback (or private, link-local...)."""
    port = free_port()
    settings = replace_settings(make_settings(redis_url, port), ocpi_allow_loopback_urls=False)
    server = TestServer(build_app(settings, redis=aioredis.Redis.from_url(redis_url)),
                        host="127.0.0.1", port=port)
    await server.start_server()
    redis = aioredis.Redis.from_url(redis_url)
    try:
        token_a = await CredentialsStore(redis).create_invite("IN", "TPC")
        status, resp, _ = await Ocpi(settings.public_url, token_a, http).call(
            "POST", "/ocpi/2.2.1/credentials", {
                "token": "x", "url": url, "roles": [{
                    "role": "CPO", "country_code": "IN", "party_id": "TPC",
                    "business_details": {"name": "x"}}]})
        assert (status, resp["status_code"]) == (200, 2001), resp
        assert resp["status_message"].startswith("url:")
    finally:
        await server.close()
        await redis.aclose()


def replace_settings(settings: Any, **changes: Any) -> Any:
    return settings.replace(**changes)


# ------------------------------------------------------------------ KEEP_REDIS: the same platform again


async def test_the_same_platform_may_register_again(bridge: Bridge,
                                                    http: aiohttp.ClientSession) -> None:
    """`KEEP_REDIS=1 make run`: a new mock (same versions URL, no memory) registers
    again with a new token A; that replaces its old registration cleanly."""
    port = free_port()
    cfg = replace(FAST, port=port, public_url=f"http://127.0.0.1:{port}", push_on_register=False)
    tokens = []
    for _ in range(2):
        runner = web.AppRunner(create_app(cfg))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            token_a = await bridge.invite("IN", "TPC", ("IN", "ZEO"), ("IN", "STK"))
            async with http.post(f"{cfg.base_url}/admin/connect", data=orjson.dumps(
                    {"versions_url": f"{bridge.url}/ocpi/versions", "token": token_a})) as r:
                assert r.status == 200, await r.text()
            conns = await CredentialsStore(bridge.redis).connections()
            assert len(conns) == 1 and len(conns[0].parties) == 3
            tokens.append(conns[0].our_token_hash)
        finally:
            await runner.cleanup()
    assert tokens[0] != tokens[1]


async def test_two_bridges_share_nothing_but_redis(redis_url: str, cpo_double: CpoDouble,
                                                   http: aiohttp.ClientSession) -> None:
    """A registration through one serve process is usable at once on another."""
    a, b = await start_bridge(redis_url), await start_bridge(redis_url)
    try:
        cpo = await register_cpo(a, cpo_double, http)
        on_b = Ocpi(b.url, cpo.token, http)
        assert (await on_b.call("PUT", LOC, location()))[1]["status_code"] == 1000
    finally:
        await stop_bridge(a)
        await stop_bridge(b)


async def test_a_revoked_token_stops_working_on_every_process(
        redis_url: str, cpo_double: CpoDouble, http: aiohttp.ClientSession) -> None:
    """Unregistered through one serve process, the token is refused by the other one
    as soon as the change is published, not when its cache entry expires (2 s)."""
    a, b = await start_bridge(redis_url), await start_bridge(redis_url)
    try:
        cpo = await register_cpo(a, cpo_double, http)
        on_b = Ocpi(b.url, cpo.token, http)
        assert (await on_b.call("PUT", LOC, location()))[1]["status_code"] == 1000  # cached on b
        assert (await cpo.call("DELETE", "/ocpi/2.2.1/credentials"))[1]["status_code"] == 1000
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        status = 0
        while loop.time() < deadline:
            status = (await on_b.call("GET", "/ocpi/versions"))[0]
            if status == 401:
                break
            await asyncio.sleep(0.02)
        assert status == 401
    finally:
        await stop_bridge(a)
        await stop_bridge(b)


async def test_a_registration_left_half_way_is_cleared_by_the_next(
        bridge: Bridge, cpo_double: CpoDouble) -> None:
    """`bridge register` killed between its two writes leaves a party-less
    "registering" connection; registering again with that platform removes it."""
    store = CredentialsStore(bridge.redis)
    await store.save_connection(Connection(
        id="", their_token="a", versions_url=f"{cpo_double.base_url}/ocpi/versions",
        state="registering"), "orphan-token-b")
    deps = deps_for(bridge)
    try:
        await register_with(deps, f"{cpo_double.base_url}/ocpi/versions", cpo_double.token_a)
    finally:
        await deps.close()
    conns = await store.connections()
    assert [c.state for c in conns] == [""] and conns[0].parties == {("IN", "TPC"), ("IN", "ZEO")}
    assert await store.authenticate("orphan-token-b") is None
