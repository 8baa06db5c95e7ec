"""`bridge sync` against a paginated CPO sender; restarts (the spec's own example objects are
in tests/conformance/ocpi/test_ocpi_examples.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import redis.asyncio as aioredis

from bridge.ocpi.deps import OcpiDeps
from bridge.ocpi.sync import sync
from bridge.store.credentials import CredentialsStore
from bridge.store.ocpi_store import OcpiStore
from tests.conftest import RedisServer
from tests.ocpi.conftest import (
    Bridge,
    Ocpi,
    location,
    register_cpo,
    session,
    start_bridge,
    stop_bridge,
    tariff,
)
from tests.ocpi.cpo_double import CpoDouble


async def test_sync_follows_pagination_and_date_from(bridge: Bridge, cpo_double: CpoDouble,
                                                     cpo: Ocpi) -> None:
    cpo_double.lists["locations"] = [location(f"L{i}", lu=f"2026-11-25T10:0{i}:00Z")
                                     for i in range(5)]
    cpo_double.lists["tariffs"] = [tariff("T1"), tariff("T2") | {"party_id": "ZEO"}]
    bad = location("BAD")
    del bad["coordinates"]
    cpo_double.lists["locations"].append(bad)
    deps = OcpiDeps(settings=bridge.settings, store=OcpiStore(bridge.redis),
                    creds=CredentialsStore(bridge.redis))
    try:
        reports = await sync(deps, datetime(2026, 11, 25, 11, tzinfo=UTC), ("IN", "TPC"),
                             ("locations", "tariffs"))
        by = {r.module: r for r in reports}
        assert by["locations"].fetched == 6 and by["locations"].written == 5
        assert by["locations"].invalid == 1 and "coordinates" in by["locations"].errors[0]
        assert by["tariffs"].written == 1  # the ZEO tariff belongs to the other party's sync
        # pages of 2 were followed through the Link header
        pages = [p for m, p, _ in cpo_double.requests if p.startswith("/ocpi/2.2.1/locations")]
        assert len(pages) == 3
        status, body, _ = await cpo.call("GET", "/ocpi/2.2.1/locations/IN/TPC/L3")
        assert body["data"]["id"] == "L3"
        # the next sync asks only for what changed since the last one
        reports = await sync(deps, datetime(2026, 11, 25, 12, tzinfo=UTC), ("IN", "TPC"),
                             ("locations",))
        assert "date_from=2026-11-25T11%3A00%3A00Z" in cpo_double.requests[-1][1] or \
            "date_from=2026-11-25T11:00:00Z" in cpo_double.requests[-1][1]
    finally:
        await deps.close()


async def test_sync_never_overwrites_a_newer_push(bridge: Bridge, cpo_double: CpoDouble,
                                                  cpo: Ocpi) -> None:
    await cpo.call("PUT", "/ocpi/2.2.1/locations/IN/TPC/L1",
                   location("L1", lu="2026-11-25T12:00:00Z") | {"name": "Pushed"})
    cpo_double.lists["locations"] = [location("L1", lu="2026-11-25T10:00:00Z")]
    deps = OcpiDeps(settings=bridge.settings, store=OcpiStore(bridge.redis),
                    creds=CredentialsStore(bridge.redis))
    try:
        await sync(deps, datetime.now(UTC), ("IN", "TPC"), ("locations",))
    finally:
        await deps.close()
    _, body, _ = await cpo.call("GET", "/ocpi/2.2.1/locations/IN/TPC/L1")
    assert body["data"]["name"] == "Pushed"


async def test_data_survives_restart_of_bridge_and_redis(own_redis: RedisServer,
                                                         cpo_double: CpoDouble) -> None:
    async with aiohttp.ClientSession() as http:
        bridge = await start_bridge(own_redis.url)
        cpo = await register_cpo(bridge, cpo_double, http)
        await cpo.call("PUT", "/ocpi/2.2.1/locations/IN/TPC/L1", location("L1"))
        await cpo.call("PUT", "/ocpi/2.2.1/sessions/IN/TPC/S1", session())
        port = bridge.settings.port
        await stop_bridge(bridge)
        # Redis restarts from its append-only file; the bridge on the same port.
        r = aioredis.Redis.from_url(own_redis.url)
        await r.execute_command("BGREWRITEAOF")
        await r.aclose()
        own_redis.restart()
        bridge = await start_bridge(own_redis.url, port)
        try:
            again = Ocpi(bridge.url, cpo.token, http)
            status, body, _ = await again.call("GET", "/ocpi/2.2.1/locations/IN/TPC/L1")
            assert status == 200 and body["data"]["evses"][0]["uid"] == "EVSE1"
            status, body, _ = await again.call("GET", "/ocpi/2.2.1/sessions/IN/TPC/S1")
            assert body["data"]["status"] == "ACTIVE"
        finally:
            await stop_bridge(bridge)
