"""End-to-end harness: a real Redis, the bridge (serve + worker, in-process), the real mock
CPO at high speed, and a test BAP that signs its requests and verifies the bridge's callbacks.

Everything listens on 127.0.0.1; the worker runs as a task and is cancelled at the end.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from bridge.beckn import signing
from bridge.config import Settings
from bridge.demo import view
from bridge.mapping.catalog import item_id
from bridge.notify import Outbox
from bridge.store.credentials import CredentialsStore
from bridge.store.orders import Order, OrderStore
from ocpi_mock.app import create_app
from ocpi_mock.config import MockConfig
from tests.conftest import CALL_FAILED, ROOT, free_port

BPP_ID = "bpp.journey.test"
BAP_ID = "bap.journey.test"
BAP_KEY = "bap-key-1"
OTHER_BAP = "bap.other.test"  # a second, validly signed BAP (ownership tests)
LTS_BAP = "bap.lts.test"  # a BAP speaking Beckn 2.0 LTS (tests/lts), callbacks at /lts/...
# a draft BAP answered in the guide profile whatever the test's profile (callbacks at
# /guide/..., verified like the test BAP's): three dialects on one bridge (tests/lts)
GUIDE_BAP = "bap.guide.test"
DOMAIN = "beckn.one:deg:ev-charging"

# The Context schema says transaction ids are uuids: the scenarios name theirs, the wire
# carries the uuid made from the name.
TXN_NS = uuid.UUID("6f1d2a4e-3c5b-4e8f-9a7d-2b1c0e9f8a76")


def wire_txn(txn: str) -> str:
    try:
        return str(uuid.UUID(txn))
    except ValueError:
        return str(uuid.uuid5(TXN_NS, txn))


# Called with every body a BAP receives: ("on_select", body), ("ack", AckResponse),
# ("track", PATCH body). The conformance suite plugs a schema validator in here.
Inspect = Callable[[str, Any], None]

# Walk-in: 24/7 highway site; reservation: the same site's RESERVABLE CCS2 charger.
WALK_IN = ("IN", "TPC", "TPC-HWY-MDR", "TPC-MDR-2", "1")
RESERVABLE = ("IN", "TPC", "TPC-HWY-MDR", "TPC-MDR-1", "1")


@dataclass
class TestBap:
    """Signs like a BAP, serves the registry lookup, receives and verifies on_* and PATCHes."""

    key: Any
    bridge_public: Any = None  # Ed25519PublicKey of the bridge, to verify callbacks
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    patches: list[dict[str, Any]] = field(default_factory=list)
    unverified: int = 0
    down: bool = False
    event: asyncio.Event = field(default_factory=asyncio.Event)
    inspect: Inspect | None = None
    other_key: Any = None  # OTHER_BAP's signing key
    other_received: list[dict[str, Any]] = field(default_factory=list)
    # (action, message id, transaction id) of every request the bridge ACKed
    acked: list[tuple[str, str, str]] = field(default_factory=list)
    lts_key: Any = None  # LTS_BAP's signing key
    # answers POST {url}/lts/{action} (the LTS BAP of tests/lts plugs its handler in)
    lts_handler: Callable[[web.Request], Any] | None = None
    guide_key: Any = None  # GUIDE_BAP's signing key
    guide_received: list[dict[str, Any]] = field(default_factory=list)
    guide_unverified: int = 0

    def sign(self, body: bytes) -> str:
        return signing.Signer(BAP_ID, BAP_KEY, self.key, 300).header(body, time.time())

    def context(self, action: str, txn: str) -> dict[str, Any]:
        return {"domain": DOMAIN, "action": action, "version": "2.0.0", "bap_id": BAP_ID,
                "bap_uri": f"{self.url}/bap", "bpp_id": BPP_ID,
                "bpp_uri": "http://127.0.0.1/beckn", "transaction_id": wire_txn(txn),
                "message_id": str(uuid.uuid4()),
                "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "ttl": "PT30S"}

    def of(self, action: str, txn: str, inbox: list[dict[str, Any]] | None = None
           ) -> list[dict[str, Any]]:
        """The `action` callbacks of `txn` the test BAP got (or those in `inbox`, e.g.
        `guide_received`)."""
        return [m for m in (self.received if inbox is None else inbox)
                if m["context"]["action"] == action
                and m["context"]["transaction_id"] == wire_txn(txn)]

    async def wait_for(self, action: str, txn: str, count: int = 1, timeout: float = 20,
                       where: Callable[[dict[str, Any]], bool] | None = None,
                       inbox: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.of(action, txn, inbox) if where is None or where(m)]
            if len(found) >= count:
                return found[count - 1]
            if time.monotonic() > deadline:
                seen = [(m["context"]["action"], _state(m))
                        for m in (self.received if inbox is None else inbox)
                        if m["context"]["transaction_id"] == wire_txn(txn)]
                raise AssertionError(f"no {action} #{count} for {txn} (seen: {seen})")
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), 0.2)
            except TimeoutError:
                pass


    def unanswered(self) -> list[tuple[str, str, str]]:
        """ACKed requests with no answer yet: the answer to a request is the `on_{action}`
        carrying its message id (at whichever bap_uri the request named)."""
        answered = {(m["context"]["action"], m["context"]["message_id"])
                    for m in self.received + self.other_received + self.guide_received}
        return [(a, mid, txn) for a, mid, txn in self.acked if (f"on_{a}", mid) not in answered]

    async def every_ack_answered(self, timeout: float = 20) -> None:
        """No request is ever ACKed without an answer (issue 10): wait, bounded, for the
        answer of every ACKed request."""
        deadline = time.monotonic() + timeout
        while missing := self.unanswered():
            if time.monotonic() > deadline:
                raise AssertionError(f"ACKed and never answered: {missing}")
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), 0.2)
            except TimeoutError:
                pass

    def reused_message_ids(self) -> list[str]:
        """Message ids carried by two callbacks that are not the same message. An answer
        carries its request's message id (the guide's BAPs reuse one id across select,
        init and confirm: each action's answer carries it); a replay (a duplicate request
        answered again) is the very same body; an unsolicited callback has an id of its
        own. Anything else, such as an unsolicited on_update reusing the start's message
        id, is a collision that a BAP dropping repeated ids loses a message to."""
        asked: dict[str, set[str]] = {}
        for action, mid, _txn in self.acked:
            asked.setdefault(mid, set()).add(f"on_{action}")
        seen: dict[tuple[int, str, str], bytes] = {}
        out = []
        # per receiver: two BAPs may well pick the same message id
        for who, m in ([(0, m) for m in self.received] + [(1, m) for m in self.other_received]
                       + [(2, m) for m in self.guide_received]):
            ctx = {k: v for k, v in m["context"].items() if k != "timestamp"}
            mid, action = ctx["message_id"], ctx["action"]
            same = orjson.dumps({**m, "context": ctx}, option=orjson.OPT_SORT_KEYS)
            key = (who, action if action in asked.get(mid, ()) else "unsolicited", mid)
            if seen.setdefault(key, same) != same and mid not in out:
                out.append(mid)
            if key[1] == "unsolicited" and mid in asked and mid not in out:
                out.append(mid)  # the id of a request, on a callback that is no answer to it
        return out


def _state(m: dict[str, Any]) -> Any:
    """(order state in the guide's words, fulfilment status, error code), either profile."""
    return view.state(m), view.fulfillment(m)[0], (m.get("error") or {}).get("code")


def state_of(m: dict[str, Any]) -> tuple[Any, Any, Any]:
    return _state(m)


@dataclass
class World:
    bap: TestBap
    settings: Settings
    http: aiohttp.ClientSession
    redis: aioredis.Redis
    mock_url: str
    bridge_url: str

    @property
    def orders(self) -> OrderStore:
        return OrderStore(self.redis)

    @staticmethod
    def txn(name: str) -> str:
        """The transaction id on the wire (and in the store) of a scenario's name."""
        return wire_txn(name)

    async def post(self, action: str, txn: str, message: dict[str, Any] | None,
                   sign: bool = True, *, as_bap: str | None = None,
                   context: dict[str, Any] | None = None,
                   top: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """Send a signed request as the test BAP (or as `OTHER_BAP`, whose callbacks go
        to {bap url}/other); `context` overrides fields of the context; `top` are fields
        beside it (the guide's discover), and a `message` of None is left out."""
        ctx = self.bap.context(action, txn)
        if as_bap == OTHER_BAP:
            ctx.update(bap_id=OTHER_BAP, bap_uri=f"{self.bap.url}/other")
        elif as_bap == GUIDE_BAP:
            ctx.update(bap_id=GUIDE_BAP, bap_uri=f"{self.bap.url}/guide")
        ctx.update(context or {})
        payload: dict[str, Any] = {"context": ctx, **(top or {})}
        if message is not None:
            payload["message"] = message
        body = orjson.dumps(payload)
        headers = {"Content-Type": "application/json"}
        if sign and as_bap == OTHER_BAP:
            headers["Authorization"] = signing.Signer(OTHER_BAP, BAP_KEY, self.bap.other_key,
                                                      300).header(body, time.time())
        elif sign and as_bap == GUIDE_BAP:
            headers["Authorization"] = signing.Signer(GUIDE_BAP, BAP_KEY, self.bap.guide_key,
                                                      300).header(body, time.time())
        elif sign:
            headers["Authorization"] = self.bap.sign(body)
        async with self.http.post(f"{self.bridge_url}/beckn/{action}", data=body,
                                  headers=headers) as r:
            ack = orjson.loads(await r.read())
        if self.bap.inspect is not None:
            self.bap.inspect("ack", ack)
        if ack.get("ack_status") == "ACK":
            self.bap.acked.append((action, ctx["message_id"], ctx["transaction_id"]))
        return r.status, ack

    async def check_wire(self) -> None:
        """What every journey must keep to, whatever it did: every ACKed request is
        answered, and no two different callbacks share a message id."""
        await self.bap.every_ack_answered()
        assert not self.bap.reused_message_ids(), self.bap.reused_message_ids()

    async def call(self, action: str, txn: str, message: dict[str, Any],
                   callback: str | None = None, *, as_bap: str | None = None
                   ) -> dict[str, Any]:
        """Send `action` and wait for its answer (the next `on_{action}` of the
        transaction); `as_bap` GUIDE_BAP: sent and answered as the guide BAP."""
        cb = callback or f"on_{action}"
        inbox = self.bap.guide_received if as_bap == GUIDE_BAP else None
        seen = len(self.bap.of(cb, txn, inbox))
        status, ack = await self.post(action, txn, message, as_bap=as_bap)
        assert (status, ack["ack_status"]) == (200, "ACK"), ack
        return await self.bap.wait_for(cb, txn, count=seen + 1, inbox=inbox)

    async def otp(self, phone: str) -> str:
        msgs = await Outbox(self.redis).messages(phone)
        for m in reversed(msgs):
            if m.kind == "otp" and "start code" in m.text:
                return m.text.split(" is ")[1].split(".")[0]
        raise AssertionError(f"no start code sent to {phone}")

    async def order(self, txn: str) -> Order:
        o = await self.orders.get(wire_txn(txn))
        assert o is not None
        return o

    async def mock(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, f"{self.mock_url}{path}",
                                     data=orjson.dumps(body) if body is not None else None) as r:
            assert r.status < 300, await r.text()
            return await r.json()


def select_message(item: tuple[str, str, str, str, str], *, budget: float | None = None,
                   kwh: float | None = None, start: datetime | None = None,
                   end: datetime | None = None, bff: str | None = None) -> dict[str, Any]:
    line: dict[str, Any] = {"beckn:lineId": "line-001", "beckn:orderedItem": item_id(*item),
                            "beckn:quantity": 1}
    if budget is not None:
        line["beckn:price"] = {"currency": "INR", "value": budget}
    if kwh is not None:
        line["beckn:orderItemAttributes"] = {"quantity-measure": {"type": "CONSTANT",
                                                                  "value": str(kwh), "unit": "KWH"}}
    attrs: dict[str, Any] = {"fulfillment-details": {"vehicle": {"make": "Tata",
                                                                 "model": "Nexon EV"}}}
    stops = []
    if start:
        stops.append({"type": "START", "time": {"timestamp": start.isoformat()}})
    if end:
        stops.append({"type": "STOP", "time": {"timestamp": end.isoformat()}})
    if stops:
        attrs["fulfillment-details"]["stops"] = stops
    if bff:
        attrs["buyer-finder-fee"] = {"type": "PERCENTAGE", "value": bff}
    return {"order": {"@type": "beckn:Order", "beckn:orderItems": [line],
                      "beckn:orderAttributes": attrs}}


def init_message(phone: str, mode: str = "PRE-FULFILLMENT") -> dict[str, Any]:
    return {"order": {"@type": "beckn:Order", "beckn:orderAttributes": {
        "billing-details": {"beckn:payer": "driver-1", "schema:name": "Srilekha",
                            "schema:email": "s@example.org", "schema:telephone": phone},
        "payment-details": {"payment-type": mode}}}}


def update_message(code: str, otp: str | None = None) -> dict[str, Any]:
    fu: dict[str, Any] = {"state": {"code": code}}
    if otp is not None:
        fu["authorization"] = {"type": "OTP", "token": otp}
    return {"order": {"@type": "beckn:Order",
                      "beckn:orderAttributes": {"fulfillment-update": fu}}}


def order_message(order_id: str | None = None) -> dict[str, Any]:
    return {"order": {"@type": "beckn:Order", **({"beckn:id": order_id} if order_id else {})}}


async def pay(world: World, txn: str) -> None:
    order = await world.order(txn)
    async with world.http.post(order.payment["url"], headers={"Accept": "application/json"}) as r:
        assert r.status == 200, await r.text()


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture
def speed() -> int:
    return 60


@pytest.fixture
def bridge_overrides() -> dict[str, Any]:
    """Settings fields a test module changes for its bridge (override this fixture)."""
    return {}


@pytest.fixture
def profile() -> str:
    """The wire profile the bridge answers the test BAP in (the conformance suite runs
    the scenarios in each)."""
    return "rc2"


@pytest.fixture
async def world(redis_url: str, tmp_path: Path, speed: int, profile: str,
                bridge_overrides: dict[str, Any], request: pytest.FixtureRequest
                ) -> AsyncIterator[World]:
    from bridge.app import build_app
    from bridge.extensions import app_extensions, worker_extensions
    from bridge.worker import build_worker

    bap = TestBap(key=signing.generate_private_key(), other_key=signing.generate_private_key(),
                  lts_key=signing.generate_private_key(),
                  guide_key=signing.generate_private_key())
    bridge_key = signing.generate_private_key()
    key_path = tmp_path / "bridge.key"
    key_path.write_bytes(signing.private_key_pem(bridge_key))
    bap.bridge_public = bridge_key.public_key()

    async def lookup(request: web.Request) -> web.Response:
        q = await request.json()
        keys = {BAP_ID: bap.key, OTHER_BAP: bap.other_key, LTS_BAP: bap.lts_key,
                GUIDE_BAP: bap.guide_key}
        sub = q.get("subscriber_id")
        if sub not in keys or q.get("unique_key_id") != BAP_KEY:
            return web.json_response([])
        return web.json_response([{"subscriber_id": sub, "unique_key_id": BAP_KEY,
                                   "status": "SUBSCRIBED", "type": "BAP",
                                   "signing_public_key": signing.public_key_b64(
                                       keys[sub].public_key())}])

    async def other_callback(request: web.Request) -> web.Response:
        bap.other_received.append(orjson.loads(await request.read()))
        bap.event.set()
        return web.json_response({"ack_status": "ACK"})

    async def callback(request: web.Request) -> web.Response:
        if bap.down:
            return web.Response(status=503)
        raw = await request.read()
        if not _verified(request.headers.get("Authorization", ""), raw, bap.bridge_public):
            bap.unverified += 1
        body = orjson.loads(raw)
        if bap.inspect is not None:
            bap.inspect(request.match_info["action"], body)
        bap.received.append(body)
        bap.event.set()
        return web.json_response({"ack_status": "ACK"})

    async def guide_callback(request: web.Request) -> web.Response:
        raw = await request.read()
        if not _verified(request.headers.get("Authorization", ""), raw, bap.bridge_public):
            bap.guide_unverified += 1
        bap.guide_received.append(orjson.loads(raw))
        bap.event.set()
        return web.json_response({"ack_status": "ACK"})

    async def track_patch(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        if bap.inspect is not None:
            bap.inspect("track", body)
        bap.patches.append(body)
        bap.event.set()
        return web.Response(status=204)

    async def lts_callback(request: web.Request) -> web.StreamResponse:
        if bap.lts_handler is None:
            return web.Response(status=404)
        response: web.StreamResponse = await bap.lts_handler(request)
        return response

    bap_app = web.Application()
    bap_app.router.add_post("/lookup", lookup)
    bap_app.router.add_post("/bap/{action}", callback)
    bap_app.router.add_post("/other/{action}", other_callback)
    bap_app.router.add_post("/guide/{action}", guide_callback)
    bap_app.router.add_post("/lts/{action}", lts_callback)
    bap_app.router.add_patch("/track/{order}", track_patch)
    bap_port, bridge_port, mock_port = free_port(), free_port(), free_port()
    bap.url = f"http://127.0.0.1:{bap_port}"
    settings = Settings(
        redis_url=redis_url, host="127.0.0.1", port=bridge_port,
        public_url=f"http://127.0.0.1:{bridge_port}", beckn_subscriber_id=BPP_ID,
        beckn_key_id="bpp-key-1", beckn_private_key=str(key_path), beckn_registry_url=bap.url,
        beckn_callback_backoff=0.05, beckn_callback_max_backoff=1.0, beckn_callback_timeout=2.0,
        journey_pricing_policy=str(ROOT / "config" / "pricing.toml"), journey_track_interval=0.2,
        journey_interrupt_after=2.0, journey_outage_end_after=4.0, journey_watchdog_every=0.3,
        journey_command_grace=1.0, ocpi_allow_loopback_urls=True,
        **{"beckn_guide_bap_ids": f"{BAP_ID},{GUIDE_BAP}" if profile == "guide" else GUIDE_BAP,
           **bridge_overrides})
    mock_cfg = replace(MockConfig(network=ROOT / "config" / "networks" / "india.toml"),
                       speed=speed, tick_seconds=15, push_attempts=3, push_backoff=0.02,
                       push_timeout=5, command_timeout=2, start_delay_seconds=30,
                       park_after_full_seconds=360, port=mock_port,
                       public_url=f"http://127.0.0.1:{mock_port}")

    worker_extensions()
    runners = [await _serve(bap_app, bap_port),
               await _serve(build_app(settings, extensions=app_extensions()), bridge_port),
               await _serve(create_app(mock_cfg), mock_port)]
    worker = build_worker(settings, burst=False)
    worker_task = asyncio.create_task(worker.async_run())
    redis = aioredis.Redis.from_url(redis_url)
    async with aiohttp.ClientSession() as http:
        w = World(bap, settings, http, redis, mock_cfg.base_url, settings.public_url)
        token_a = await CredentialsStore(redis).create_invite(
            "IN", "TPC", ("IN", "ZEO"), ("IN", "STK"))
        await w.mock("POST", "/admin/connect", {"versions_url": f"{w.bridge_url}/ocpi/versions",
                                                "token": token_a})
        try:
            yield w
            if not request.node.stash.get(CALL_FAILED, False):
                await w.check_wire()
        finally:
            worker_task.cancel()
            await asyncio.gather(worker_task, return_exceptions=True)
            await worker.close()
            for r in reversed(runners):
                await r.cleanup()
            await redis.aclose()


def _verified(header: str, body: bytes, public: Any) -> bool:
    try:
        parsed = signing.parse_header(header)
        signing.verify(parsed, body, public, time.time())
        return True
    except Exception:
        return False


__all__ = ["RESERVABLE", "WALK_IN", "World", "base64", "timedelta"]
