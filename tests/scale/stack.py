"""The whole bridge as processes, for the scale-out tests: N `bridge serve` on one
address (SO_REUSEPORT), M `bridge worker`, the mock CPO, and a signing BAP in the test
process that drives walk-in journeys and checks what it receives.

Redis is whatever the caller's settings say (`env`: BRIDGE_REDIS_URL, or
BRIDGE_REDIS_SENTINELS, ...). Everything listens on 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
from aiohttp import web

from bridge import redisconn
from bridge.beckn import signing
from bridge.config import Settings, load_settings
from bridge.demo import view
from bridge.notify import outbox
from bridge.store import shards
from bridge.store.credentials import CredentialsStore
from bridge.store.orders import OrderStore
from tests.conftest import ROOT, free_port
from tests.journey.conftest import init_message, order_message, select_message, update_message

BPP_ID = "bpp.scale.test"
BAP_ID = "bap.scale.test"
BAP_KEY = "bap-scale-key-1"
DOMAIN = "beckn.one:deg:ev-charging"
NETWORK = ROOT / "config" / "networks" / "india.toml"
ACK = orjson.dumps({"message": {"ack": {"status": "ACK"}}})

# Walk-in DC chargers of the bundled network (24/7, remote start, a tariff): one journey each.
CHARGERS = [("IN", "TPC", "TPC-HWY-MDR", "TPC-MDR-2", "1"),
            ("IN", "ZEO", "ZEO-BLR-IND", "ZEO-IND-1", "1"),
            ("IN", "STK", "STK-BLR-HBL", "STK-HBL-1", "1"),
            ("IN", "TPC", "TPC-BLR-WFD", "TPC-WFD-1", "1"),
            ("IN", "ZEO", "ZEO-PNQ-KP", "ZEO-KP-1", "1"),
            ("IN", "STK", "STK-DEL-SKT", "STK-SKT-2", "1")]


@dataclass
class Journey:
    txn: str
    charger: tuple[str, str, str, str, str]
    phone: str
    step: str = "start"
    error: str | None = None
    active_at: float | None = None  # on_update ACTIVE received (monotonic)
    completed_at: float | None = None


@dataclass
class Bap:
    """Signs like a BAP, answers the registry lookup, receives and verifies callbacks."""

    key: Any = field(default_factory=signing.generate_private_key)
    bridge_public: Any = None
    url: str = ""
    received: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    bad_signatures: int = 0
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def context(self, action: str, txn: str) -> dict[str, Any]:
        return {"domain": DOMAIN, "action": action, "version": "2.0.0", "bap_id": BAP_ID,
                "bap_uri": f"{self.url}/bap", "bpp_id": BPP_ID,
                "bpp_uri": "http://127.0.0.1/beckn", "transaction_id": txn,
                "message_id": str(uuid.uuid4()),
                "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "ttl": "PT60S"}

    async def lookup(self, request: web.Request) -> web.Response:
        q = await request.json()
        if (q.get("subscriber_id"), q.get("unique_key_id")) != (BAP_ID, BAP_KEY):
            return web.json_response([])
        return web.json_response([{
            "subscriber_id": BAP_ID, "unique_key_id": BAP_KEY, "status": "SUBSCRIBED",
            "type": "BAP", "subscriber_url": f"{self.url}/bap",
            "signing_public_key": signing.public_key_b64(self.key.public_key())}])

    async def callback(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            signing.verify(signing.parse_header(request.headers.get("Authorization", "")), raw,
                           self.bridge_public, time.time())
        except Exception:
            self.bad_signatures += 1
        m = orjson.loads(raw)
        self.received[m["context"]["transaction_id"]].append(m)
        self.event.set()
        return web.Response(body=ACK, content_type="application/json")

    async def track(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    async def wait_for(self, txn: str, action: str, seconds: float,
                       where: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            for m in self.received[txn]:
                if m["context"]["action"] == action and (where is None or where(m)):
                    return m
            if time.monotonic() > deadline:
                seen = [(m["context"]["action"], view.state(m)) for m in self.received[txn]]
                raise TimeoutError(f"no {action} for {txn} (seen: {seen[-6:]})")
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), 0.5)
            except TimeoutError:
                pass


class Stack:
    """serve x `serves` + worker x `workers` + ocpi-mock, on the Redis `env` names."""

    def __init__(self, tmp: Path, env: dict[str, str], serves: int = 2, workers: int = 2,
                 speed: float = 60, tick: int = 36, generate: int = 0) -> None:
        self.generate = generate
        self.tmp = tmp
        self.extra_env = env
        self.n_serves = serves
        self.n_workers = workers
        self.speed = speed
        self.tick = tick
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.bap = Bap()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mock_url = ""
        self._web: web.AppRunner | None = None
        self.http: aiohttp.ClientSession | None = None
        self.settings: Settings | None = None
        self.redis: aioredis.Redis | None = None
        self._otp_task: asyncio.Task[None] | None = None
        self.otps: dict[str, str] = {}

    # ------------------------------------------------------------------ processes

    def env(self) -> dict[str, str]:
        return {**os.environ, "BRIDGE_CONFIG": str(ROOT / "config" / "bridge.toml"),
                "BRIDGE_HOST": "127.0.0.1", "BRIDGE_PORT": str(self.port),
                "BRIDGE_PUBLIC_URL": self.url, "BRIDGE_LOG_FORMAT": "json",
                "BRIDGE_LOG_LEVEL": "info", "BRIDGE_WORKER_METRICS_PORT": "0",
                "BRIDGE_OCPI_RATE_LIMIT": "off", "BRIDGE_BECKN_RATE_LIMIT": "off",
                "BRIDGE_BECKN_SUBSCRIBER_ID": BPP_ID, "BRIDGE_BECKN_KEY_ID": "bpp-scale-1",
                "BRIDGE_BECKN_PRIVATE_KEY": str(self.tmp / "bridge.key"),
                "BRIDGE_BECKN_REGISTRY_URL": self.bap.url, "BRIDGE_BECKN_STATIC_KEYS": "",
                "BRIDGE_BECKN_CALLBACK_ALLOW": "",
                "BRIDGE_JOURNEY_PRICING_POLICY": str(ROOT / "config" / "pricing.toml"),
                "BRIDGE_JOURNEY_TRACK_INTERVAL": "5",
                # a push lost while Redis fails over is pulled soon after
                "BRIDGE_JOURNEY_RECONCILE_AFTER": "5",
                "BRIDGE_WORKER_JOB_LEASE": "5", "BRIDGE_OCPI_SYNC_INTERVAL": "0",
                **self.extra_env}

    def start_proc(self, name: str, args: list[str], env: dict[str, str]) -> None:
        with open(self.tmp / f"{name}.log", "ab") as log:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(args, env=env, cwd=ROOT, stdout=log,
                                                stderr=subprocess.STDOUT)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    async def each_serve_answers(self, tries: int = 64) -> bool:
        """True once every serve process has answered on the one port (SO_REUSEPORT).

        The kernel picks a listener per connection (a hash of its addresses), so a client
        that keeps one connection alive (the mock CPO's pushes) may meet only one serve:
        each try is a new connection (an unauthenticated GET /ocpi/versions, logged as
        http.auth_failed), until every serve's log shows a request or `tries` are spent."""
        def answered(i: int) -> bool:
            text = self.log(f"serve{i}")
            return "http.access" in text or "http.auth_failed" in text

        for _ in range(tries):
            if all(answered(i) for i in range(self.n_serves)):
                return True
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)
                                             ) as fresh, \
                    fresh.get(f"{self.url}/ocpi/versions") as r:
                await r.read()
            await asyncio.sleep(0.05)  # the line reaches the log file
        return all(answered(i) for i in range(self.n_serves))

    async def __aenter__(self) -> Stack:
        await self._start_bap()
        key = signing.generate_private_key()
        (self.tmp / "bridge.key").write_bytes(signing.private_key_pem(key))
        self.bap.bridge_public = key.public_key()
        env = self.env()
        self.settings = load_settings(env)
        py = sys.executable
        for i in range(self.n_serves):
            self.start_proc(f"serve{i}", [py, "-m", "bridge.cli", "serve", "--reuse-port"], env)
        for i in range(self.n_workers):
            self.start_proc(f"worker{i}", [py, "-m", "bridge.cli", "worker"], env)
        mport = free_port()
        self.mock_url = f"http://127.0.0.1:{mport}"
        self.start_proc("mock", [py, "-m", "ocpi_mock.cli", "serve", "--network", str(NETWORK),
                                 "--speed", str(self.speed), "--tick", str(self.tick),
                                 "--generate", str(self.generate), "--seed", "1"],
                        {**os.environ, "MOCK_CPO_HOST": "127.0.0.1",
                         "MOCK_CPO_PORT": str(mport), "MOCK_CPO_PUBLIC_URL": self.mock_url,
                         "MOCK_CPO_LOG_LEVEL": "warning"})
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        self.redis = redisconn.data(self.settings)
        try:
            await self._started()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _started(self) -> None:
        assert self.http is not None and self.redis is not None
        await self._ready()
        token_a = await CredentialsStore(self.redis).create_invite("IN", "TPC", ("IN", "ZEO"),
                                                                   ("IN", "STK"))
        async with self.http.post(f"{self.mock_url}/admin/connect", data=orjson.dumps(
                {"versions_url": f"{self.url}/ocpi/versions", "token": token_a}),
                timeout=aiohttp.ClientTimeout(total=120)) as r:
            assert r.status == 200, await r.text()
        self._otp_task = asyncio.create_task(self._tail_otps())

    async def __aexit__(self, *exc: object) -> None:
        if self._otp_task is not None:
            self._otp_task.cancel()
            await asyncio.gather(self._otp_task, return_exceptions=True)
        if self.http is not None:
            await self.http.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self._web is not None:
            await self._web.cleanup()
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    async def _start_bap(self) -> None:
        app = web.Application()
        app.router.add_post("/lookup", self.bap.lookup)
        app.router.add_post("/bap/{action}", self.bap.callback)
        app.router.add_patch("/track/{txn}", self.bap.track)
        self._web = web.AppRunner(app, access_log=None)
        await self._web.setup()
        port = free_port()
        await web.TCPSite(self._web, "127.0.0.1", port).start()
        self.bap.url = f"http://127.0.0.1:{port}"

    async def _ready(self, seconds: float = 60) -> None:
        assert self.http is not None
        deadline = time.monotonic() + seconds
        for url in (f"{self.url}/readyz", f"{self.mock_url}/ocpi/versions"):
            while True:
                dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
                assert not dead, f"exited: {dead}\n" + "\n".join(
                    self.log(n)[-2000:] for n in dead)
                try:
                    async with self.http.get(url) as r:
                        if r.status < 500:  # the mock's versions want a token: 401 is up
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, f"{url} not ready"
                await asyncio.sleep(0.2)
        await self.workers_ready()

    async def workers_ready(self) -> None:
        """Each worker says it started (its consumers run)."""
        deadline = time.monotonic() + 60
        for i in range(self.n_workers):
            while "worker.started" not in self.log(f"worker{i}"):
                assert time.monotonic() < deadline, self.log(f"worker{i}")[-3000:]
                await asyncio.sleep(0.2)

    async def _tail_otps(self) -> None:
        """The start codes the outbox holds, as the driver's phone would get them; reads
        again after any Redis error (a failover)."""
        assert self.redis is not None
        last = {outbox(s): "0" for s in shards.current().shards}  # every shard's stream
        while True:
            try:
                batch = []
                for stream, since in last.items():
                    batch += await self.redis.xread({stream: since}, count=500) or []
            except (aioredis.RedisError, OSError):
                await asyncio.sleep(0.2)
                continue
            if not any(entries for _, entries in batch):
                await asyncio.sleep(0.1)
            for stream, entries in batch:
                for mid, f in entries:
                    last[stream.decode() if isinstance(stream, bytes) else stream] = mid.decode()
                    text = f[b"text"].decode()
                    if f[b"kind"] == b"otp" and "start code" in text:
                        self.otps[f[b"phone"].decode()] = text.split(" is ")[1].split(".")[0]

    async def mock_state(self) -> dict[str, Any]:
        assert self.http is not None
        async with self.http.get(f"{self.mock_url}/admin/state") as r:
            data: dict[str, Any] = await r.json()
            return data

    # ------------------------------------------------------------------ the BAP's side

    async def post(self, action: str, txn: str, message: dict[str, Any],
                   retry_for: float = 60) -> str:
        """A signed request; retried (the same message) while the bridge answers an error
        (Redis failing over): the BAP's retry, which the bridge de-duplicates."""
        assert self.http is not None
        ctx = self.bap.context(action, txn)
        deadline = time.monotonic() + retry_for
        while True:
            ctx["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            body = orjson.dumps({"context": ctx, "message": message})
            headers = {"Content-Type": "application/json",
                       "Authorization": signing.Signer(BAP_ID, BAP_KEY, self.bap.key, 300)
                       .header(body, time.time())}
            try:
                async with self.http.post(f"{self.url}/beckn/{action}", data=body,
                                          headers=headers) as r:
                    ack = orjson.loads(await r.read())
                    if r.status == 200 and ack.get("ack_status") == "ACK":
                        return str(ctx["message_id"])
                    error = f"{r.status} {ack.get('error')}"
            except aiohttp.ClientError as exc:
                error = repr(exc)
            if time.monotonic() > deadline:
                raise AssertionError(f"{action} refused: {error}")
            await asyncio.sleep(0.5)

    async def call(self, action: str, txn: str, message: dict[str, Any]) -> dict[str, Any]:
        mid = await self.post(action, txn, message)
        m = await self.bap.wait_for(txn, f"on_{action}", 90,
                                    lambda m: m["context"]["message_id"] == mid)
        assert not m.get("error"), m["error"]
        return m

    async def journey(self, j: Journey, kwh: float = 4.0,
                      mid_charge: Callable[[], Awaitable[None]] | None = None) -> None:
        """Raghav's walk-in, one charger: select by kWh, init, pay, confirm, start with the
        code, charge to the target, CDR, settlement."""
        assert self.http is not None and self.redis is not None
        try:
            j.step = "select"
            await self.call("select", j.txn, select_message(j.charger, kwh=kwh))
            j.step = "init"
            await self.call("init", j.txn, init_message(j.phone))
            j.step = "pay"
            order = await OrderStore(self.redis).get(j.txn)
            assert order is not None
            async with self.http.post(order.payment["url"],
                                      headers={"Accept": "application/json"}) as r:
                assert r.status == 200, await r.text()
            await self.bap.wait_for(j.txn, "on_status", 60)
            j.step = "confirm"
            on_confirm = await self.call("confirm", j.txn, order_message())
            assert view.state(on_confirm) == "CONFIRMED", view.state(on_confirm)
            j.step = "otp"
            deadline = time.monotonic() + 30
            while j.phone not in self.otps:
                assert time.monotonic() < deadline, "no start code"
                await asyncio.sleep(0.1)
            j.step = "start"
            await self.post("update", j.txn, update_message("start-charging",
                                                            self.otps[j.phone]))
            m = await self.bap.wait_for(j.txn, "on_update", 90,
                                        lambda m: view.state(m) != "CONFIRMED")
            assert view.state(m) == "ACTIVE", (view.state(m), m.get("error"))
            j.active_at = time.monotonic()
            j.step = "charging"
            m = await self.bap.wait_for(j.txn, "on_update", 240,
                                        lambda m: view.state(m) in ("COMPLETED", "CANCELLED"))
            assert view.state(m) == "COMPLETED", view.state(m)
            j.completed_at = time.monotonic()
            j.step = "done"
        except Exception as exc:
            j.error = f"{j.step}: {type(exc).__name__}: {exc}"[:500]
            raise

    # ------------------------------------------------------------------ checks

    async def bills(self, journeys: list[Journey]) -> list[str]:
        """Every settled order balances to the paisa: paid + top-up = billed + refunded."""
        assert self.redis is not None
        bad = []
        for j in journeys:
            order = await OrderStore(self.redis).get(j.txn)
            assert order is not None and order.settlement, j.txn
            s = order.settlement
            paid = Decimal(str(order.payment.get("amount", "0")))
            if paid + Decimal(str(s.get("top_up", "0"))) != \
                    Decimal(str(s.get("final_amount", "-1"))) + Decimal(str(s.get("refund", "0"))):
                bad.append(f"{j.txn}: paid {paid} settlement {s}")
        return bad

    def doubled(self) -> dict[str, list[str]]:
        """Callbacks told twice: two different messages for one order change (one answer
        per request message id; one unsolicited on_update per order state; one on_status
        PAID). A re-delivery of the same message (same message_id) is not a double."""
        out: dict[str, list[str]] = {}
        for txn, msgs in self.bap.received.items():
            seen: dict[tuple[Any, ...], set[str]] = defaultdict(set)
            for m in msgs:
                ctx = m["context"]
                what = (ctx["action"], view.state(m), (m.get("error") or {}).get("code"))
                seen[what].add(ctx["message_id"])
            twice = [f"{k}: {len(v)}" for k, v in seen.items() if len(v) > 1]
            if twice:
                out[txn] = twice
        return out

    def redeliveries(self) -> int:
        n = 0
        for msgs in self.bap.received.values():
            ids = [(m["context"]["action"], m["context"]["message_id"], view.state(m))
                   for m in msgs]
            n += len(ids) - len(set(ids))
        return n


def new_journeys(n: int) -> list[Journey]:
    return [Journey(txn=str(uuid.uuid4()), charger=CHARGERS[i % len(CHARGERS)],
                    phone=f"+9197{i:08d}") for i in range(n)]
