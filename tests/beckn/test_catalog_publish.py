"""Catalog publish to a Catalog Discovery Service (bridge/beckn/catalog_publish.py,
on_catalog_publish.py) against a stand-in CDS (its own key and index, real HTTP on
127.0.0.1): after OCPI pushes, a location change, an EVSE going out of order, a removed
EVSE and an unpublished location, what the CDS answers is what the bridge's own discover
answers; batches, retries, NACKs, REJECTED results, the change-stream gap, a worker that
dies mid-publish, the CLI; every refusal of on_catalog_publish."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from bridge.beckn import catalog_publish as cp
from bridge.beckn import signing
from bridge.beckn.catalog_consumer import drain, ensure_group
from bridge.config import Settings
from bridge.mapping.catalog import item_id
from bridge.ocpi.models import Location
from bridge.store import beckn_keys as bk
from bridge.store import keys as okeys
from bridge.store.catalog import CatalogStore
from bridge.store.ocpi_store import OcpiStore
from tests.beckn.cds_double import CDS_ID, CDS_KEY, StandInCds, start_cds
from tests.beckn.conftest import (
    BPP_ID,
    CENTER,
    SAMPLE,
    LoopbackBap,
    connector,
    evse,
    load_sample,
    location,
    run_worker,
    tariff,
)
from tests.conftest import free_port

DELAY = 0.4  # beckn.publish_delay in these tests


@pytest.fixture
async def cds(bap: LoopbackBap, bridge_key: Any) -> AsyncIterator[StandInCds]:
    stand_in = StandInCds(bap.url)
    bap.registry[(CDS_ID, CDS_KEY)] = stand_in.record
    # our key, where the CDS looks it up
    bap.registry[(BPP_ID, "bpp-key-1")] = {
        "subscriber_id": BPP_ID, "unique_key_id": "bpp-key-1", "status": "SUBSCRIBED",
        "signing_public_key": signing.public_key_b64(bridge_key[0].public_key())}
    async for c in start_cds(stand_in):
        yield c


@pytest.fixture
def pub_settings(settings: Settings, cds: StandInCds) -> Settings:
    port = free_port()
    return settings.replace(port=port, public_url=f"http://127.0.0.1:{port}",
                            beckn_cds_url=cds.url, beckn_cds_subscriber_id=CDS_ID,
                            beckn_publish_delay=DELAY, beckn_publish_backoff=0.05,
                            beckn_publish_max_backoff=0.2, beckn_publish_retries=3)


@dataclass
class World:
    settings: Settings
    redis: aioredis.Redis
    ocpi: OcpiStore
    store: CatalogStore
    cds: StandInCds
    bap: LoopbackBap
    publisher: cp.Publisher
    url: str
    http: aiohttp.ClientSession

    async def change(self, loc: Location) -> None:
        await self.ocpi.put_location(loc)
        await drain(self.redis, self.store)

    token: str = ""  # the CPO's token at the bridge's OCPI receiver, made at its first push

    async def ocpi_send(self, method: str, path: str, body: dict[str, Any]) -> None:
        """A CPO's request to the bridge's OCPI Locations receiver (its CPO token), then
        the worker's catalog consumer."""
        import base64

        from bridge.store.credentials import Connection, CredentialsStore, new_token

        if not self.token:
            self.token = new_token()
            conn = Connection(id="cpo-tpc", their_token="unused",
                              versions_url="http://127.0.0.1:1/",
                              roles=[{"role": "CPO", "country_code": "IN", "party_id": "TPC",
                                      "business_details": {"name": "Tata Power"}}])
            await CredentialsStore(self.redis).save_connection(conn, self.token)
        async with self.http.request(
                method, f"{self.url}/ocpi/2.2.1/locations/IN/TPC/{path}", data=orjson.dumps(body),
                headers={"Authorization": "Token " + base64.b64encode(
                    self.token.encode()).decode(), "Content-Type": "application/json"}) as r:
            assert r.status in (200, 201), await r.text()
            assert (await r.json())["status_code"] == 1000
        await drain(self.redis, self.store)

    async def push(self, loc: Location) -> None:
        """A CPO's PUT of a location over OCPI."""
        await self.ocpi_send("PUT", loc.id, loc.model_dump(mode="json", exclude_none=True))

    async def bridge_discover(self, meters: float = 60_000
                              ) -> dict[str, dict[str, tuple[dict[str, Any], Any]]]:
        """The bridge's own on_discover for a point (the rc2 profile), by catalog."""
        self.bap.received.clear()
        body = {"context": self.bap.context("discover", bpp_id=None), "message": {
            "spatial": [{"op": "s_dwithin", "targets": "$['beckn:availableAt'][*]['geo']",
                         "geometry": {"type": "Point", "coordinates": list(CENTER)},
                         "distanceMeters": meters}],
            "pagination": {"page": 1, "limit": 100}}}
        raw = orjson.dumps(body)
        async with self.http.post(f"{self.url}/beckn/discover", data=raw, headers={
                "Authorization": self.bap.sign(raw),
                "Content-Type": "application/json"}) as r:
            assert r.status == 200, await r.text()
        await run_worker(self.settings.replace(beckn_cds_url=""))  # no publisher in it
        (answer,) = self.bap.callbacks("on_discover")
        out: dict[str, dict[str, tuple[dict[str, Any], Any]]] = {}
        for cat in answer["message"]["catalogs"]:
            offers = {o["beckn:items"][0]: o for o in cat.get("beckn:offers", [])}
            out[cat["beckn:id"]] = {i["beckn:id"]: (i, offers.get(i["beckn:id"]))
                                   for i in cat["beckn:items"]}
        return out

    async def same_answers(self, only: str | None = None
                           ) -> dict[str, dict[str, tuple[dict[str, Any], Any]]]:
        """The CDS answers the discover as the bridge does (for the catalogs published)."""
        await self.cds.settled()
        ours = await self.bridge_discover()
        theirs = self.cds.discover(CENTER, 60_000)
        if only:
            ours = {k: v for k, v in ours.items() if k == only}
        assert theirs == ours
        return ours


@pytest.fixture
async def world(pub_settings: Settings, redis_client: aioredis.Redis, cds: StandInCds,
                bap: LoopbackBap) -> AsyncIterator[World]:
    from bridge.app import build_app
    from bridge.extensions import app_extensions, worker_extensions

    settings = pub_settings
    await load_sample(redis_client, settings)
    ocpi = OcpiStore(redis_client)
    store = CatalogStore(redis_client, ocpi, publish_delay=settings.beckn_publish_delay)
    worker_extensions()
    server = TestServer(build_app(settings, extensions=app_extensions()), host="127.0.0.1",
                        port=settings.port)
    await server.start_server()
    async with aiohttp.ClientSession() as http, cp.http_session(settings) as pub_http:
        publisher = cp.make_publisher(settings, redis_client, store, pub_http)
        yield World(settings, redis_client, ocpi, store, cds, bap, publisher,
                    f"http://127.0.0.1:{settings.port}", http)
    await server.close()


def sample(lid: str) -> Location:
    return next(loc for loc in SAMPLE if loc.id == lid)


def with_evse(loc: Location, index: int, status: str, **changes: Any) -> Location:
    """The location (validated again) with one EVSE's status and other fields changed."""
    data = loc.model_dump(mode="json", exclude_none=True)
    data["evses"][index]["status"] = status
    data.update(changes)
    return Location.model_validate(data)


async def wait_for(cond: Any, timeout: float = 10.0) -> float:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


MG_CCS = item_id("IN", "TPC", "LOC-MG", "E1", "1")
MG_CHADEMO = item_id("IN", "TPC", "LOC-MG", "E3", "1")


async def test_full_publish_then_changes_reach_the_cds_like_discover(world: World) -> None:
    reports = await world.publisher.publish_all("test")
    assert {r.provider: r.items for r in reports} == {"IN-TPC": 4, "IN-ZAP": 1}
    assert all(r.withdrawn == 0 for r in reports)
    ours = await world.same_answers()
    assert set(ours) == {"catalog:IN-TPC", "catalog:IN-ZAP"}
    assert CDS_ID not in world.cds.signers and world.cds.signers == [BPP_ID, BPP_ID]
    # the results came back, verified and stored
    assert [s for s, _ in world.cds.results_sent] == [200, 200]
    rows, _ = await cp.status(world.redis)
    tpc = next(r for r in rows if r.catalog_id == "catalog:IN-TPC")
    assert (tpc.record["result"], tpc.record["item_count"]) == ("ACCEPTED", "4")
    assert "NON_NORMALIZED_NAME" in tpc.record["warnings"]

    task = asyncio.create_task(world.publisher.run(full_on_start=False))
    try:
        # a new charger, pushed over OCPI: at the CDS within the delay
        new = item_id("IN", "TPC", "LOC-NEW", "N1", "1")
        started = time.monotonic()
        await world.push(location("LOC-NEW", CENTER[0] + 0.01, CENTER[1], [
            evse("N1", "IN*TPC*E0901", "AVAILABLE",
                 connector("1", "IEC_62196_T2_COMBO", "DC", 60))], name="New Site"))
        await wait_for(lambda: new in world.cds.index)
        assert time.monotonic() - started < DELAY + 1.5
        # only what changed went out
        assert [i["beckn:id"] for i in world.cds.requests[-1]["message"]["catalogs"][0][
            "beckn:items"]] == [new]
        await world.same_answers()

        # a location change (renamed) and an EVSE going out of order
        n = len(world.cds.requests)
        mg = with_evse(sample("LOC-MG"), 2, "OUTOFORDER", name="MG Road Hub (renamed)")
        await world.change(mg)
        await wait_for(lambda: len(world.cds.requests) > n
                       and "renamed" in world.cds.index[MG_CCS][1]["beckn:descriptor"][
                           "schema:name"])
        assert world.cds.index[MG_CHADEMO][1]["beckn:isActive"] is False  # listed, inactive
        ours = await world.same_answers()
        assert ours["catalog:IN-TPC"][MG_CHADEMO][0]["beckn:isActive"] is False

        # an EVSE removed: withdrawn at the CDS, gone from discover
        n = len(world.cds.requests)
        mg = with_evse(mg, 2, "REMOVED")
        await world.change(mg)
        await wait_for(lambda: MG_CHADEMO not in world.cds.index)
        withdrawal = world.cds.requests[-1]["message"]["catalogs"][0]
        assert withdrawal["beckn:isActive"] is False
        assert [i["beckn:id"] for i in withdrawal["beckn:items"]] == [MG_CHADEMO]
        ours = await world.same_answers()
        assert MG_CHADEMO not in ours["catalog:IN-TPC"]

        # a location unpublished: all its items withdrawn
        ind = sample("LOC-IND").model_copy(update={"publish": False})
        await world.change(ind)
        gone = item_id("IN", "TPC", "LOC-IND", "E1", "1")
        await wait_for(lambda: gone not in world.cds.index)
        await world.same_answers()
        assert not await world.redis.exists(bk.pub_loc("IN:TPC:loc-ind"))
        assert not await world.redis.sismember(bk.pub_refs("IN-TPC"), "IN:TPC:loc-ind")
        assert len(world.cds.requests) >= n + 2

        # a tariff change: every location using it, offers only changed
        n = len(world.cds.requests)
        await world.ocpi.put("tariffs", tariff(price=20).model_copy(
            update={"last_updated": datetime(2025, 3, 1, tzinfo=UTC)}))
        await drain(world.redis, world.store)
        await wait_for(lambda: world.cds.index[MG_CCS][2] is not None
                       and world.cds.index[MG_CCS][2]["beckn:price"]["value"] == 23.6)
        sent = {i["beckn:id"] for b in world.cds.requests[n:]
                for i in b["message"]["catalogs"][0]["beckn:items"]}
        assert sent == {MG_CCS, item_id("IN", "TPC", "LOC-MG", "E1", "2"),
                        item_id("IN", "TPC", "LOC-NEW", "N1", "1")}  # T1's, not Zap's
        await world.same_answers()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_charger_added_then_removed_over_ocpi_comes_and_goes_at_the_cds(
        world: World) -> None:
    """Issue 14's "done when": with the CDS configured, a new charger a CPO PUTs over OCPI
    is found by a discover at the CDS within the configured delay, and is withdrawn there
    when the CPO removes it (OCPI 2.2.1 deletes nothing: an EVSE PATCHed to REMOVED, a
    location PUT with publish false)."""
    await world.publisher.publish_all("test")
    await world.cds.settled()
    a1 = item_id("IN", "TPC", "LOC-ADD", "A1", "1")
    a2 = item_id("IN", "TPC", "LOC-ADD", "A2", "1")

    def at_cds() -> set[str]:
        return set(world.cds.discover(CENTER, 60_000).get("catalog:IN-TPC", {}))

    assert not at_cds() & {a1, a2}
    task = asyncio.create_task(world.publisher.run(full_on_start=False))
    try:
        started = time.monotonic()
        await world.push(location("LOC-ADD", CENTER[0] + 0.02, CENTER[1] - 0.01, [
            evse("A1", "IN*TPC*E0A01", "AVAILABLE",
                 connector("1", "IEC_62196_T2_COMBO", "DC", 60)),
            evse("A2", "IN*TPC*E0A02", "AVAILABLE",
                 connector("1", "IEC_62196_T2", "AC_3_PHASE", 22))], name="Added Site"))
        took = await wait_for(lambda: {a1, a2} <= at_cds())
        # the publish waits out the debounce delay, then goes: at the CDS soon after it
        assert time.monotonic() - started < DELAY + 1.5, took
        assert world.cds.index[a1][1]["beckn:isActive"] is True
        ours = await world.same_answers()
        assert {a1, a2} <= set(ours["catalog:IN-TPC"])

        # the CPO removes one EVSE: a PATCH of its status
        started = time.monotonic()
        await world.ocpi_send("PATCH", "LOC-ADD/A1", {
            "status": "REMOVED", "last_updated": "2025-06-01T10:00:00Z"})
        await wait_for(lambda: a1 not in at_cds())
        assert time.monotonic() - started < DELAY + 1.5
        assert a2 in at_cds()  # the other one stays
        withdrawal = world.cds.requests[-1]["message"]["catalogs"][0]
        assert withdrawal["beckn:isActive"] is False
        assert [i["beckn:id"] for i in withdrawal["beckn:items"]] == [a1]
        ours = await world.same_answers()
        assert a1 not in ours["catalog:IN-TPC"] and a2 in ours["catalog:IN-TPC"]

        # the CPO unpublishes the location: what is left of it is withdrawn
        started = time.monotonic()
        await world.push(location("LOC-ADD", CENTER[0] + 0.02, CENTER[1] - 0.01, [
            evse("A1", "IN*TPC*E0A01", "REMOVED",
                 connector("1", "IEC_62196_T2_COMBO", "DC", 60)),
            evse("A2", "IN*TPC*E0A02", "AVAILABLE",
                 connector("1", "IEC_62196_T2", "AC_3_PHASE", 22))], name="Added Site",
            publish=False, last_updated="2025-06-02T10:00:00Z"))
        await wait_for(lambda: not at_cds() & {a1, a2})
        assert time.monotonic() - started < DELAY + 1.5
        ours = await world.same_answers()
        assert not set(ours["catalog:IN-TPC"]) & {a1, a2}
        assert not await world.redis.sismember(bk.pub_refs("IN-TPC"), "IN:TPC:loc-add")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_burst_of_changes_is_one_publish_per_cpo(world: World) -> None:
    await world.publisher.publish_all("test")
    n = len(world.cds.requests)
    for status in ("CHARGING", "AVAILABLE", "CHARGING", "BLOCKED"):
        mg = with_evse(sample("LOC-MG"), 0, status)
        await world.change(mg)
    assert await world.publisher.step() == []  # not due yet
    await asyncio.sleep(DELAY)
    (report,) = await world.publisher.step()
    assert (report.provider, report.items, report.requests) == ("IN-TPC", 2, 1)
    assert len(world.cds.requests) == n + 1
    assert world.cds.index[MG_CCS][1]["beckn:descriptor"]["beckn:shortDesc"].endswith("Occupied")
    # nothing changed since: nothing to send
    await world.change(mg)
    await asyncio.sleep(DELAY)
    (again,) = await world.publisher.step()
    assert (again.items, again.requests) == (0, 0)


async def test_batches_by_item_count_and_body_size(world: World) -> None:
    small = world.settings.replace(beckn_publish_batch_items=2)
    pub = cp.Publisher(small, world.redis, world.store, world.publisher.http,
                       world.publisher.signer)
    (tpc,) = await pub.publish_all("test", only="IN-TPC")
    assert (tpc.items, tpc.requests) == (4, 2)
    sizes = [len(b["message"]["catalogs"][0]["beckn:items"]) for b in world.cds.requests]
    assert sizes == [2, 2]
    world.cds.requests.clear()
    tight = world.settings.replace(beckn_publish_batch_bytes=6000)
    pub = cp.Publisher(tight, world.redis, world.store, world.publisher.http,
                       world.publisher.signer)
    (tpc,) = await pub.publish_all("test", only="IN-TPC")
    assert tpc.requests == len(world.cds.requests) > 1
    for body in world.cds.requests:
        items = body["message"]["catalogs"][0]["beckn:items"]
        assert len(orjson.dumps(body)) <= 6000 or len(items) == 1
    await world.same_answers(only="catalog:IN-TPC")


def test_split_is_bounded() -> None:
    e = [cp.Entry("r", f"i{n}", b"x" * 100, b"y" * 50, "") for n in range(7)]
    assert [len(b) for b in cp.split(e, 3, 10_000)] == [3, 3, 1]
    assert [len(b) for b in cp.split(e, 100, 2 * e[0].size + 10)] == [2, 2, 2, 1]
    assert [len(b) for b in cp.split(e, 100, 10)] == [1] * 7  # too large: alone
    assert cp.split([], 3, 100) == []


async def test_the_cds_down_is_retried_then_tried_again_later(world: World) -> None:
    world.cds.fail_times = 2  # two 503s, then up: within one publish's retries
    (tpc,) = await world.publisher.publish_all("test", only="IN-TPC")
    assert tpc.items == 4 and [s for s, _ in world.cds.refused] == [503, 503]
    # down for longer: the changes go back, due after a backoff; nothing is lost
    world.cds.fail_times = 1000
    await world.change(with_evse(sample("LOC-MG"), 0, "CHARGING"))
    await asyncio.sleep(DELAY)
    assert await world.publisher.step() == []
    assert await world.redis.zscore(bk.pub_dirty("IN-TPC"), "IN:TPC:loc-mg") is not None
    due = await world.redis.zscore(bk.PUB_DUE, "IN-TPC")
    assert due is not None and due / 1000 > time.time()
    rows, _ = await cp.status(world.redis)
    tpc_row = next(r for r in rows if r.catalog_id == "catalog:IN-TPC")
    assert "cannot reach" in tpc_row.record["error"] or "503" in tpc_row.record["error"]
    assert tpc_row.dirty == 1
    from bridge import metrics

    await metrics.refresh_redis_gauges(world.redis)
    assert metrics.PUBLISH_WAITING._value.get() == 1
    world.cds.fail_times = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        await world.publisher.step()
        if world.cds.index[MG_CCS][1]["beckn:descriptor"]["beckn:shortDesc"].endswith(
                "Occupied"):
            break
        await asyncio.sleep(0.05)
    assert world.cds.index[MG_CCS][1]["beckn:descriptor"]["beckn:shortDesc"].endswith("Occupied")
    assert not await world.redis.exists(bk.pub_failures("IN-TPC"))


async def test_a_nack_is_not_retried_until_the_cpo_changes(world: World) -> None:
    world.cds.nack = True
    with pytest.raises(cp.CdsRefused, match="HTTP 400: 30000 catalog not acceptable"):
        await world.publisher.publish_all("test", only="IN-TPC")
    assert len(world.cds.refused) == 1  # not retried
    rejected = await world.redis.smembers(bk.pub_rejected("IN-TPC"))
    assert {r.decode() for r in rejected} == {"IN:TPC:loc-mg", "IN:TPC:loc-ind"}
    assert await world.publisher.step() == []  # no loop
    assert len(world.cds.refused) == 1
    # the CPO changes something (its fix): the rejected locations go out with it
    world.cds.nack = False
    ind = sample("LOC-IND").model_copy(update={"name": "Indiranagar Mall (fixed)"})
    await world.change(ind)
    await asyncio.sleep(DELAY)
    (report,) = await world.publisher.step()
    assert report.items == 4  # both locations
    assert not await world.redis.exists(bk.pub_rejected("IN-TPC"))


async def test_a_rejected_catalog_waits_for_a_fix(world: World) -> None:
    world.cds.reject = True
    (tpc,) = await world.publisher.publish_all("test", only="IN-TPC")
    await world.cds.settled()
    rows, _ = await cp.status(world.redis)
    row = next(r for r in rows if r.catalog_id == "catalog:IN-TPC")
    assert row.record["result"] == "REJECTED"
    assert row.record["result_error"] == "INVALID_ITEM item not acceptable"
    assert row.rejected == 2
    # what the CDS did not take is not recorded as published
    assert not await world.redis.hlen(bk.pub_loc("IN:TPC:loc-mg"))
    n = len(world.cds.requests)
    await asyncio.sleep(DELAY)
    assert await world.publisher.step() == [] and len(world.cds.requests) == n  # no loop
    lines = cp.status_lines(rows, {}, time.time())
    assert any("REJECTED" in line and "2 locations rejected" in line for line in lines)
    # fixed: the next change sends everything the CDS refused
    world.cds.reject = False
    await world.change(with_evse(sample("LOC-MG"), 0, "AVAILABLE", name="MG Road Hub (fixed)"))
    await asyncio.sleep(DELAY)
    (report,) = await world.publisher.step()
    assert report.items == 4
    await world.same_answers(only="catalog:IN-TPC")


async def test_full_republish_after_a_change_stream_gap(world: World) -> None:
    await world.publisher.publish_all("test")
    # the worker was down while the CPO removed a location and the stream was trimmed
    await world.redis.delete(okeys.obj("locations", "IN", "ZAP", "LOC-WF"))
    await world.redis.zrem(okeys.module_index("locations"), "IN:ZAP:LOC-WF")
    for _ in range(5):
        await world.redis.xadd(okeys.EVENTS, {"module": "sessions"})
    await world.redis.xtrim(okeys.EVENTS, maxlen=1, approximate=False)

    async def full(reason: str) -> None:
        await cp.request_full(world.redis, reason)

    assert await ensure_group(world.redis, world.store, on_rebuild=full)
    assert (await world.redis.get(bk.PUB_FULL) or b"").startswith(b"change-stream-gap")
    world.cds.requests.clear()
    reports = {r.provider: r for r in await world.publisher.step()}
    assert reports["IN-TPC"].items == 4  # everything again
    assert (reports["IN-ZAP"].items, reports["IN-ZAP"].withdrawn) == (0, 1)
    assert not await world.redis.exists(bk.PUB_FULL)
    await world.same_answers()
    _, stats = await cp.status(world.redis)
    assert stats["full_reason"].startswith("change-stream-gap")


async def test_a_worker_killed_mid_publish_loses_nothing(world: World) -> None:
    await world.publisher.publish_all("test")
    await world.change(with_evse(sample("LOC-MG"), 0, "CHARGING"))
    await asyncio.sleep(DELAY)
    # a worker claims the CPO and dies before sending
    claimed = await world.publisher._claim(
        keys=[bk.PUB_DUE, bk.pub_dirty("IN-TPC"), bk.pub_inflight("IN-TPC"),
              bk.pub_lease("IN-TPC"), bk.PUB_INFLIGHT_SET],
        args=["IN-TPC", int(time.time() * 1000), 60_000, "dead-worker", "0"])
    assert [c.decode() for c in claimed] == ["IN:TPC:loc-mg"]
    assert await world.publisher.step() == []  # held by the dead one
    await world.redis.delete(bk.pub_lease("IN-TPC"))  # its lease expires
    (report,) = await world.publisher.step()
    assert report.items == 2
    assert world.cds.index[MG_CCS][1]["beckn:descriptor"]["beckn:shortDesc"].endswith("Occupied")


async def test_only_changed_locations_are_marked(world: World) -> None:
    """The render marks its location dirty in its own MULTI; a store without a publish
    delay (no CDS configured) marks nothing."""
    plain = CatalogStore(world.redis, world.ocpi)
    await plain.render("IN", "TPC", "LOC-MG")
    assert not await world.redis.exists(bk.pub_dirty("IN-TPC"))
    await world.store.render("IN", "TPC", "LOC-MG")
    assert await world.redis.zscore(bk.pub_dirty("IN-TPC"), "IN:TPC:loc-mg") is not None
    due = await world.redis.zscore(bk.PUB_DUE, "IN-TPC")
    await asyncio.sleep(0.05)
    await world.store.render("IN", "TPC", "LOC-MG")  # the first change's deadline stays
    assert await world.redis.zscore(bk.PUB_DUE, "IN-TPC") == due


# --- on_catalog_publish: every refusal changes nothing


async def post_result(world: World, raw: bytes, key: Any = None, sub: str = CDS_ID,
                      key_id: str = CDS_KEY, auth: str | None = "sign",
                      path: str = "/beckn/catalog/on_publish") -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if auth == "sign":
        headers["Authorization"] = signing.Signer(sub, key_id, key or world.cds.key, 60).header(
            raw, time.time())
    elif auth is not None:
        headers["Authorization"] = auth
    async with world.http.post(f"{world.url}{path}", data=raw, headers=headers) as r:
        return r.status, orjson.loads(await r.read())


async def test_on_catalog_publish_refusals(world: World) -> None:
    world.cds.no_results = True
    (tpc,) = await world.publisher.publish_all("test", only="IN-TPC")
    txn = tpc.transactions[0]
    ctx = {"bap_id": BPP_ID, "bap_uri": world.settings.bpp_uri, "transaction_id": txn,
           "domain": "beckn.one:deg:ev-charging"}
    good = world.cds.result_body(ctx, [{"catalog_id": "catalog:IN-TPC", "status": "ACCEPTED",
                                        "item_count": 4}])
    before = await world.redis.hgetall(bk.pub_catalog("catalog:IN-TPC"))

    other = signing.generate_private_key()
    world.bap.registry[("intruder.test", "k1")] = {
        "subscriber_id": "intruder.test", "unique_key_id": "k1", "status": "SUBSCRIBED",
        "signing_public_key": signing.public_key_b64(other.public_key())}

    def body(**msg: Any) -> bytes:
        b = orjson.loads(good)
        b["message"] = msg
        return orjson.dumps(b)

    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"raw": good, "auth": None}, 401, "10001", ""),
        ({"raw": good, "key": other}, 401, "10001", ""),  # wrong key for the CDS's id
        ({"raw": good, "key": other, "sub": "intruder.test", "key_id": "k1"}, 401, "10001",
         "not_cds"),
        ({"raw": b"{not json"}, 400, "30000", ""),
        ({"raw": b"[1, 2]"}, 400, "30000", ""),
        ({"raw": body(results=[{"catalog_id": "catalog:IN-TPC", "status": "MAYBE"}])}, 400,
         "30000", "message.results.0.status"),
        ({"raw": body(results=[])}, 400, "30000", "message.results"),
        ({"raw": body(results=[{"catalog_id": "catalog:IN-ZAP", "status": "ACCEPTED"}])}, 400,
         "30000", "message.results.0.catalog_id"),
        ({"raw": good.replace(txn.encode(), str(uuid.uuid4()).encode())}, 400, "30000",
         "context.transaction_id"),
        ({"raw": good.replace(b'"on_catalog_publish"', b'"on_discover"')}, 400, "30000",
         "context.action"),
        ({"raw": b'{"x": "' + b"y" * (world.settings.beckn_max_body + 10) + b'"}'}, 413,
         "30000", ""),
    ]
    for kwargs, status, code, where in cases:
        got_status, got = await post_result(world, **kwargs)
        assert (got_status, got["ack_status"], got["error"]["code"]) == (status, "NACK", code), \
            (kwargs.get("sub"), got)
        details = got["error"].get("details", {})
        if where:
            assert where in (details.get("field"), details.get("reason")), got
    assert await world.redis.hgetall(bk.pub_catalog("catalog:IN-TPC")) == before
    # and the right one, at either path
    for path in ("/beckn/catalog/on_publish", "/beckn/on_catalog_publish"):
        status, got = await post_result(world, good, path=path)
        assert (status, got["ack_status"]) == (200, "ACK")
    rec = await world.redis.hgetall(bk.pub_catalog("catalog:IN-TPC"))
    assert rec[b"result"] == b"ACCEPTED" and rec[b"cds"] == CDS_ID.encode()


# --- the commands


async def run(cmd: Any, settings: Settings, **args: Any) -> int:
    code: int = await asyncio.to_thread(cmd, argparse.Namespace(**args), settings)
    return code


async def test_catalog_commands(world: World, capsys: Any) -> None:
    from bridge.commands.catalog import cmd_publish, cmd_status

    assert await run(cmd_publish, world.settings, cpo="IN-TPC") == 0
    out = capsys.readouterr().out
    assert "catalog:IN-TPC: 4 items in 1 request, 0 withdrawn" in out
    await world.cds.settled()
    assert await run(cmd_status, world.settings) == 0
    out = capsys.readouterr().out
    assert "catalog:IN-TPC; sent" in out and "CDS: ACCEPTED" in out and "4 items indexed" in out
    assert "last full publish" in out

    def one_line(prefix: str) -> str:
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith(prefix), err
        return err

    assert await run(cmd_publish, world.settings.replace(beckn_cds_url=""), cpo=None) == 1
    one_line("bridge catalog publish: no CDS: set beckn.cds_url")
    assert await run(cmd_publish, world.settings, cpo="tpc") == 1
    one_line("bridge catalog publish: --cpo: CC-PID expected")
    world.cds.fail_times = 100
    assert await run(cmd_publish, world.settings, cpo="IN-ZAP") == 1
    one_line("bridge catalog publish: IN-ZAP: the CDS is unavailable: HTTP 503")
    world.cds.fail_times = 0
    world.cds.nack = True
    assert await run(cmd_publish, world.settings, cpo="IN-ZAP") == 1
    one_line("bridge catalog publish: IN-ZAP: the CDS refused the publish: HTTP 400")


async def test_worker_publishes_on_start_only_when_configured(
        world: World, redis_client: aioredis.Redis) -> None:
    from bridge.extensions import _beckn_publish

    ctx: dict[str, Any] = {"settings": world.settings.replace(beckn_cds_url=""),
                           "redis_app": redis_client}
    assert await _beckn_publish(ctx) is None  # off by default
    ctx = {"settings": world.settings, "redis_app": redis_client,
           "beckn_catalog": world.store}
    task = await _beckn_publish(ctx)
    assert task is not None
    try:
        await wait_for(lambda: len(world.cds.index) == 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await world.same_answers()


async def test_adapter_mode_needs_a_key_to_publish(world: World, tmp_path: Path,
                                                   capsys: Any) -> None:
    from bridge.extensions import _beckn_publish

    s = world.settings.replace(beckn_mode="adapter", beckn_adapter_url="http://127.0.0.1:1/c",
                               beckn_private_key=str(tmp_path / "none" / "k.key"))
    with pytest.raises(cp.PublishError, match="adapter mode without a signing key"):
        cp.make_publisher(s, world.redis, world.store, world.publisher.http)
    # the worker says so at start and goes on without publishing
    assert await _beckn_publish({"settings": s, "redis_app": world.redis}) is None
    assert "beckn.CATALOG_NOT_PUBLISHED" in capsys.readouterr().out
