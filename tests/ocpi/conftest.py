"""Fixtures for the OCPI side: the real bridge app on 127.0.0.1 over a real Redis."""

from __future__ import annotations

import base64
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.app import build_app
from bridge.config import Settings
from bridge.store.credentials import CredentialsStore
from tests.conftest import free_port
from tests.ocpi.cpo_double import CpoDouble


def make_settings(redis_url: str, port: int) -> Settings:
    return Settings(host="127.0.0.1", port=port, public_url=f"http://127.0.0.1:{port}",
                    redis_url=redis_url, log_format="json", ocpi_allow_loopback_urls=True)


@dataclass
class Bridge:
    url: str
    settings: Settings
    server: TestServer
    redis: aioredis.Redis

    async def invite(self, cc: str = "IN", pid: str = "TPC", *more: tuple[str, str]) -> str:
        return await CredentialsStore(self.redis).create_invite(cc, pid, *more)


async def start_bridge(redis_url: str, port: int | None = None) -> Bridge:
    port = port or free_port()
    settings = make_settings(redis_url, port)
    redis = aioredis.Redis.from_url(redis_url)
    app = build_app(settings, redis=aioredis.Redis.from_url(redis_url))
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    return Bridge(url=settings.public_url, settings=settings, server=server, redis=redis)


async def stop_bridge(bridge: Bridge) -> None:
    await bridge.server.close()
    await bridge.redis.aclose()


@pytest.fixture
async def bridge(redis_url: str) -> AsyncIterator[Bridge]:
    b = await start_bridge(redis_url)
    yield b
    await stop_bridge(b)


@pytest.fixture
async def cpo_double() -> AsyncIterator[CpoDouble]:
    double = CpoDouble()
    port = free_port()
    double.base_url = f"http://127.0.0.1:{port}"
    runner = web.AppRunner(double.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield double
    await runner.cleanup()


class Ocpi:
    """An HTTP client acting as a CPO towards the bridge."""

    def __init__(self, base: str, token: str | None, session: aiohttp.ClientSession,
                 raw_token: bool = False) -> None:
        self.base = base
        self.token = token
        self.session = session
        self.raw_token = raw_token

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self.token is not None:
            value = self.token if self.raw_token else base64.b64encode(self.token.encode()).decode()
            h["Authorization"] = f"Token {value}"
        h.update(extra or {})
        return h

    async def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], Any]:
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        url = path if path.startswith("http") else f"{self.base}{path}"
        async with self.session.request(method, url, data=data,
                                        headers=self.headers(headers)) as resp:
            text = await resp.read()
            return resp.status, orjson.loads(text) if text else {}, resp.headers


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def register_cpo(bridge: Bridge, double: CpoDouble, http: aiohttp.ClientSession) -> Ocpi:
    """Play the CPO side of the credentials handshake; return a client using token C."""
    (cc, pid), *more = sorted(double.parties)
    token_a = await bridge.invite(cc, pid, *more)
    cpo = Ocpi(bridge.url, token_a, http)
    status, body, _ = await cpo.call("POST", "/ocpi/2.2.1/credentials", {
        "token": double.token_b, "url": f"{double.base_url}/ocpi/versions",
        "roles": [{"role": "CPO", "country_code": cc, "party_id": pid,
                   "business_details": {"name": f"CPO {pid}"}} for cc, pid in double.parties],
    })
    assert status == 200, body
    return Ocpi(bridge.url, body["data"]["token"], http)


@pytest.fixture
async def cpo(bridge: Bridge, cpo_double: CpoDouble, http: aiohttp.ClientSession) -> Ocpi:
    return await register_cpo(bridge, cpo_double, http)


def location(lid: str = "LOC1", lu: str = "2026-11-25T10:00:00Z", cc: str = "IN",
             pid: str = "TPC", evses: int = 1) -> dict[str, Any]:
    return copy.deepcopy({
        "country_code": cc, "party_id": pid, "id": lid, "publish": True,
        "name": "Koramangala Hub", "address": "80 Feet Rd", "city": "Bengaluru",
        "postal_code": "560034", "country": "IND",
        "coordinates": {"latitude": "12.93520", "longitude": "77.62450"},
        "time_zone": "Asia/Kolkata", "last_updated": lu,
        "evses": [{
            "uid": f"EVSE{i}", "evse_id": f"IN*TPC*E{i}", "status": "AVAILABLE",
            "capabilities": ["REMOTE_START_STOP_CAPABLE"], "last_updated": lu,
            "connectors": [{"id": "1", "standard": "IEC_62196_T2_COMBO", "format": "CABLE",
                            "power_type": "DC", "max_voltage": 500, "max_amperage": 125,
                            "max_electric_power": 60000, "tariff_ids": ["T1"], "last_updated": lu}],
        } for i in range(1, evses + 1)],
    })


def tariff(tid: str = "T1", lu: str = "2026-11-25T10:00:00Z") -> dict[str, Any]:
    return {"country_code": "IN", "party_id": "TPC", "id": tid, "currency": "INR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": 16, "vat": 18,
                                                "step_size": 1}]}],
            "last_updated": lu}


def session(sid: str = "S1", lu: str = "2026-11-25T10:00:00Z", status: str = "ACTIVE",
            kwh: float = 0) -> dict[str, Any]:
    return {"country_code": "IN", "party_id": "TPC", "id": sid,
            "start_date_time": "2026-11-25T10:00:00Z", "kwh": kwh,
            "cdr_token": {"country_code": "IN", "party_id": "BKN", "uid": "TOK1", "type": "APP_USER",
                          "contract_id": "IN-BKN-C1"},
            "auth_method": "COMMAND", "location_id": "LOC1", "evse_uid": "EVSE1",
            "connector_id": "1", "currency": "INR", "status": status, "last_updated": lu}


def cdr(cid: str = "CDR1", **extra: Any) -> dict[str, Any]:
    body = {
        "country_code": "IN", "party_id": "TPC", "id": cid,
        "start_date_time": "2026-11-25T10:00:00Z", "end_date_time": "2026-11-25T10:30:00Z",
        "session_id": "S1",
        "cdr_token": {"country_code": "IN", "party_id": "BKN", "uid": "TOK1", "type": "APP_USER",
                      "contract_id": "IN-BKN-C1"},
        "auth_method": "COMMAND",
        "cdr_location": {"id": "LOC1", "address": "80 Feet Rd", "city": "Bengaluru",
                         "country": "IND",
                         "coordinates": {"latitude": "12.93520", "longitude": "77.62450"},
                         "evse_uid": "EVSE1", "evse_id": "IN*TPC*E1", "connector_id": "1",
                         "connector_standard": "IEC_62196_T2_COMBO", "connector_format": "CABLE",
                         "connector_power_type": "DC"},
        "currency": "INR",
        "charging_periods": [{"start_date_time": "2026-11-25T10:00:00Z",
                              "dimensions": [{"type": "ENERGY", "volume": 5}], "tariff_id": "T1"}],
        "total_cost": {"excl_vat": 80, "incl_vat": 94.4}, "total_energy": 5, "total_time": 0.5,
        "last_updated": "2026-11-25T10:30:00Z",
    }
    body.update(extra)
    return body
