"""A test BAP on loopback (own key, registry lookup, on_* receiver), the bridge app,
sample OCPI data, and a way to run the worker in burst mode."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.beckn import signing
from bridge.beckn.catalog_consumer import drain
from bridge.config import Settings
from bridge.ocpi.models import Location, Tariff
from bridge.store.catalog import CatalogStore
from bridge.store.ocpi_store import OcpiStore

BPP_ID = "bpp.bridge.test"
BAP_ID = "bap.test"
BAP_KEY = "bap-key-1"
DOMAIN = "beckn.one:deg:ev-charging"
CENTER = (77.5946, 12.9716)  # lon, lat (MG Road, Bengaluru)


@dataclass
class LoopbackBap:
    """Signs like a Beckn BAP, serves the registry lookup, receives on_* callbacks."""

    key: Any
    url: str = ""
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    registry: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    fail: bool = False
    fail_times: int = 0  # fail this many callbacks, then accept
    lookups: int = 0
    status: int = 200
    # Called with every body the BAP receives: ("on_discover", body), ("ack", AckResponse).
    # The conformance suite plugs a schema validator in here.
    inspect: Callable[[str, Any], None] | None = None

    @property
    def bap_uri(self) -> str:
        return f"{self.url}/bap"

    def sign(self, body: bytes, created: float | None = None, expires_in: int = 300,
             key: Any = None, sub: str = BAP_ID, key_id: str = BAP_KEY) -> str:
        s = signing.Signer(sub, key_id, key or self.key, expires_in)
        return s.header(body, created if created is not None else time.time())

    def context(self, action: str, **over: Any) -> dict[str, Any]:
        ctx = {"domain": DOMAIN, "action": action, "version": "2.0.0", "bap_id": BAP_ID,
               "bap_uri": self.bap_uri, "bpp_id": BPP_ID, "bpp_uri": "http://127.0.0.1/beckn",
               "transaction_id": str(uuid.uuid4()), "message_id": str(uuid.uuid4()),
               "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "ttl": "PT30S"}
        ctx.update(over)
        return {k: v for k, v in ctx.items() if v is not None}

    def callbacks(self, action: str = "on_discover") -> list[dict[str, Any]]:
        return [orjson.loads(b) for p, _h, b in self.received if p.endswith(action)]


@pytest.fixture
async def bap() -> AsyncIterator[LoopbackBap]:
    tb = LoopbackBap(key=signing.generate_private_key())
    tb.registry[(BAP_ID, BAP_KEY)] = {
        "subscriber_id": BAP_ID, "unique_key_id": BAP_KEY, "status": "SUBSCRIBED",
        "signing_public_key": signing.public_key_b64(tb.key.public_key()), "type": "BAP"}

    async def lookup(request: web.Request) -> web.Response:
        tb.lookups += 1
        q = await request.json()
        rec = tb.registry.get((q.get("subscriber_id"), q.get("unique_key_id")))
        return web.json_response([rec] if rec else [])

    async def callback(request: web.Request) -> web.Response:
        if tb.fail or tb.fail_times > 0:
            tb.fail_times -= 1
            return web.Response(status=503)
        raw = await request.read()
        if tb.inspect is not None:
            tb.inspect(request.match_info["action"], orjson.loads(raw))
        tb.received.append((request.path, dict(request.headers), raw))
        if tb.status != 200:
            return web.Response(status=tb.status)
        return web.json_response({"message": {"ack": {"status": "ACK"}}})

    app = web.Application()
    app.router.add_post("/lookup", lookup)
    app.router.add_post("/bap/{action}", callback)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    tb.url = str(server.make_url("")).rstrip("/")
    yield tb
    await server.close()


@pytest.fixture
def bridge_key(tmp_path: Path) -> Any:
    key = signing.generate_private_key()
    path = tmp_path / "bridge.key"
    path.write_bytes(signing.private_key_pem(key))
    return key, path


@pytest.fixture
def profile() -> str:
    """The wire profile the bridge answers the test BAP in (the conformance suite runs
    the scenarios in each)."""
    return "rc2"


@pytest.fixture
def settings(redis_url: str, bap: LoopbackBap, bridge_key: Any, profile: str) -> Settings:
    return Settings(redis_url=redis_url, public_url="http://127.0.0.1:9", beckn_subscriber_id=BPP_ID,
                    beckn_key_id="bpp-key-1", beckn_private_key=str(bridge_key[1]),
                    beckn_registry_url=bap.url, beckn_callback_backoff=0.05,
                    beckn_callback_max_attempts=3, beckn_callback_timeout=2.0,
                    beckn_guide_bap_ids=BAP_ID if profile == "guide" else "",
                    ocpi_allow_loopback_urls=True)  # the test BAP is on 127.0.0.1


@pytest.fixture
async def bridge(settings: Settings) -> AsyncIterator[Bridge]:
    from bridge.app import build_app
    from bridge.extensions import app_extensions, worker_extensions

    worker_extensions()
    app = build_app(settings, extensions=app_extensions())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        yield Bridge(str(server.make_url("")).rstrip("/"), http, settings)
    await server.close()


@dataclass
class Bridge:
    url: str
    http: aiohttp.ClientSession
    settings: Settings

    async def post(self, action: str, body: bytes | dict[str, Any], bap: LoopbackBap | None = None,
                   auth: str | None = None, sign: bool = True) -> tuple[int, dict[str, Any]]:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        headers = {"Content-Type": "application/json"}
        if auth is not None:
            headers["Authorization"] = auth
        elif sign and bap is not None:
            headers["Authorization"] = bap.sign(raw)
        async with self.http.post(f"{self.url}/beckn/{action}", data=raw, headers=headers) as r:
            ack = orjson.loads(await r.read())
        if bap is not None and bap.inspect is not None:
            bap.inspect("ack", ack)
        return r.status, ack


async def run_worker(settings: Settings) -> None:
    """Run the arq worker in burst mode until every queued job is done."""
    from bridge.extensions import worker_extensions
    from bridge.worker import build_worker

    worker_extensions()
    worker = build_worker(settings, burst=True)
    try:
        await worker.async_run()
    finally:
        await worker.close()


# --- OCPI sample data


def connector(cid: str, standard: str, power_type: str, kw: int, tariff: str | None = "T1"
              ) -> dict[str, Any]:
    c = {"id": cid, "standard": standard, "format": "CABLE", "power_type": power_type,
         "max_voltage": 400, "max_amperage": 125, "max_electric_power": kw * 1000,
         "last_updated": "2025-01-01T00:00:00Z"}
    if tariff:
        c["tariff_ids"] = [tariff]
    return c


def evse(uid: str, evse_id: str, status: str, *conns: dict[str, Any]) -> dict[str, Any]:
    return {"uid": uid, "evse_id": evse_id, "status": status, "connectors": list(conns),
            "capabilities": ["RESERVABLE", "REMOTE_START_STOP_CAPABLE"],
            "last_updated": "2025-01-01T00:00:00Z"}


def location(lid: str, lon: float, lat: float, evses: list[dict[str, Any]], *,
             name: str = "Station", city: str = "Bengaluru", publish: bool = True,
             pid: str = "TPC", operator: str = "Tata Power", **extra: Any) -> Location:
    return Location.model_validate({
        "country_code": "IN", "party_id": pid, "id": lid, "publish": publish, "name": name,
        "address": f"{name} Road", "city": city, "country": "IND",
        "coordinates": {"latitude": f"{lat:.6f}", "longitude": f"{lon:.6f}"},
        "evses": evses, "operator": {"name": operator}, "time_zone": "Asia/Kolkata",
        "facilities": ["RESTAURANT", "WIFI"], "parking_type": "PARKING_LOT",
        "last_updated": "2025-01-01T00:00:00Z", **extra})


def tariff(tid: str = "T1", pid: str = "TPC", price: float = 18, peak: float | None = 24
           ) -> Tariff:
    elements: list[dict[str, Any]] = []
    if peak is not None:
        elements.append({"price_components": [{"type": "ENERGY", "price": peak, "vat": 18,
                                               "step_size": 1}],
                         "restrictions": {"start_time": "18:00", "end_time": "22:00"}})
    elements.append({"price_components": [{"type": "ENERGY", "price": price, "vat": 18,
                                           "step_size": 1}]})
    return Tariff.model_validate({"country_code": "IN", "party_id": pid, "id": tid,
                                  "currency": "INR", "elements": elements,
                                  "last_updated": "2025-01-01T00:00:00Z"})


SAMPLE = [
    # MG Road: CCS2 60 kW + Type2 22 kW on one EVSE, a REMOVED EVSE, a CHAdeMO busy
    location("LOC-MG", CENTER[0], CENTER[1], [
        evse("E1", "IN*TPC*E0001", "AVAILABLE", connector("1", "IEC_62196_T2_COMBO", "DC", 60),
             connector("2", "IEC_62196_T2", "AC_3_PHASE", 22)),
        evse("E2", "IN*TPC*E0002", "REMOVED", connector("1", "IEC_62196_T2_COMBO", "DC", 120)),
        evse("E3", "IN*TPC*E0003", "CHARGING", connector("1", "CHADEMO", "DC", 50)),
    ], name="MG Road Hub"),
    # ~3 km east, Indiranagar: CCS2 150 kW, open with the mall (an availabilityWindow)
    location("LOC-IND", 77.6250, 12.9784, [
        evse("E1", "IN*TPC*E0101", "AVAILABLE", connector("1", "IEC_62196_T2_COMBO", "DC", 150)),
    ], name="Indiranagar Mall", opening_times={"twentyfourseven": False, "regular_hours": [
        {"weekday": d, "period_begin": "10:00", "period_end": "22:00"} for d in range(1, 8)]}),
    # ~20 km away, another CPO: Type2 7 kW
    location("LOC-WF", 77.7500, 12.9698, [
        evse("E1", "IN*ZAP*E0201", "AVAILABLE", connector("1", "IEC_62196_T2", "AC_1_PHASE", 7,
                                                          tariff="Z1")),
    ], name="Whitefield Tech Park", pid="ZAP", operator="Zap Charge"),
    # not published
    location("LOC-PRIV", 77.5950, 12.9720, [
        evse("E1", "IN*TPC*E0301", "AVAILABLE", connector("1", "IEC_62196_T2_COMBO", "DC", 60)),
    ], name="Private Depot", publish=False),
]


async def load_sample(redis: aioredis.Redis, settings: Settings) -> CatalogStore:
    store = OcpiStore(redis)
    await store.put("tariffs", tariff())
    await store.put("tariffs", tariff("Z1", "ZAP", 12, None))
    for loc in SAMPLE:
        await store.put_location(loc)
    catalog = CatalogStore(redis, store)
    await drain(redis, catalog)
    return catalog
