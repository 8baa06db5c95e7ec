"""A stand-in Catalog Discovery Service (CDS): the rc2 "Catalog Publish" API
(`api/beckn.yaml`: `POST /beckn/catalog/publish`, results to the publisher's
`/catalog/on_publish`) with its own signing key and its own index, answering discover
from what it received.

- `POST /beckn/catalog/publish`: the publisher's signature is verified through the
  registry (`/lookup`), the body checked (`inspect` may plug a schema validator in),
  the catalogs indexed: an active catalog's items (and their offers) are added or
  replaced by item id; a catalog with `beckn:isActive: false` withdraws its items. ACK;
  then `on_catalog_publish` is sent, signed with the CDS's key, to
  `{context.bap_uri}/catalog/on_publish` with one result per catalog.
- `discover(point, meters)`: the items it holds within `meters` of `point` (their
  `beckn:availableAt` geometry), by catalog: what a BAP asking the CDS would get.

Faults: `fail_times` (503), `nack` (400 NACK), `reject` (REJECTED results with an error
path), `result_status`, `no_results`, `slow` (seconds before answering).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.beckn import signing
from bridge.beckn.errors import AuthError

CDS_ID = "cds.network.test"
CDS_KEY = "cds-key-1"


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(
        (lon2 - lon1) / 2) ** 2
    return 2 * 6_371_000.0 * math.asin(math.sqrt(h))


@dataclass
class StandInCds:
    registry_url: str
    key: Any = field(default_factory=signing.generate_private_key)
    url: str = ""
    # item id -> (catalog id, item, offer or None)
    index: dict[str, tuple[str, dict[str, Any], dict[str, Any] | None]] = field(
        default_factory=dict)
    headers: dict[str, dict[str, Any]] = field(default_factory=dict)  # catalog id -> header
    arrived: dict[str, float] = field(default_factory=dict)  # item id -> time last received
    requests: list[dict[str, Any]] = field(default_factory=list)
    signers: list[str] = field(default_factory=list)
    results_sent: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    inspect: Callable[[str, Any], None] | None = None
    # faults
    fail_times: int = 0
    nack: bool = False
    reject: bool = False
    result_status: str = "ACCEPTED"
    no_results: bool = False
    slow: float = 0.0
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def record(self) -> dict[str, Any]:
        return {"subscriber_id": CDS_ID, "unique_key_id": CDS_KEY, "type": "CDS",
                "status": "SUBSCRIBED",
                "signing_public_key": signing.public_key_b64(self.key.public_key())}

    async def _verify(self, request: web.Request, raw: bytes) -> str:
        header = signing.parse_header(request.headers.get("Authorization"))
        async with aiohttp.ClientSession() as http, http.post(
                f"{self.registry_url}/lookup",
                json={"subscriber_id": header.subscriber_id,
                      "unique_key_id": header.key_id}) as r:
            recs = await r.json()
        if not recs:
            raise AuthError(f"unknown key {header.key_ref}")
        signing.verify(header, raw, signing.public_key_from_b64(recs[0]["signing_public_key"]),
                       time.time())
        return header.subscriber_id

    async def publish(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.slow:
            await asyncio.sleep(self.slow)
        if self.fail_times > 0:
            self.fail_times -= 1
            self.refused.append((503, "down"))
            return web.Response(status=503, text="down for maintenance")
        try:
            signer = await self._verify(request, raw)
        except AuthError as exc:
            self.refused.append((401, exc.message))
            return web.json_response({"ack_status": "NACK", "error": {
                "code": "10001", "message": exc.message}}, status=401)
        body = orjson.loads(raw)
        ctx = body["context"]
        if self.inspect is not None:
            self.inspect("catalog/publish", body)
        if self.nack:
            self.refused.append((400, "nack"))
            return web.json_response({"transaction_id": ctx["transaction_id"],
                                      "ack_status": "NACK", "error": {
                                          "code": "30000", "message": "catalog not acceptable"}},
                                     status=400)
        self.signers.append(signer)
        self.requests.append(body)
        results = []
        for ci, cat in enumerate(body["message"]["catalogs"]):
            cid = cat["beckn:id"]
            head = {k: v for k, v in cat.items() if k not in ("beckn:items", "beckn:offers")}
            offers = {o["beckn:items"][0]: o for o in cat.get("beckn:offers", [])}
            items = cat.get("beckn:items", [])
            if self.reject:
                results.append({"catalog_id": cid, "status": "REJECTED", "error": {
                    "code": "INVALID_ITEM", "message": "item not acceptable",
                    "paths": f"catalogs[{ci}].items[0]"}})
                continue
            if cat.get("beckn:isActive", True) is False:
                for it in items:
                    self.index.pop(it["beckn:id"], None)
                    self.arrived[it["beckn:id"]] = time.monotonic()
            else:
                self.headers[cid] = head
                for it in items:
                    self.index[it["beckn:id"]] = (cid, it, offers.get(it["beckn:id"]))
                    self.arrived[it["beckn:id"]] = time.monotonic()
            results.append({"catalog_id": cid, "status": self.result_status,
                            "item_count": len(items),
                            "warnings": [{"code": "NON_NORMALIZED_NAME",
                                          "message": "names were normalised"}]})
        if not self.no_results:
            task = asyncio.create_task(self._on_publish(ctx, results))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response({"transaction_id": ctx["transaction_id"],
                                  "timestamp": datetime.now(UTC).isoformat(),
                                  "ack_status": "ACK"})

    def result_body(self, ctx: dict[str, Any], results: list[dict[str, Any]]) -> bytes:
        return orjson.dumps({
            "context": {"domain": ctx.get("domain"), "action": "on_catalog_publish",
                        "version": "2.0.0", "bap_id": ctx["bap_id"], "bap_uri": ctx["bap_uri"],
                        "bpp_id": CDS_ID, "bpp_uri": self.url,
                        "transaction_id": ctx["transaction_id"],
                        "message_id": str(uuid.uuid4()),
                        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                        "ttl": "PT30S"},
            "message": {"results": results}})

    async def _on_publish(self, ctx: dict[str, Any], results: list[dict[str, Any]]) -> None:
        raw = self.result_body(ctx, results)
        auth = signing.Signer(CDS_ID, CDS_KEY, self.key, 60).header(raw, time.time())
        async with aiohttp.ClientSession() as http, http.post(
                f"{ctx['bap_uri'].rstrip('/')}/catalog/on_publish", data=raw,
                headers={"Authorization": auth, "Content-Type": "application/json"}) as r:
            self.results_sent.append((r.status, orjson.loads(await r.read())))

    async def settled(self, timeout: float = 10.0) -> None:
        """Every on_catalog_publish sent."""
        deadline = time.monotonic() + timeout
        while self._tasks:
            if time.monotonic() > deadline:
                raise TimeoutError("on_catalog_publish still being sent")
            await asyncio.sleep(0.02)

    def discover(self, point: tuple[float, float], meters: float
                 ) -> dict[str, dict[str, tuple[dict[str, Any], dict[str, Any] | None]]]:
        out: dict[str, dict[str, tuple[dict[str, Any], dict[str, Any] | None]]] = {}
        for iid, (cid, item, offer) in self.index.items():
            geo = item["beckn:availableAt"][0]["geo"]["coordinates"]
            if haversine_m(point, (float(geo[0]), float(geo[1]))) <= meters:
                out.setdefault(cid, {})[iid] = (item, offer)
        return out


async def start_cds(cds: StandInCds) -> AsyncIterator[StandInCds]:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/beckn/catalog/publish", cds.publish)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    cds.url = str(server.make_url("/beckn")).rstrip("/")
    try:
        yield cds
    finally:
        for t in list(cds._tasks):
            t.cancel()
        await server.close()
