"""Catalog publish in Beckn 2.0 LTS (`beckn.publish_profile = "lts"`): the same publisher
as the draft's (tests/beckn/test_catalog_publish.py), its requests to a stand-in LTS CDS
as the LTS writes them, the CDS's results back at our `/catalog/on_publish`."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.beckn import catalog_publish as cp
from bridge.beckn import countersign, signing
from bridge.beckn.errors import AuthError
from bridge.config import Settings
from tests.beckn.cds_double import CDS_ID, CDS_KEY, StandInCds
from tests.beckn.conftest import (  # noqa: F401  (its fixtures, for the publish harness)
    BPP_ID,
    LoopbackBap,
    bap,
    bridge_key,
    profile,
    settings,
)
from tests.beckn.test_catalog_publish import (  # noqa: F401
    MG_CCS,
    World,
    sample,
    with_evse,
    world,
)
from tests.conftest import free_port
from tests.lts.conftest import check_counter


@dataclass
class LtsCds(StandInCds):
    """The stand-in CDS speaking the LTS: `POST /catalog/publish`, results to
    `{context.bapUri}/catalog/on_publish`, Acks counter-signed with its key."""

    result_raws: list[bytes] = field(default_factory=list)  # the results it sent

    async def publish(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            signer = await self._verify(request, raw)
        except AuthError as exc:
            return self._ack(raw, "", 401, "10001", exc.message)
        body = orjson.loads(raw)
        ctx = body["context"]
        if self.inspect is not None:
            self.inspect("request:catalog/publish", body)
        if self.nack:
            self.refused.append((400, "nack"))
            return self._ack(raw, ctx["messageId"], 400, "30000", "catalog not acceptable")
        self.signers.append(signer)
        self.requests.append(body)
        results = []
        for cat in body["message"]["catalogs"]:
            cid = cat["id"]
            resources = cat.get("resources") or []
            if self.reject:
                results.append({"catalogId": cid, "status": "REJECTED", "errors": [
                    {"errorCode": "INVALID_ITEM", "errorMessage": "item not acceptable"}]})
                continue
            offers = {o["resourceIds"][0]: o for o in cat.get("offers") or []}
            for r in resources:
                if cat.get("isActive", True) is False:
                    self.index.pop(r["id"], None)
                else:
                    self.index[r["id"]] = (cid, r, offers.get(r["id"]))
            results.append({"catalogId": cid, "status": self.result_status,
                            "stats": {"itemCount": len(resources)}})
        task = asyncio.create_task(self._on_publish(ctx, results))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return self._ack(raw, ctx["messageId"])

    def _ack(self, raw: bytes, message_id: str, status: int = 200, code: str = "",
             text: str = "") -> web.Response:
        ack: dict[str, Any] = {"status": "ACK" if status == 200 else "NACK"}
        if code:
            ack["error"] = {"errorCode": code, "errorMessage": text}
        ack["signature"] = countersign.counter_sign(self.key.sign, CDS_ID, CDS_KEY, ack, raw,
                                                    message_id, time.time(), 300)
        return web.json_response(ack, status=status)

    def result_body(self, ctx: dict[str, Any], results: list[dict[str, Any]]) -> bytes:
        return orjson.dumps({
            "context": {"action": "catalog/on_publish", "version": "2.0.0",
                        "bapId": ctx["bapId"], "bapUri": ctx["bapUri"], "bppId": CDS_ID,
                        "bppUri": self.url, "transactionId": ctx["transactionId"],
                        "messageId": str(uuid.uuid4()),
                        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")},
            "message": {"results": results}})

    async def _on_publish(self, ctx: dict[str, Any], results: list[dict[str, Any]]) -> None:
        raw = self.result_body(ctx, results)
        auth = signing.Signer(CDS_ID, CDS_KEY, self.key, 60).header(raw, time.time())
        async with aiohttp.ClientSession() as http, http.post(
                f"{ctx['bapUri'].rstrip('/')}/catalog/on_publish", data=raw,
                headers={"Authorization": auth, "Content-Type": "application/json"}) as r:
            ack = orjson.loads(await r.read())
            if self.inspect is not None:
                self.inspect(f"ack:{r.status}", ack)
            self.results_sent.append((r.status, ack))
            self.result_raws.append(raw)


@pytest.fixture
async def cds(bap: LoopbackBap, bridge_key: Any) -> AsyncIterator[LtsCds]:  # noqa: F811
    stand_in = LtsCds(bap.url)
    bap.registry[(CDS_ID, CDS_KEY)] = stand_in.record
    bap.registry[(BPP_ID, "bpp-key-1")] = {
        "subscriber_id": BPP_ID, "unique_key_id": "bpp-key-1", "status": "SUBSCRIBED",
        "signing_public_key": signing.public_key_b64(bridge_key[0].public_key())}
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/catalog/publish", stand_in.publish)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    stand_in.url = str(server.make_url("")).rstrip("/")
    try:
        yield stand_in
    finally:
        for t in list(stand_in._tasks):
            t.cancel()
        await server.close()


@pytest.fixture
def pub_settings(settings: Settings, cds: LtsCds) -> Settings:  # noqa: F811
    port = free_port()
    return settings.replace(
        port=port, public_url=f"http://127.0.0.1:{port}", beckn_cds_url=cds.url,
        beckn_cds_subscriber_id=CDS_ID, beckn_publish_profile="lts", beckn_publish_delay=0.4,
        beckn_publish_backoff=0.05, beckn_publish_max_backoff=0.2, beckn_publish_retries=3)


async def test_lts_publish_and_results(world: World) -> None:  # noqa: F811
    """A full publish goes out in the LTS's words, one catalog per CPO of Resources and
    Offers; the CDS's results come back to /catalog/on_publish, are checked and stored,
    and answered with an Ack the bridge counter-signs."""
    reports = await world.publisher.publish_all("test")
    await world.cds.settled()
    assert reports and world.cds.requests
    body = world.cds.requests[0]
    assert body["context"]["action"] == "catalog/publish"
    assert body["context"]["bppId"] == BPP_ID and "bpp_id" not in body["context"]
    cat = body["message"]["catalogs"][0]
    assert cat["resources"] and "beckn:items" not in cat and "bppId" not in cat
    assert MG_CCS in world.cds.index
    assert world.cds.results_sent and all(
        s == 200 and a["status"] == "ACK" for s, a in world.cds.results_sent)
    ours = signing.load_private_key(world.settings.beckn_private_key).public_key()
    for (_s, ack), raw in zip(world.cds.results_sent, world.cds.result_raws, strict=True):
        check_counter(ack, raw, orjson.loads(raw)["context"]["messageId"], ours, BPP_ID)
    rows, _stats = await cp.status(world.redis)
    assert rows and all(r.record.get("result") == "ACCEPTED" for r in rows), rows


async def test_lts_withdrawal_and_rejection(world: World) -> None:  # noqa: F811
    await world.publisher.publish_all("test")
    await world.cds.settled()
    assert MG_CCS in world.cds.index
    # the EVSE removed: its Resource withdrawn in a catalog with isActive false
    await world.change(with_evse(sample("LOC-MG"), 0, "REMOVED"))
    await world.publisher.publish_provider("IN-TPC", full=True)
    await world.cds.settled()
    assert MG_CCS not in world.cds.index
    gone = [c for b in world.cds.requests for c in b["message"]["catalogs"]
            if c.get("isActive") is False]
    assert gone and gone[-1]["resources"][0]["descriptor"]["code"] == "withdrawn"
    # a REJECTED result: the catalog's locations wait for a fix
    world.cds.reject = True
    await world.change(with_evse(sample("LOC-MG"), 1, "CHARGING"))
    await world.publisher.publish_provider("IN-TPC", full=True)
    await world.cds.settled()
    rows, _ = await cp.status(world.redis)
    tpc = next(r for r in rows if r.catalog_id == "catalog:IN-TPC")
    assert tpc.record["result"] == "REJECTED" and tpc.rejected, tpc
    assert "INVALID_ITEM item not acceptable" in tpc.record["result_error"]


async def test_lts_on_publish_refusals(world: World) -> None:  # noqa: F811
    """Results for a transaction that is not ours, unsigned, or in the draft's shape are
    refused in the LTS's shape (counter-signed); nothing is stored."""
    cds = world.cds
    url = f"{world.url}/catalog/on_publish"

    async def post(raw: bytes, sign: bool = True) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if sign:
            headers["Authorization"] = signing.Signer(CDS_ID, CDS_KEY, cds.key, 60).header(
                raw, time.time())
        async with world.http.post(url, data=raw, headers=headers) as r:
            ack = orjson.loads(await r.read())
        if cds.inspect is not None:
            cds.inspect(f"ack:{r.status}", ack)
        return r.status, ack

    ctx = {"bapId": BPP_ID, "bapUri": world.url, "transactionId": str(uuid.uuid4())}
    raw = cds.result_body(ctx, [{"catalogId": "catalog:IN-TPC", "status": "ACCEPTED"}])
    status, ack = await post(raw)
    assert status == 400 and ack["status"] == "NACK" and ack["signature"], ack
    assert "context.transaction_id" in ack["error"]["errorMessage"] or \
        "not a catalog publish of ours" in ack["error"]["errorMessage"], ack
    status, ack = await post(raw, sign=False)
    assert status == 401 and ack["error"]["errorCode"] == "10001", ack
    status, ack = await post(orjson.dumps({"context": {"action": "on_catalog_publish",
                                                      "transaction_id": "x"},
                                          "message": {"results": []}}))
    assert status == 400 and "transactionId" in ack["error"]["errorMessage"], ack
    rows, _ = await cp.status(world.redis)
    assert not any(r.record.get("result") for r in rows)
