# ruff: noqa: ASYNC110  (processes are started and stopped, logs read, on purpose)
"""The chaos stack: real processes on loopback, and a BAP that behaves like one.

    redis-server        its own directory, AOF on (appendfsync everysec)
    bridge serve        `python -m bridge.cli serve`, restartable, a crash point per start
    bridge worker       `python -m bridge.cli worker`, restartable, a crash point per start
    ocpi-mock serve     --speed 120, a generated network (SIGSTOP = unreachable)
    the BAP             this process: signs its requests, serves the registry lookup,
                        receives the callbacks; retries a request with the same message id
                        until it is answered, as a BAP does; can go down (its port closed)

`Journey` plays one driver's order end to end with those retries; `audit` checks an
order afterwards: its end, its books against the gateway to the paisa, one callback
per thing told, one SMS per thing told, one command per order step, one session at
the CPO, nothing left in flight.
"""

from __future__ import annotations

import asyncio
import os
import signal
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
from typing import Any, TypeVar

import aiohttp
import orjson
import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from aiohttp import web

from bridge.beckn import signing
from bridge.config import Settings
from bridge.demo import view
from bridge.journey.common import JourneyDeps
from bridge.journey.release import plan as release_plan
from bridge.journey.settle import settlement_of
from bridge.notify import OUTBOX
from bridge.ocpi.models import CDR
from bridge.payments import SandboxGateway
from bridge.store.credentials import CredentialsStore
from bridge.store.orders import INFLIGHT, Order, OrderStore
from bridge.store.tokens import command_key
from tests.conftest import ROOT, RedisServer, free_port, redis_binary
from tests.journey.conftest import init_message, order_message, select_message, update_message

BPP_ID = "bpp.chaos.test"
BAP_ID = "bap.chaos.test"
BAP_KEY = "bap-chaos-key-1"
DOMAIN = "beckn.one:deg:ev-charging"
NETWORK = ROOT / "config" / "networks" / "india.toml"
T = TypeVar("T")
GENERATE, SEED = 60, 7  # the mock's extra sites: walk-in chargers for every journey
D = Decimal


def state_of(m: dict[str, Any]) -> tuple[Any, Any, Any]:
    return view.state(m), view.fulfillment(m)[0], (m.get("error") or {}).get("code")


# --------------------------------------------------------------------------- processes


class Proc:
    """One restartable child process; its output appended to a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.armed = False  # started with crash points

    def start(self, **extra_env: str) -> None:
        assert not self.alive()
        out = open(self.log, "ab")  # the child holds it
        self.proc = subprocess.Popen(self.args, env={**self.env, **extra_env}, cwd=ROOT,
                                     stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.starts += 1
        self.armed = bool(extra_env.get("BRIDGE_TEST_CRASH_POINT"))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    async def exited(self, timeout: float) -> int | None:
        """The exit code once it has exited (None if still running after `timeout`)."""
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return None if self.alive() else self.proc.returncode  # type: ignore[union-attr]


# --------------------------------------------------------------------------- the BAP


@dataclass
class Bap:
    key: Any
    url: str = ""
    port: int = 0
    received: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    event: asyncio.Event = field(default_factory=asyncio.Event)
    down: bool = False
    runner: web.AppRunner | None = None
    site: web.TCPSite | None = None
    refused_while_down = 0

    def signer(self) -> signing.Signer:
        return signing.Signer(BAP_ID, BAP_KEY, self.key, 300)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/lookup", self._lookup)
        app.router.add_post("/bap/{action}", self._callback)
        app.router.add_patch("/track/{txn}", self._patch)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        self.port = self.port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        await self.up()

    async def up(self) -> None:
        assert self.runner is not None
        self.site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await self.site.start()
        self.down = False

    async def go_down(self) -> None:
        """The BAP's host is gone: new connections refused (the registry lookup too), and
        the bridge's open keep-alive connections cut, so nothing reaches it."""
        assert self.site is not None and self.runner is not None
        self.down = True
        await self.site.stop()
        for handler in list(self.runner.server.connections if self.runner.server else ()):
            if handler.transport is not None:
                handler.transport.close()

    def _gone(self, request: web.Request) -> bool:
        """Down: a request on a connection that outlived the outage gets no answer."""
        if self.down and request.transport is not None:
            self.refused_while_down += 1
            request.transport.close()
        return self.down

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _lookup(self, request: web.Request) -> web.Response:
        if self._gone(request):
            return web.Response(status=503)
        q = await request.json()
        if (q.get("subscriber_id"), q.get("unique_key_id")) != (BAP_ID, BAP_KEY):
            return web.json_response([])
        return web.json_response([{"subscriber_id": BAP_ID, "unique_key_id": BAP_KEY,
                                   "status": "SUBSCRIBED", "type": "BAP",
                                   "signing_public_key": signing.public_key_b64(
                                       self.key.public_key())}])

    async def _callback(self, request: web.Request) -> web.Response:
        if self._gone(request):
            return web.Response(status=503)
        m = orjson.loads(await request.read())
        self.received[m["context"]["transaction_id"]].append(m)
        self.event.set()
        return web.json_response({"message": {"ack": {"status": "ACK"}}})

    async def _patch(self, request: web.Request) -> web.Response:
        if self._gone(request):
            return web.Response(status=503)
        await request.read()
        return web.Response(status=204)

    def of(self, txn: str, action: str) -> list[dict[str, Any]]:
        return [m for m in self.received[txn] if m["context"]["action"] == action]

    async def wait(self, txn: str, action: str, timeout: float, where: Any = None
                   ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            for m in self.of(txn, action):
                if where is None or where(m):
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), min(left, 0.5))
            except TimeoutError:
                pass


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    tmp: Path
    redis_server: RedisServer
    redis: aioredis.Redis
    http: aiohttp.ClientSession
    bap: Bap
    serve: Proc
    worker: Proc
    mock: Proc
    bridge_url: str
    mock_url: str
    chargers: list[tuple[str, str, str, str, str]]
    faults: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    used: int = 0

    def charger(self) -> tuple[str, str, str, str, str]:
        """A charger no journey of this run used: sessions on one never overlap."""
        item = self.chargers[self.used]
        self.used += 1
        return item

    @property
    def orders(self) -> OrderStore:
        return OrderStore(self.redis)

    async def ready(self, timeout: float = 30) -> None:
        """serve answers /readyz and the worker runs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.serve.alive() and self.worker.alive():
                try:
                    async with self.http.get(f"{self.bridge_url}/readyz",
                                             timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"the bridge is not up: serve {self.serve.alive()}, "
                             f"worker {self.worker.alive()}")

    async def mock_call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, f"{self.mock_url}{path}",
                                     data=orjson.dumps(body) if body is not None else None) as r:
            assert r.status < 300, await r.text()
            return await r.json()

    # ---------------------------------------------------------------- kills

    async def crash_tour(self, proc: Proc, rounds: list[list[str]], timeouts: list[float],
                         uptime: float = 1.0) -> list[str]:
        """Round by round, restart `proc` armed with the round's points not yet fired
        (`name` or `name@N`, armed after `uptime` s: crashes are not back to back); each
        time it kills itself at one (SIGKILL, named on its stderr), restart it with the
        rest; a round ends when all fired or after its timeout (s). Leaves it running
        unarmed. Returns the points that never fired."""
        missed: list[str] = []
        for points, timeout in zip(rounds, timeouts, strict=True):
            remaining = list(points)
            deadline = time.monotonic() + timeout
            while remaining and time.monotonic() < deadline:
                proc.kill()
                seen = self._fired(proc)
                proc.start(BRIDGE_TEST_CRASH_POINT=",".join(remaining),
                           BRIDGE_TEST_CRASH_AFTER=str(uptime))
                code = await proc.exited(deadline - time.monotonic())
                if code is None:
                    break
                assert code == -signal.SIGKILL, f"{proc.name} exited {code}: {self._tail(proc)}"
                fired = self._fired(proc)[len(seen):]
                assert fired, f"{proc.name} was killed but named no crash point"
                name = fired[-1]
                remaining.remove(next(p for p in remaining if p.split("@")[0] == name))
                self.faults[f"kill -9 {proc.name} at {name}"] += 1
            missed += remaining
        if proc.alive():  # a round ran out of time: its process still armed
            self.faults[f"kill -9 {proc.name} (end of its tour)"] += 1
        proc.kill()
        proc.start()
        return missed

    @staticmethod
    def _fired(proc: Proc) -> list[str]:
        text = proc.log.read_text(errors="replace") if proc.log.exists() else ""
        return [line.split("crash point ", 1)[1].split(":", 1)[0]
                for line in text.splitlines() if line.startswith("crash point ")]

    @staticmethod
    def _tail(proc: Proc) -> str:
        return proc.log.read_text(errors="replace")[-1500:] if proc.log.exists() else ""

    async def revive(self) -> None:
        """After a scenario stopped at its budget with faults half injected: Redis up,
        the CPO running, the BAP reachable, serve and worker running and unarmed."""
        if self.redis_server.proc is None or self.redis_server.proc.poll() is not None:
            self.redis_server.start()
        if self.mock.alive():
            self.mock.signal(signal.SIGCONT)
        await self.mock_call("POST", "/admin/faults/slow-mock", {"delay": 0})
        if self.bap.down:
            await self.bap.up()
        for proc in (self.serve, self.worker):
            if proc.armed or not proc.alive():
                proc.kill()
                proc.start()

    def kill9(self, proc: Proc) -> None:
        proc.kill()
        self.faults[f"kill -9 {proc.name}"] += 1
        proc.start()


async def start_stack(tmp: Path, **bridge_env: str) -> Stack:
    from bench.journey import pick_chargers

    rdir = tmp / "redis"
    rdir.mkdir()
    server = RedisServer(redis_binary(), rdir).start()
    bap = Bap(signing.generate_private_key())
    await bap.start()
    key = signing.generate_private_key()
    (tmp / "bridge.key").write_bytes(signing.private_key_pem(key))
    port, mport = free_port(), free_port()
    bridge_url, mock_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mport}"
    env = {**os.environ, "BRIDGE_CONFIG": str(ROOT / "config" / "bridge.toml"),
           "REDIS_URL": server.url, "BRIDGE_REDIS_URL": server.url,
           "BRIDGE_HOST": "127.0.0.1", "BRIDGE_PORT": str(port), "BRIDGE_PUBLIC_URL": bridge_url,
           "BRIDGE_LOG_FORMAT": "json", "BRIDGE_LOG_LEVEL": "info",
           "BRIDGE_BECKN_SUBSCRIBER_ID": BPP_ID, "BRIDGE_BECKN_KEY_ID": "bpp-chaos-key-1",
           "BRIDGE_BECKN_PRIVATE_KEY": str(tmp / "bridge.key"),
           "BRIDGE_BECKN_REGISTRY_URL": bap.url, "BRIDGE_BECKN_STATIC_KEYS": "",
           "BRIDGE_JOURNEY_PRICING_POLICY": str(ROOT / "config" / "pricing.toml"),
           # real-time windows scaled to the mock's speed 120, as `make run` does
           # silence that counts as an interruption: 20 s, so that a process restarted
           # after kill -9 (seconds, not scaled) is not taken for a 2-minute outage
           # (production: 120 s); the CPO scenario, whose outage is scaled, uses 6 s
           "BRIDGE_JOURNEY_TRACK_INTERVAL": "1", "BRIDGE_JOURNEY_INTERRUPT_AFTER": "20",
           "BRIDGE_JOURNEY_OUTAGE_END_AFTER": "120", "BRIDGE_JOURNEY_WATCHDOG_EVERY": "0.5",
           "BRIDGE_JOURNEY_COMMAND_GRACE": "2", "BRIDGE_JOURNEY_COMMAND_RETRY_FOR": "90",
           "BRIDGE_JOURNEY_RECONCILE_AFTER": "3", "BRIDGE_WORKER_JOB_LEASE": "3",
           "BRIDGE_OCPI_REQUEST_TIMEOUT": "2", "BRIDGE_SHUTDOWN_TIMEOUT": "2",
           # callbacks: the production schedule scaled by 0.1 (1 s -> 0.1 s, 1 h -> 6 min),
           # capped at 5 s so a BAP back after its outage is reached within seconds
           "BRIDGE_BECKN_CALLBACK_BACKOFF": "0.1", "BRIDGE_BECKN_CALLBACK_MAX_BACKOFF": "5",
           "BRIDGE_BECKN_CALLBACK_TIMEOUT": "2", **bridge_env}
    py = sys.executable
    serve = Proc("serve", [py, "-m", "bridge.cli", "serve"], env, tmp / "serve.log")
    worker = Proc("worker", [py, "-m", "bridge.cli", "worker"], env, tmp / "worker.log")
    menv = {**os.environ, "MOCK_CPO_HOST": "127.0.0.1", "MOCK_CPO_PORT": str(mport),
            "MOCK_CPO_PUBLIC_URL": mock_url, "MOCK_CPO_LOG_LEVEL": "warning"}
    mock = Proc("mock", [py, "-m", "ocpi_mock.cli", "serve", "--network", str(NETWORK),
                         "--speed", "120", "--tick", "15", "--generate", str(GENERATE),
                         "--seed", str(SEED)], menv, tmp / "mock.log")
    for p in (serve, worker, mock):
        p.start()
    redis = aioredis.Redis.from_url(server.url)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    stack = Stack(tmp, server, redis, http, bap, serve, worker, mock, bridge_url, mock_url,
                  [c.item for c in pick_chargers(GENERATE, SEED)])
    try:
        await _connect(stack)
    except BaseException:
        await stop_stack(stack)  # nothing left running
        raise
    return stack


async def _connect(stack: Stack) -> None:
    """The stack up: serve ready, the mock registered with it and its network pushed."""
    http, mock_url, bridge_url = stack.http, stack.mock_url, stack.bridge_url
    await stack.ready()
    deadline = time.monotonic() + 30
    while True:
        try:
            async with http.get(f"{mock_url}/ocpi/versions") as r:
                if r.status < 500:
                    break
        except aiohttp.ClientError:
            pass
        assert time.monotonic() < deadline, "the mock CPO did not start"
        await asyncio.sleep(0.1)
    # serve's own process must still be the one answering: on a shared machine another
    # program can take a port between free_port() and serve binding it
    assert stack.serve.alive(), f"serve exited: {stack._tail(stack.serve)}"
    token_a = await CredentialsStore(stack.redis).create_invite("IN", "TPC", ("IN", "ZEO"),
                                                                 ("IN", "STK"))
    async with http.post(f"{mock_url}/admin/connect", data=orjson.dumps(
            {"versions_url": f"{bridge_url}/ocpi/versions", "token": token_a}),
            timeout=aiohttp.ClientTimeout(total=60)) as r:
        assert r.status == 200, await r.text()
    await asyncio.sleep(1.0)  # the worker's consumers take the pushed network


async def stop_stack(stack: Stack) -> None:
    for p in (stack.serve, stack.worker, stack.mock):
        if p.alive():
            p.signal(signal.SIGCONT)
        p.kill()
    await stack.http.close()
    await stack.redis.aclose()
    await stack.bap.close()
    stack.redis_server.stop()


# --------------------------------------------------------------------------- a journey


@dataclass
class Journey:
    """One driver's order, played as a BAP plays it: every request retried with its own
    message id (and a fresh timestamp) until its answer comes."""

    stack: Stack
    kind: str  # kwh | budget (prepaid), hold (an authorisation hold), cancel (a hold, cancelled)
    item: tuple[str, str, str, str, str]
    phone: str
    txn: str = field(default_factory=lambda: str(uuid.uuid4()))
    step: str = "new"
    ok: bool = False
    error: str | None = None
    requests_sent: int = 0

    def context(self, action: str, mid: str) -> dict[str, Any]:
        bap = self.stack.bap
        return {"domain": DOMAIN, "action": action, "version": "2.0.0", "bap_id": BAP_ID,
                "bap_uri": f"{bap.url}/bap", "bpp_id": BPP_ID, "bpp_uri": "http://127.0.0.1/beckn",
                "transaction_id": self.txn, "message_id": mid,
                "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "ttl": "PT30S"}

    async def request(self, action: str, message: dict[str, Any], *, answer: str | None = None,
                      where: Any = None, timeout: float = 150, patience: float = 6
                      ) -> dict[str, Any]:
        """Send until answered: the answer is `answer` (default on_{action}) with this
        request's message id (and `where`)."""
        mid = str(uuid.uuid4())
        cb = answer or f"on_{action}"
        deadline = time.monotonic() + timeout
        bap = self.stack.bap

        def mine(m: dict[str, Any]) -> bool:
            return m["context"]["message_id"] == mid and (where is None or where(m))

        while time.monotonic() < deadline:
            raw = orjson.dumps({"context": self.context(action, mid), "message": message})
            headers = {"Content-Type": "application/json",
                       "Authorization": bap.signer().header(raw, time.time())}
            try:
                self.requests_sent += 1
                async with self.stack.http.post(f"{self.stack.bridge_url}/beckn/{action}",
                                                data=raw, headers=headers) as r:
                    ack = orjson.loads(await r.read())
                if ack.get("ack_status") != "ACK":
                    code = (ack.get("error") or {}).get("code")
                    if code not in ("30021", "31001"):  # in progress / the bridge hiccuped
                        raise AssertionError(f"{action} NACK: {ack.get('error')}")
            except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
                await asyncio.sleep(0.5)  # the bridge is down: try again
                continue
            got = await bap.wait(self.txn, cb, patience, mine)
            if got is not None:
                return got
        raise AssertionError(f"no {cb} to {action} in {timeout} s")

    async def order(self) -> Order:
        order = await self._read(lambda: self.stack.orders.get(self.txn))
        assert order is not None
        return order

    async def _read(self, read: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
        """What the driver's phone shows (the payment link, an SMS), read from Redis by
        this harness: Redis may be down this moment (the Redis scenario); try again."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await read()
            except (redis_errors.ConnectionError, redis_errors.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def pay(self, timeout: float = 150) -> None:
        """Press Pay (again if the PAID notice does not come: the bridge may have died
        after the gateway took the money)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            order = await self.order()
            url = order.payment.get("url")
            try:
                async with self.stack.http.post(url, headers={"Accept": "application/json"},
                                                allow_redirects=False) as r:
                    await r.read()
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.5)
                continue
            if await self.stack.bap.wait(self.txn, "on_status", 6) is not None:
                return
        raise AssertionError("no on_status after paying")

    async def otp(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _id, f in reversed(await self._read(lambda: self.stack.redis.xrange(OUTBOX))):
                text = f[b"text"].decode()
                if f[b"phone"].decode() == self.phone and f[b"kind"] == b"otp" and \
                        "start code" in text:
                    return text.split(" is ")[1].split(".")[0]
            await asyncio.sleep(0.2)
        raise AssertionError("no start code")

    async def play(self) -> None:
        try:
            await self._play()
            self.ok = True
        except asyncio.CancelledError:  # the scenario's budget ran out
            self.error = f"{self.step}: not done when the scenario's budget ran out"
            raise
        except Exception as exc:  # a failed journey is reported, with its step
            self.error = f"{self.step}: {type(exc).__name__}: {exc}"[:400]

    async def _play(self) -> None:
        self.step = "select"
        if self.kind == "budget":
            msg = select_message(self.item, budget=150)
        else:  # 5 kWh prepaid: the overage provision covers the stop's latency (a refund)
            msg = select_message(self.item, kwh=5 if self.kind == "kwh" else 3)
        await self.request("select", msg)
        self.step = "init"
        hold = self.kind in ("hold", "cancel")  # captured and released at the gateway
        await self.request("init", init_message(
            self.phone, "AUTHORIZATION-HOLD" if hold else "PRE-FULFILLMENT"))
        self.step = "pay"
        await self.pay()
        self.step = "confirm"
        await self.request("confirm", order_message())
        if self.kind == "cancel":
            self.step = "cancel"
            await self.request("cancel", order_message())
            return
        self.step = "start"
        otp = await self.otp()
        await self.request("update", update_message("start-charging", otp), answer="on_update",
                           where=lambda m: state_of(m)[0] != "CONFIRMED" or m.get("error"),
                           patience=10)
        self.step = "charging"
        bap = self.stack.bap
        done = await bap.wait(self.txn, "on_update", 240,
                              lambda m: state_of(m)[0] in ("COMPLETED", "CANCELLED"))
        assert done is not None, "no on_update COMPLETED"
        assert state_of(done)[0] == "COMPLETED", state_of(done)
        self.step = "done"


# --------------------------------------------------------------------------- the audit


@dataclass
class Audit:
    journeys: int = 0
    completed: int = 0
    money_checked: Decimal = field(default_factory=Decimal)  # ₹ compared, gateway vs books
    callbacks: int = 0
    messages: int = 0
    commands: int = 0
    start_retries: int = 0  # START attempts the CPO refused, tried again as new commands
    problems: list[str] = field(default_factory=list)
    # kind of journey -> what it was told and sent, as a run records it -> journeys
    told: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(
        lambda: defaultdict(int)))


def told(kinds: dict[tuple[str, Any], set[str]], sms: list[str],
         commands: dict[str, set[str]]) -> str:
    """One journey's callbacks (distinct message ids per action and state), SMS by kind
    and OCPI commands (distinct uids per type), as one comparable line."""
    cbs = ",".join(f"{a}:{st}x{len(ids)}" for (a, st), ids in sorted(
        kinds.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))))
    texts = ",".join(f"{k}x{sms.count(k)}" for k in sorted(set(sms)))
    cmds = ",".join(f"{c}x{len(u)}" for c, u in sorted(commands.items()))
    return f"{cbs} | {texts} | {cmds}"


# What a run without faults tells and sends for each kind of journey (`told`): each
# callback (action: order state x distinct message ids), each SMS kind, each OCPI command.
_ASKED = "on_confirm:CONFIRMEDx1,on_init:INITIALIZEDx1,on_select:QUOTEDx1,on_status:INITIALIZEDx1"
_CHARGED = (f"{_ASKED},on_update:ACTIVEx1,on_update:COMPLETEDx1 | billx1,infox1,otpx1,paymentx1"
            " | START_SESSIONx1,STOP_SESSIONx1")
FAULT_FREE = {"kwh": _CHARGED, "budget": _CHARGED, "hold": _CHARGED,
              "cancel": "on_cancel:CANCELLEDx1," + _ASKED + " | infox1,otpx1,paymentx1 | "}


async def audit(stack: Stack, journeys: list[Journey], figures: Audit,
                same_as_fault_free: bool = True) -> list[str]:
    """Every invariant of every journey; returns the problems (empty: all well).
    `same_as_fault_free`: each journey told and sent exactly what a run without faults
    does (FAULT_FREE), no more, no less (not where the fault is one the driver must
    hear of: a charger unreachable long enough is an interruption told)."""
    problems: list[str] = []
    gw = SandboxGateway(stack.redis, stack.bridge_url)
    deps = JourneyDeps.build(Settings(redis_url=stack.redis_server.url, beckn_subscriber_id=BPP_ID,
                                      public_url=stack.bridge_url, journey_pricing_policy=str(
                                          ROOT / "config" / "pricing.toml")), stack.redis)
    outbox = await stack.redis.xrange(OUTBOX)
    commands: dict[str, list[tuple[str, str]]] = defaultdict(list)
    async for key in stack.redis.scan_iter(command_key("*")):
        h = await stack.redis.hgetall(key)
        commands[h.get(b"order", b"").decode()].append(
            (h[b"command"].decode(), key.decode().rsplit(":", 1)[1]))
    mock_state = await stack.mock_call("GET", "/admin/state")
    for j in journeys:
        figures.journeys += 1
        where = f"{j.kind} {j.txn[:8]}"
        if not j.ok:
            problems.append(f"{where}: journey did not complete: {j.error}")
            continue
        order = await stack.orders.get(j.txn)
        if order is None:
            problems.append(f"{where}: no order")
            continue
        expected = "CANCELLED" if j.kind == "cancel" else "COMPLETED"
        if order.state.value != expected:
            problems.append(f"{where}: order is {order.state.value}, not {expected}")
            continue
        s = order.settlement or {}
        # books vs gateway, to the paisa
        pay = await gw.get(order.payment["id"]) if order.payment.get("id") else None
        if pay is not None:
            for field_, got in (("refund", pay.refunded), ("capture", pay.captured),
                                ("release", pay.released)):
                book = D(str(s.get(field_, "0")))
                if book != got:
                    problems.append(f"{where}: {field_} books {book} gateway {got}")
                figures.money_checked += got
            paid = pay.paid + pay.held
            figures.money_checked += paid
            final = D(str(s.get("final_amount", "0")))
            top_up = D(str(s.get("top_up", "0")))
            if pay.mode == "HOLD":
                if pay.captured + pay.released != paid:
                    problems.append(f"{where}: hold {paid} != captured + released")
            elif paid + top_up != final + pay.refunded:
                problems.append(f"{where}: paid {paid} + top-up {top_up} != bill {final} + "
                                f"refund {pay.refunded}")
        # the money a run without faults moves for this order: the settlement of its own
        # CDR (or the cancellation by the terms), computed once, now, by the same pure
        # functions; what the crashed and restarted processes recorded must be exactly it
        for field_, got_, want_ in await fault_free(deps, order):
            if got_ != want_:
                problems.append(f"{where}: {field_} {got_}, a run without faults: {want_}")
        links = []
        async for key in stack.redis.scan_iter("obb:pay:pay_*"):
            st = await gw.get(key.decode().split(":", 2)[2])
            if st and st.order_id == order.id and st.payment_id != order.payment.get("id"):
                links.append(st)
        want_links = [D(str(s.get("top_up", "0")))] if D(str(s.get("top_up", "0"))) else []
        if [x.amount for x in links] != want_links:
            problems.append(f"{where}: top-up links {[x.amount for x in links]} for {want_links}")
        # callbacks: one per thing told (copies of one message id are one)
        msgs = stack.bap.received[j.txn]
        kinds: dict[tuple[str, Any], set[str]] = defaultdict(set)
        for m in msgs:
            kinds[(m["context"]["action"], state_of(m)[0])].add(m["context"]["message_id"])
        figures.callbacks += sum(len(v) for v in kinds.values())
        finals = kinds.get(("on_update", expected), set()) | (
            kinds.get(("on_cancel", "CANCELLED"), set()) if j.kind == "cancel" else set())
        if len(finals) != 1:
            problems.append(f"{where}: {len(finals)} final callbacks ({expected})")
        # the payment notice (on_status before charging): once; interruptions and their
        # resumptions are on_status too, each told once per event
        paid_notes = {m["context"]["message_id"] for m in msgs
                      if m["context"]["action"] == "on_status"
                      and state_of(m)[0] not in ("ACTIVE", "COMPLETED", "CANCELLED")}
        if len(paid_notes) != 1:
            problems.append(f"{where}: {len(paid_notes)} payment notices (on_status): "
                            f"{[state_of(m) for m in msgs if m['context']['action'] == 'on_status']}")
        if j.kind != "cancel" and len(kinds.get(("on_update", "ACTIVE"), set())) > 1:
            problems.append(f"{where}: on_update ACTIVE twice")
        # SMS: one per thing told
        mine = [f[b"kind"].decode() for _id, f in outbox if f[b"order"].decode() == order.id]
        figures.messages += len(mine)
        counts = {k: mine.count(k) for k in set(mine)}
        want = {"otp": 1, "payment": 1, **({"bill": 1} if expected == "COMPLETED" else {})}
        for k, n in want.items():
            if counts.get(k, 0) != n:
                problems.append(f"{where}: {counts.get(k, 0)} '{k}' messages")
        infos = counts.get("info", 0)
        if expected == "CANCELLED" and infos != 1:
            problems.append(f"{where}: {infos} info messages (one cancellation notice)")
        # commands: one uid per order step (a START tried again is a new attempt, noted)
        by_type: dict[str, set[str]] = defaultdict(set)
        for ctype, uid in commands.get(order.id, []):
            by_type[ctype].add(uid)
        figures.commands += sum(len(v) for v in by_type.values())
        attempts = {a.get("uid") for a in order.commands.get("start_attempts", [])} | {
            (order.commands.get("start") or {}).get("uid")}
        for ctype, uids in by_type.items():
            if ctype == "START_SESSION" and not uids <= attempts:
                problems.append(f"{where}: START uids {uids} beyond its attempts {attempts}")
            elif ctype != "START_SESSION" and len(uids) != 1:
                problems.append(f"{where}: {len(uids)} {ctype} commands")
        # nothing stuck
        if await stack.redis.zscore(INFLIGHT, j.txn) is not None:
            problems.append(f"{where}: still in flight")
        # a START the CPO refused (it could not reach serve for the real-time authorization)
        # is tried again as a new command, the refused one noted as a failed attempt: the
        # START that counts is the one carried out
        refused = {a.get("uid") for a in order.commands.get("start_attempts", [])}
        figures.start_retries += len(refused)
        carried = {**by_type, **({"START_SESSION": by_type["START_SESSION"] - refused}
                                 if "START_SESSION" in by_type else {})}
        said = told(kinds, mine, carried)
        figures.told[j.kind][said] += 1
        if same_as_fault_free and said != FAULT_FREE[j.kind]:
            problems.append(f"{where}: told and sent {said!r}; a run without faults: "
                            f"{FAULT_FREE[j.kind]!r}")
        figures.completed += 1
    figures.problems += problems
    _ = mock_state
    await deps.close()
    return problems


MONEY = ("final_amount", "refund", "capture", "release", "top_up")


async def fault_free(deps: JourneyDeps, order: Order) -> list[tuple[str, Decimal, Decimal]]:
    """(field, recorded, what a run without faults records) for the order's money."""
    s = order.settlement or {}
    got = {f: D(str(s.get(f, "0"))) for f in MONEY}
    if order.state.value == "CANCELLED":
        r = release_plan(deps, order)
        assert r is not None
        want = {"final_amount": r.paid - r.refund, "refund": D(0) if r.held else r.refund,
                "capture": r.paid - r.refund if r.held else D(0),
                "release": r.refund if r.held else D(0), "top_up": D(0)}
        return [(f, got[f], want[f]) for f in MONEY]
    if s.get("provisional") or s.get("provisional_key") or not order.cdr_id or order.item is None:
        # settled on a Session first (the CDR late), or never on its CDR: not what a run
        # without faults does
        return [("settled on", s.get("key"), f"cdr {order.cdr_id}")]  # type: ignore[list-item]
    stored = await deps.ocpi.store.get("cdrs", order.item.cc, order.item.pid, order.cdr_id)
    if stored is None:
        return [("CDR", None, order.cdr_id)]  # type: ignore[list-item]
    want_s = await settlement_of(deps, order, CDR.model_validate(stored.data), datetime.now(UTC))
    return [(f, got[f], getattr(want_s, f)) for f in MONEY]


async def sessions_at_cpo(stack: Stack, journeys: list[Journey]) -> list[str]:
    """The CPO charged each started order once: one session per order, none running; and
    nothing stuck in the bridge: no dead-lettered callback, no job overdue."""
    from bridge.store.beckn_keys import DEAD
    from bridge.worker import QUEUE

    problems = []
    dead = await stack.redis.zcard(DEAD)
    if dead:
        problems.append(f"{dead} callbacks dead-lettered")
    overdue = await stack.redis.zrangebyscore(QUEUE, "-inf", int((time.time() - 10) * 1000))
    if overdue:
        problems.append(f"jobs overdue by more than 10 s: {[j.decode() for j in overdue][:5]}")
    state = await stack.mock_call("GET", "/admin/state")
    if state.get("active_sessions"):
        problems.append(f"sessions still running at the CPO: {state['active_sessions']}")
    orders = {(await stack.orders.get(j.txn)).id for j in journeys  # type: ignore[union-attr]
              if j.ok and j.kind != "cancel"}
    per_order: dict[str, int] = defaultdict(int)
    async for key in stack.redis.scan_iter("obb:ocpi:sessions:*"):
        raw = await stack.redis.hget(key, "d")
        if raw:
            ref = orjson.loads(raw).get("authorization_reference")
            if ref in orders:
                per_order[ref] += 1
    for oid in orders:
        if per_order.get(oid, 0) != 1:
            problems.append(f"order {oid[:8]}: {per_order.get(oid, 0)} sessions at the CPO")
    return problems
