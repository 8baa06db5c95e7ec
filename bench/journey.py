# ruff: noqa: ASYNC110, ASYNC220, ASYNC230, ASYNC240  (set-up and tear-down block on purpose)
"""Journey benchmark: N concurrent walk-in journeys, end to end, on loopback.

    .venv/bin/python bench/journey.py [-n 200] [--speed 30] [--tick 18] [--duration 240]

Starts its own redis-server (temporary, no persistence), one `bridge serve`,
one `bridge worker` and the mock CPO (`ocpi-mock serve --speed S --tick T
--generate G --seed 1`) as processes, connects the mock to the bridge (invite +
`POST {mock}/admin/connect`), and acts as the BAP in this process: it signs
its requests, serves the registry lookup (BRIDGE_BECKN_REGISTRY_URL), verifies
and receives every on_* callback and the tracking PATCHes.

Each journey, on its own DC charger (>= 30 kW, remote start, tariff), is
Raghav's walk-in: select (by kWh, or by budget for every other journey) ->
init -> pay the link (-> on_status PAID) -> confirm -> the start code from the
outbox -> update start-charging -> on_update ACTIVE -> track with a
callback-url -> PATCHes -> the bridge stops at the target -> CDR -> settlement
-> on_update COMPLETED. Journeys start spread over `--ramp` seconds; the run is
bounded by `--duration`.

Printed (and written to --out): journeys completed / failed, journeys/min,
callback latency p50/p99 per action (request sent -> on_* received), Session
ACTIVE at the bridge -> on_update ACTIVE at the BAP, tracking PATCHes per
session and their rate, settlement delay (CDR arrival at the bridge -> on_update
COMPLETED at the BAP), peak concurrent sessions, the money check (paid + top-up
= billed + refund), Redis memory, CPU seconds per process, the machine.

Arrival times at the bridge come from the OCPI change stream
(`obb:ocpi:events`): its entry ids are Redis server milliseconds, written when
the bridge stored the Session / CDR (same host clock as this process).
Everything listens on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.beckn import signing  # noqa: E402
from bridge.notify import OUTBOX  # noqa: E402
from bridge.store.credentials import CredentialsStore  # noqa: E402
from bridge.store.keys import EVENTS  # noqa: E402
from bridge.store.orders import OrderStore  # noqa: E402
from ocpi_mock.network import load_network  # noqa: E402
from tests.journey.conftest import (  # noqa: E402  (the e2e tests' wire shapes)
    init_message,
    order_message,
    select_message,
    update_message,
)

BPP_ID = "bpp.bench.journey"
BAP_ID = "bap.bench.journey"
BAP_KEY = "bap-bench-key-1"
DOMAIN = "beckn.one:deg:ev-charging"
NETWORK = ROOT / "config" / "networks" / "india.toml"
ACK = orjson.dumps({"message": {"ack": {"status": "ACK"}}})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * p))]


def ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 1)


def summary(xs: list[float]) -> dict[str, Any]:
    return {"n": len(xs), "p50_ms": ms(pct(xs, 0.5)), "p99_ms": ms(pct(xs, 0.99)),
            "max_ms": ms(max(xs) if xs else None)}


def state_of(m: dict[str, Any]) -> tuple[Any, Any, Any]:
    order = (m.get("message") or {}).get("order") or {}
    fd = (order.get("beckn:orderAttributes") or {}).get("fulfillment-details") or {}
    return order.get("beckn:state"), fd.get("beckn:status"), (m.get("error") or {}).get("code")


# --------------------------------------------------------------------------- chargers


@dataclass(frozen=True)
class Charger:
    item: tuple[str, str, str, str, str]
    kw: float


def pick_chargers(generate: int, seed: int) -> list[Charger]:
    """Walk-in chargers of the mock's network (the same for the same --generate/--seed):
    DC >= 30 kW, REMOTE_START_STOP_CAPABLE, with a tariff, open 24/7."""
    net = load_network(NETWORK, datetime.now(UTC), generate, seed)
    out = []
    for loc in net.locations:
        if loc.opening_times is not None and not loc.opening_times.twentyfourseven:
            continue
        for evse in loc.evses or []:
            caps = {str(c) for c in evse.capabilities or []}
            if "REMOTE_START_STOP_CAPABLE" not in caps:
                continue
            conn = evse.connectors[0]
            kw = (conn.max_electric_power or 0) / 1000
            if str(conn.power_type) != "DC" or kw < 30 or not conn.tariff_ids:
                continue
            out.append(Charger((loc.country_code, loc.party_id, loc.id, evse.uid, conn.id), kw))
    return out


# --------------------------------------------------------------------------- the BAP


@dataclass
class Txn:
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    event: asyncio.Event = field(default_factory=asyncio.Event)
    patches: list[float] = field(default_factory=list)
    last_patch: dict[str, Any] | None = None


class Bap:
    """Signs like a BAP, serves the registry lookup, receives and verifies on_* and PATCHes."""

    def __init__(self, key: Any) -> None:
        self.key = key
        self.signer = signing.Signer(BAP_ID, BAP_KEY, key, 300)
        self.bridge_public: Any = None
        self.url = ""
        self.txns: dict[str, Txn] = defaultdict(Txn)
        self.sent: dict[str, tuple[str, float]] = {}  # message_id -> (action, t)
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.bad_signatures = 0
        self.callbacks = 0
        self.patches = 0
        self.unknown_patches = 0
        self.patch_times: list[float] = []

    def context(self, action: str, txn: str, message_id: str) -> dict[str, Any]:
        return {"domain": DOMAIN, "action": action, "version": "2.0.0", "bap_id": BAP_ID,
                "bap_uri": f"{self.url}/bap", "bpp_id": BPP_ID,
                "bpp_uri": "http://127.0.0.1/beckn", "transaction_id": txn,
                "message_id": message_id,
                "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "ttl": "PT30S"}

    def _verify(self, request: web.Request, raw: bytes) -> None:
        try:
            signing.verify(signing.parse_header(request.headers.get("Authorization", "")), raw,
                           self.bridge_public, time.time())
        except Exception:
            self.bad_signatures += 1

    async def lookup(self, request: web.Request) -> web.Response:
        q = await request.json()
        if (q.get("subscriber_id"), q.get("unique_key_id")) != (BAP_ID, BAP_KEY):
            return web.json_response([])
        return web.json_response([{"subscriber_id": BAP_ID, "unique_key_id": BAP_KEY,
                                   "status": "SUBSCRIBED", "type": "BAP",
                                   "signing_public_key": signing.public_key_b64(
                                       self.key.public_key())}])

    async def callback(self, request: web.Request) -> web.Response:
        raw = await request.read()
        t = time.monotonic()
        self.callbacks += 1
        self._verify(request, raw)
        m = orjson.loads(raw)
        ctx = m["context"]
        sent = self.sent.pop(ctx["message_id"], None)
        if sent is not None and ctx["action"] == f"on_{sent[0]}":
            self.latency[sent[0]].append(t - sent[1])
        tx = self.txns[ctx["transaction_id"]]
        tx.received.append((t, m))
        tx.event.set()
        return web.Response(body=ACK, content_type="application/json")

    async def track_patch(self, request: web.Request) -> web.Response:
        raw = await request.read()
        t = time.monotonic()
        self.patches += 1
        self.patch_times.append(t)
        self._verify(request, raw)
        txn = request.match_info["txn"]
        if txn not in self.txns:
            self.unknown_patches += 1
        else:
            tx = self.txns[txn]
            tx.patches.append(t)
            tx.last_patch = orjson.loads(raw)
        return web.Response(status=204)

    async def wait_for(self, txn: str, action: str, timeout: float,
                       where: Any = None) -> tuple[float, dict[str, Any]]:
        tx = self.txns[txn]
        deadline = time.monotonic() + timeout
        while True:  # a transaction has a handful of messages: a rescan is cheap
            for t, m in tx.received:
                if m["context"]["action"] == action and (where is None or where(m)):
                    return t, m
            left = deadline - time.monotonic()
            if left <= 0:
                got = [(m["context"]["action"], state_of(m)) for _, m in tx.received]
                raise TimeoutError(f"no {action} (seen: {got[-6:]})")
            tx.event.clear()
            try:
                await asyncio.wait_for(tx.event.wait(), min(left, 1.0))
            except TimeoutError:
                pass


class OtpFeed:
    """Tails the development outbox (bridge.notify.Outbox's stream) once for all
    journeys: phone -> start code, as `Outbox(redis).messages(phone)` shows it."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.codes: dict[str, str] = {}
        self.waiters: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def run(self) -> None:
        last = "0"
        while True:
            batch = await self.redis.xread({OUTBOX: last}, count=500, block=200)
            for _, entries in batch or []:
                for mid, f in entries:
                    last = mid.decode()
                    text = f[b"text"].decode()
                    if f[b"kind"] == b"otp" and "start code" in text:
                        phone = f[b"phone"].decode()
                        self.codes[phone] = text.split(" is ")[1].split(".")[0]
                        self.waiters[phone].set()

    async def code(self, phone: str, timeout: float) -> str:
        if phone not in self.codes:
            await asyncio.wait_for(self.waiters[phone].wait(), timeout)
        return self.codes[phone]


# --------------------------------------------------------------------------- a journey


@dataclass
class Result:
    txn: str
    ok: bool = False
    step: str = "start"
    error: str | None = None
    t_start: float = 0.0
    t_active: float | None = None  # on_update ACTIVE at the BAP (monotonic)
    t_active_wall: float | None = None  # same, time.time()
    t_completed: float | None = None
    t_completed_wall: float | None = None
    t_track: float | None = None
    start_latency: float | None = None  # update sent -> on_update ACTIVE
    mode: str = ""


class Runner:
    def __init__(self, bap: Bap, http: aiohttp.ClientSession, bridge_url: str, otps: OtpFeed,
                 step_timeout: float, session_timeout: float) -> None:
        self.bap = bap
        self.http = http
        self.bridge_url = bridge_url
        self.otps = otps
        self.step_timeout = step_timeout
        self.session_timeout = session_timeout
        self.nacks: dict[str, int] = defaultdict(int)

    async def post(self, action: str, txn: str, message: dict[str, Any]) -> str:
        mid = str(uuid.uuid4())
        body = orjson.dumps({"context": self.bap.context(action, txn, mid), "message": message})
        headers = {"Content-Type": "application/json",
                   "Authorization": self.bap.signer.header(body, time.time())}
        t0 = time.monotonic()
        self.bap.sent[mid] = (action, t0)
        async with self.http.post(f"{self.bridge_url}/beckn/{action}", data=body,
                                  headers=headers) as r:
            ack = orjson.loads(await r.read())
        self.bap.latency["ack"].append(time.monotonic() - t0)  # serve's share
        if r.status != 200 or ack.get("ack_status") != "ACK":
            self.bap.sent.pop(mid, None)
            self.nacks[action] += 1
            raise RuntimeError(f"{action} NACK {r.status}: {ack.get('error')}")
        return mid

    async def call(self, action: str, txn: str, message: dict[str, Any]) -> dict[str, Any]:
        mid = await self.post(action, txn, message)
        _, m = await self.bap.wait_for(txn, f"on_{action}", self.step_timeout,
                                       lambda m: m["context"]["message_id"] == mid)
        if m.get("error"):
            raise RuntimeError(f"on_{action} error {m['error']}")
        return m

    async def journey(self, i: int, charger: Charger, res: Result, rnd: random.Random) -> None:
        txn = res.txn
        phone = f"+9198{i:08d}"
        res.t_start = time.monotonic()
        res.step = "select"
        if i % 2 == 0:
            res.mode = "kwh"
            msg = select_message(charger.item, kwh=round(rnd.uniform(4, 8), 1))
        else:
            res.mode = "budget"
            msg = select_message(charger.item, budget=rnd.choice([150, 175, 200, 225]))
        await self.call("select", txn, msg)
        res.step = "init"
        on_init = await self.call("init", txn, init_message(phone))
        pd = on_init["message"]["order"]["beckn:orderAttributes"]["payment-details"]
        res.step = "pay"
        t_pay = time.monotonic()
        async with self.http.post(pd["payment-url"], headers={"Accept": "application/json"}) as r:
            if r.status != 200:
                raise RuntimeError(f"payment HTTP {r.status}: {await r.text()}")
        t, _ = await self.bap.wait_for(txn, "on_status", self.step_timeout)
        self.bap.latency["pay->on_status"].append(t - t_pay)
        res.step = "confirm"
        on_confirm = await self.call("confirm", txn, order_message())
        if state_of(on_confirm)[0] != "CONFIRMED":
            raise RuntimeError(f"on_confirm {state_of(on_confirm)}")
        res.step = "otp"
        otp = await self.otps.code(phone, self.step_timeout)
        res.step = "update"
        t_up = time.monotonic()
        await self.post("update", txn, update_message("start-charging", otp))
        t, m = await self.bap.wait_for(txn, "on_update", self.step_timeout + 30,
                                       lambda m: state_of(m)[0] != "CONFIRMED")
        if state_of(m)[:2] != ("ACTIVE", "ACTIVE"):
            raise RuntimeError(f"start: {state_of(m)}")
        res.t_active, res.t_active_wall = t, time.time() - (time.monotonic() - t)
        res.start_latency = t - t_up
        res.step = "track"
        await self.call("track", txn, {"order": {"beckn:orderAttributes": {
            "callback-url": f"{self.bap.url}/track/{txn}"}}})
        res.t_track = time.monotonic()
        res.step = "charging"
        t, m = await self.bap.wait_for(txn, "on_update", self.session_timeout,
                                       lambda m: state_of(m)[0] in ("COMPLETED", "CANCELLED"))
        if state_of(m)[:2] != ("COMPLETED", "COMPLETED"):
            raise RuntimeError(f"end: {state_of(m)}")
        res.t_completed, res.t_completed_wall = t, time.time() - (time.monotonic() - t)
        res.step = "done"
        res.ok = True


# --------------------------------------------------------------------------- backlog


class Backlog:
    """Samples, twice a second, what waits for the worker: the journey consumer's lag
    on the OCPI change stream, arq jobs that are due, and the callbacks' fast lane."""

    def __init__(self, redis: aioredis.Redis, pids: dict[str, int]) -> None:
        self.redis = redis
        self.pids = pids
        self.samples: list[tuple[float, int, int, int]] = []
        self.cpu: list[dict[str, float]] = []  # CPU share of each process, per 0.5 s

    async def run(self, start: float) -> None:
        from bridge.journey.events import GROUP
        from bridge.store.beckn_keys import WAKE
        from bridge.worker import QUEUE

        prev = {k: _cpu_seconds(p) for k, p in self.pids.items()}
        t_prev = time.monotonic()
        while True:
            lag = -1
            now_cpu = {k: _cpu_seconds(p) for k, p in self.pids.items()}
            t_now = time.monotonic()
            self.cpu.append({k: (now_cpu[k] - prev[k]) / max(t_now - t_prev, 1e-6)
                             for k in self.pids})
            prev, t_prev = now_cpu, t_now
            try:
                for g in await self.redis.xinfo_groups(EVENTS):
                    if g["name"] in (GROUP, GROUP.encode()):
                        lag = int(g.get("lag") or 0)
                due = await self.redis.zcount(QUEUE, 0, int(time.time() * 1000))
                wake = await self.redis.llen(WAKE)
                self.samples.append((round(time.monotonic() - start, 1), lag, due, wake))
            except Exception:  # a sample is not worth a failed run
                pass
            await asyncio.sleep(0.5)

    def report(self) -> dict[str, Any]:
        if not self.samples:
            return {}
        worst = max(self.samples, key=lambda s: s[1])
        # CPU over the busiest 10 s (by the sum over all processes)
        win = 20
        sums = [sum(sum(c.values()) for c in self.cpu[i:i + win])
                for i in range(max(len(self.cpu) - win + 1, 1))]
        i = max(range(len(sums)), key=sums.__getitem__)
        busiest = {k: round(sum(c.get(k, 0) for c in self.cpu[i:i + win]) / max(len(
            self.cpu[i:i + win]), 1), 2) for k in self.pids}
        return {"journey_consumer_lag_max": worst[1], "at_s": worst[0],
                "journey_consumer_lag_p50": pct([s[1] for s in self.samples], 0.5),
                "arq_due_jobs_max": max(s[2] for s in self.samples),
                "callback_fast_lane_max": max(s[3] for s in self.samples),
                "cpu_cores_busiest_10s": busiest, "busiest_10s_from_s": round(i * 0.5, 1),
                "timeline_every_5s": [list(s) for s in self.samples[::10]]}


# --------------------------------------------------------------------------- processes


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


async def wait_http(http: aiohttp.ClientSession, url: str, what: str, proc: subprocess.Popen[bytes],
                    log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            async with http.get(url) as r:
                if r.status < 500:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"{what} did not come up at {url}")


async def profile(out: Path, pids: dict[str, int], seconds: float) -> None:
    """py-spy record (raw folded stacks) of the named processes, in parallel."""
    out.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).parent / "py-spy")
    spies = [subprocess.Popen([spy, "record", "-p", str(pid), "-f", "raw", "-r", "100",
                               "-o", str(out / f"{name}.txt"), "-d", str(int(seconds)),
                               "--nonblocking"],
                              stdout=subprocess.DEVNULL, stderr=open(out / f"{name}.err", "wb"))
             for name, pid in pids.items()]
    for s in spies:
        while s.poll() is None:
            await asyncio.sleep(0.2)


# --------------------------------------------------------------------------- main


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--journeys", type=int, default=200)
    ap.add_argument("--speed", type=float, default=30,
                    help="mock simulated-time factor (30: 5 kWh at 50 kW in ~12 s)")
    ap.add_argument("--tick", type=int, default=36,
                    help="mock simulated seconds per meter tick (36 s = 0.01 h; at speed 30 "
                         "one meter PATCH per session every 1.2 s)")
    ap.add_argument("--track-interval", type=float, default=1.0,
                    help="BRIDGE_JOURNEY_TRACK_INTERVAL: at most one tracking PATCH per s")
    ap.add_argument("--ramp", type=float, default=10.0, help="journeys start over this many s")
    ap.add_argument("--duration", type=float, default=240.0, help="the whole run, at most (s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--generate", type=int, default=0,
                    help="mock --generate (default: enough locations for N chargers)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results-journey.json"))
    ap.add_argument("--label", help="key of this run in --out (default n{N}-speed{S}-tick{T})")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--profile", metavar="DIR",
                    help="py-spy serve, worker and mock (raw stacks) while sessions run")
    ap.add_argument("--profile-at", type=float, default=15.0,
                    help="seconds after the first journey starts")
    ap.add_argument("--profile-seconds", type=float, default=10.0)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = ap.parse_args()

    n = args.journeys
    generate = args.generate or max(50, int(n * 2.5))
    chargers = pick_chargers(generate, args.seed)
    if len(chargers) < n:
        raise SystemExit(f"only {len(chargers)} walk-in DC chargers with --generate {generate}; "
                         "raise --generate")
    rnd = random.Random(args.seed)
    rnd.shuffle(chargers)
    chargers = chargers[:n]

    tmp = Path(tempfile.mkdtemp(prefix="obb-journey-"))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    runner_web: web.AppRunner | None = None
    try:
        rport = free_port()
        redis_bin = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "redis-server"
        procs["redis"] = subprocess.Popen(
            [redis_bin, "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
        redis_url = f"redis://127.0.0.1:{rport}/0"

        # the BAP (this process)
        bap = Bap(signing.generate_private_key())
        app = web.Application()
        app.router.add_post("/lookup", bap.lookup)
        app.router.add_post("/bap/{action}", bap.callback)
        app.router.add_patch("/track/{txn}", bap.track_patch)
        runner_web = web.AppRunner(app, access_log=None)
        await runner_web.setup()
        bport = free_port()
        await web.TCPSite(runner_web, "127.0.0.1", bport, backlog=2048).start()
        bap.url = f"http://127.0.0.1:{bport}"

        # the bridge: serve + worker
        bridge_key = signing.generate_private_key()
        (tmp / "bridge.key").write_bytes(signing.private_key_pem(bridge_key))
        bap.bridge_public = bridge_key.public_key()
        port = free_port()
        bridge_url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "BRIDGE_CONFIG": str(ROOT / "config" / "bridge.toml"),
               "BRIDGE_REDIS_URL": redis_url, "REDIS_URL": redis_url,
               "BRIDGE_REDIS_ALLOW_VOLATILE": "1",  # a throw-away Redis without AOF
               "BRIDGE_HOST": "127.0.0.1", "BRIDGE_PORT": str(port),
               "BRIDGE_PUBLIC_URL": bridge_url, "BRIDGE_LOG_LEVEL": "warning",
                   # a benchmark is one client at full tilt: no per-caller budget
                   "BRIDGE_OCPI_RATE_LIMIT": "off", "BRIDGE_BECKN_RATE_LIMIT": "off",
               "BRIDGE_LOG_FORMAT": "json", "BRIDGE_BECKN_SUBSCRIBER_ID": BPP_ID,
               "BRIDGE_BECKN_KEY_ID": "bpp-bench-key-1",
               "BRIDGE_BECKN_PRIVATE_KEY": str(tmp / "bridge.key"),
               "BRIDGE_BECKN_REGISTRY_URL": bap.url, "BRIDGE_BECKN_STATIC_KEYS": "",
               "BRIDGE_JOURNEY_PRICING_POLICY": str(ROOT / "config" / "pricing.toml"),
               "BRIDGE_JOURNEY_TRACK_INTERVAL": str(args.track_interval),
               # this BAP reads and writes the implementation guide's vocabulary
               # (orderAttributes, payment-details, fulfillment-details)
               "BRIDGE_BECKN_WIRE_PROFILE": "guide"}
        py = sys.executable
        procs["serve"] = subprocess.Popen([py, "-m", "bridge.cli", "serve"], env=env, cwd=ROOT,
                                          stdout=subprocess.DEVNULL,
                                          stderr=open(tmp / "serve.log", "wb"))
        procs["worker"] = subprocess.Popen([py, "-m", "bridge.cli", "worker"], env=env, cwd=ROOT,
                                           stdout=subprocess.DEVNULL,
                                           stderr=open(tmp / "worker.log", "wb"))
        # the mock CPO
        mport = free_port()
        mock_url = f"http://127.0.0.1:{mport}"
        menv = {**os.environ, "MOCK_CPO_HOST": "127.0.0.1", "MOCK_CPO_PORT": str(mport),
                "MOCK_CPO_PUBLIC_URL": mock_url, "MOCK_CPO_LOG_LEVEL": "warning"}
        procs["mock"] = subprocess.Popen(
            [py, "-m", "ocpi_mock.cli", "serve", "--network", str(NETWORK), "--speed",
             str(args.speed), "--tick", str(args.tick), "--generate", str(generate),
             "--seed", str(args.seed)], env=menv, cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=open(tmp / "mock.log", "wb"))

        redis = aioredis.Redis.from_url(redis_url, max_connections=32)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(
                timeout=timeout, connector=aiohttp.TCPConnector(limit=400)) as http:
            await wait_http(http, f"{bridge_url}/readyz", "bridge serve", procs["serve"],
                            tmp / "serve.log")
            await wait_http(http, f"{mock_url}/ocpi/versions", "ocpi-mock", procs["mock"],
                            tmp / "mock.log")
            await asyncio.sleep(1.0)  # the worker's consumer groups
            if procs["worker"].poll() is not None:
                raise SystemExit("bridge worker exited:\n" + (tmp / "worker.log").read_text())
            token_a = await CredentialsStore(redis).create_invite(
                "IN", "TPC", ("IN", "ZEO"), ("IN", "STK"))
            t0 = time.monotonic()
            async with http.post(f"{mock_url}/admin/connect", data=orjson.dumps(
                    {"versions_url": f"{bridge_url}/ocpi/versions", "token": token_a}),
                    timeout=aiohttp.ClientTimeout(total=300)) as resp:
                connected = await resp.json()
                if resp.status != 200:
                    raise SystemExit(f"connect failed: {connected}")
            connect_s = time.monotonic() - t0
            print(f"connected: pushed {connected.get('pushed')} in {connect_s:.1f} s; "
                  f"{n} journeys on {len(chargers)} chargers (speed x{args.speed:g}, tick "
                  f"{args.tick} s = a meter PATCH every {args.tick / args.speed:.2f} s per "
                  f"session)", flush=True)
            await asyncio.sleep(2.0)  # let the worker's catalog consumer settle
            mem_before = int((await redis.info("memory"))["used_memory"])

            otps = OtpFeed(redis)
            otp_task = asyncio.create_task(otps.run())
            session_timeout = max(60.0, args.duration)
            run = Runner(bap, http, bridge_url, otps, step_timeout=30,
                         session_timeout=session_timeout)
            results = [Result(txn=f"bench-{uuid.uuid4().hex[:10]}-{i}") for i in range(n)]
            pids = {name: p.pid for name, p in procs.items()} | {"bench": os.getpid()}
            cpu0 = {name: _cpu_seconds(pid) for name, pid in pids.items()}
            start = time.monotonic()

            async def one(i: int) -> None:
                await asyncio.sleep(args.ramp * i / max(n, 1))
                res = results[i]
                try:
                    await run.journey(i, chargers[i], res, random.Random(args.seed * 1000 + i))
                except Exception as exc:  # a failed journey is a figure, not a crash
                    res.error = f"{type(exc).__name__}: {exc}"[:300]

            tasks = [asyncio.create_task(one(i)) for i in range(n)]
            prof_task = None
            if args.profile:
                async def later() -> None:
                    await asyncio.sleep(args.profile_at)
                    print(f"profiling serve, worker, mock for {args.profile_seconds:.0f} s",
                          flush=True)
                    await profile(Path(args.profile), {k: pids[k] for k in
                                                       ("serve", "worker", "mock")},
                                  args.profile_seconds)
                prof_task = asyncio.create_task(later())

            async def progress() -> None:
                while True:
                    await asyncio.sleep(10)
                    done = sum(r.ok for r in results)
                    failed = sum(r.error is not None for r in results)
                    active = sum(r.t_active is not None and r.t_completed is None
                                 for r in results)
                    lag = backlog.samples[-1][1:] if backlog.samples else ()
                    print(f"  t={time.monotonic() - start:5.0f}s done {done} failed {failed} "
                          f"charging {active} patches {bap.patches} "
                          f"(consumer lag, arq due, fast lane) {lag}", flush=True)

            prog = asyncio.create_task(progress())
            backlog = Backlog(redis, pids)
            back_task = asyncio.create_task(backlog.run(start))
            _, pending = await asyncio.wait(tasks, timeout=args.duration)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for res in results:
                if not res.ok and res.error is None:
                    res.error = f"timeout after {args.duration:.0f} s at {res.step}"
            elapsed = time.monotonic() - start
            prog.cancel()
            if prof_task is not None:
                await asyncio.gather(prof_task, return_exceptions=True)
            cpu = {name: round(_cpu_seconds(pid) - cpu0[name], 1) for name, pid in pids.items()}
            otp_task.cancel()
            back_task.cancel()
            await asyncio.gather(otp_task, prog, back_task, return_exceptions=True)

            report = await analyse(args, redis, bap, run, results, elapsed, cpu, mem_before,
                                   generate, connect_s)
            report["worker_backlog"] = backlog.report()
        await redis.aclose()
        text = json.dumps(report, indent=2)
        print(text)
        if not args.no_write:
            label = args.label or f"n{n}-speed{args.speed:g}-tick{args.tick}"
            out = Path(args.out)
            runs = json.loads(out.read_text()) if out.exists() else {}
            runs[label] = report
            out.write_text(json.dumps(runs, indent=2) + "\n")
            print(f"written to {args.out} as {label!r}")
        dead = {k: p.returncode for k, p in procs.items() if p.poll() is not None}
        if dead:
            print(f"processes that exited early: {dead}; logs in {tmp}")
            args.keep = True
    finally:
        if runner_web is not None:
            await runner_web.cleanup()
        for name in ("mock", "worker", "serve", "redis"):
            p = procs.get(name)
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if args.keep:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def peak_rate(times: list[float], window: float = 1.0) -> int:
    best = lo = 0
    for hi, t in enumerate(times):
        while times[lo] < t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _entry_ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


def update_rates(ms: list[int]) -> dict[str, float]:
    """Session updates per second: the busiest second, the busiest 10 s, and the mean
    from the first to the last."""
    if len(ms) < 2:
        return {"peak_1s": len(ms), "busiest_10s": 0.0, "mean": 0.0}
    per_s: dict[int, int] = defaultdict(int)
    for t in ms:
        per_s[t // 1000] += 1
    first, last = min(per_s), max(per_s)
    counts = [per_s.get(t, 0) for t in range(first, last + 1)]
    best10 = max(sum(counts[i:i + 10]) for i in range(max(1, len(counts) - 9))) / min(10, len(counts))
    return {"peak_1s": max(counts), "busiest_10s": round(best10, 1),
            "mean": round(len(ms) / max((max(ms) - min(ms)) / 1000, 1e-3), 1)}


async def analyse(args: argparse.Namespace, redis: aioredis.Redis, bap: Bap, run: Runner,
                  results: list[Result], elapsed: float, cpu: dict[str, float],
                  mem_before: int, generate: int, connect_s: float) -> dict[str, Any]:
    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    errors: dict[str, int] = defaultdict(int)
    for r in failed:
        errors[f"{r.step}: {(r.error or '')[:120]}"] += 1

    # arrival of Sessions and CDRs at the bridge: the OCPI change stream
    session_puts: dict[str, list[int]] = defaultdict(list)
    session_events: dict[str, int] = defaultdict(int)
    cdr_at: dict[str, int] = {}
    update_ms: list[int] = []  # every Session PUT/PATCH the bridge stored (its stream time)
    last = "-"
    while True:
        batch = await redis.xrange(EVENTS, min=last, max="+", count=5000)
        if last != "-":
            batch = batch[1:]
        if not batch:
            break
        for eid, f in batch:
            module, op = f.get(b"module"), f.get(b"op")
            oid = (f.get(b"id") or b"").decode()
            if module == b"sessions":
                session_events[oid] += 1
                update_ms.append(_entry_ms(eid))
                if op == b"put":
                    session_puts[oid].append(_entry_ms(eid))
            elif module == b"cdrs" and op == b"put":
                cdr_at.setdefault(oid, _entry_ms(eid))
        last = batch[-1][0].decode()

    orders = OrderStore(redis)
    settle_delay, active_delay, money_bad, patches_per, patch_rate = [], [], 0, [], []
    ocpi_patches_per, overshoot = [], []
    for r in ok:
        order = await orders.get(r.txn)
        if order is None:
            continue
        sid = order.session.get("id")
        puts = session_puts.get(sid or "", [])
        if len(puts) >= 2 and r.t_active_wall is not None:  # PENDING, then ACTIVE
            active_delay.append(r.t_active_wall - puts[1] / 1000)
        cdr = cdr_at.get(f"CDR-{sid}")
        if cdr is not None and r.t_completed_wall is not None:
            settle_delay.append(r.t_completed_wall - cdr / 1000)
        if sid:
            ocpi_patches_per.append(session_events[sid] - len(puts))
        s = order.settlement or {}
        paid = Decimal(str(order.payment.get("amount", "0")))
        if paid + Decimal(str(s.get("top_up", "0"))) != \
                Decimal(str(s.get("final_amount", "-1"))) + Decimal(str(s.get("refund", "0"))):
            money_bad += 1
        if r.mode == "kwh" and order.quote and order.quote.get("energy_kwh"):
            overshoot.append(float(Decimal(str(order.session.get("kwh", 0)))
                                   - Decimal(str(order.quote["energy_kwh"]))))
        tx = bap.txns[r.txn]
        patches_per.append(len(tx.patches))
        if len(tx.patches) >= 2:
            patch_rate.append((len(tx.patches) - 1) / (tx.patches[-1] - tx.patches[0]))

    # peak concurrent charging sessions, as the BAP sees them (on_update ACTIVE..COMPLETED)
    marks = sorted([(r.t_active, 1) for r in results if r.t_active is not None]
                   + [(r.t_completed, -1) for r in results if r.t_completed is not None])
    peak = cur = 0
    for _, d in marks:
        cur += d
        peak = max(peak, cur)
    charge_s = [r.t_completed - r.t_active for r in ok if r.t_completed and r.t_active]
    journey_s = [r.t_completed - r.t_start for r in ok if r.t_completed]
    first = min((r.t_start for r in results if r.t_start), default=0.0)
    last_done = max((r.t_completed for r in ok if r.t_completed), default=first)
    span = max(last_done - first, 1e-9)
    pt = sorted(bap.patch_times)
    mem = await redis.info("memory")
    dbsize = await redis.dbsize()
    cb = {a: summary(bap.latency.get(a, [])) for a in ("select", "init", "confirm", "track")}
    all_cb = [x for a in ("select", "init", "confirm", "track") for x in bap.latency.get(a, [])]
    return {
        "journeys": len(results), "completed": len(ok), "failed": len(failed),
        "errors": dict(errors),
        "nacks": dict(run.nacks),
        "journeys_per_min": round(len(ok) / span * 60, 1),
        "wall_seconds": round(elapsed, 1),
        "peak_concurrent_sessions": peak,
        "callback_latency": {"all_select_init_confirm_track": summary(all_cb), **cb,
                             "ack_of_the_request_all_actions": summary(bap.latency.get("ack",
                                                                                       [])),
                             "pay->on_status_PAID": summary(bap.latency.get("pay->on_status",
                                                                            []))},
        "session_active_to_on_update_active": summary(active_delay),
        "update_start_to_on_update_active": summary([r.start_latency for r in ok
                                                     if r.start_latency is not None]),
        "settlement_delay_cdr_to_on_update_completed": summary(settle_delay),
        "tracking": {
            "patches_received": bap.patches,
            "per_session_mean": round(sum(patches_per) / max(len(patches_per), 1), 1),
            "per_session_min": min(patches_per, default=0),
            "per_session_rate_hz_p50": round(pct(patch_rate, 0.5) or 0, 2),
            "aggregate_rate_per_s_mean": round(len(pt) / max(pt[-1] - pt[0], 1e-9), 1)
            if len(pt) > 1 else 0,
            "aggregate_rate_per_s_peak_1s": peak_rate(pt),
            "ocpi_session_patches_per_session_mean": round(
                sum(ocpi_patches_per) / max(len(ocpi_patches_per), 1), 1),
            # the rate the goal is stated in: OCPI Session updates stored by the bridge
            "ocpi_session_updates_per_s": update_rates(update_ms),
            "unknown": bap.unknown_patches,
        },
        "charging_seconds": {"p50": round(pct(charge_s, 0.5) or 0, 1),
                             "p99": round(pct(charge_s, 0.99) or 0, 1)},
        "journey_seconds": {"p50": round(pct(journey_s, 0.5) or 0, 1),
                            "p99": round(pct(journey_s, 0.99) or 0, 1)},
        "kwh_overshoot_p50": round(pct(overshoot, 0.5) or 0, 3),
        "money_mismatches": money_bad,
        "callbacks_received": bap.callbacks, "bad_signatures": bap.bad_signatures,
        "redis": {"used_memory_mb": round(int(mem["used_memory"]) / 1e6, 1),
                  "used_memory_peak_mb": round(int(mem["used_memory_peak"]) / 1e6, 1),
                  "network_loaded_mb": round(mem_before / 1e6, 1), "keys": dbsize},
        "cpu_seconds": cpu,
        "cpu_utilisation": {k: round(v / elapsed, 2) for k, v in cpu.items()},
        # the whole run's CPU per stored Session update (the journeys' other steps
        # included): the cores a given update rate needs, whatever else ran on the machine
        "cpu_ms_per_session_update": {k: round(v * 1000 / max(len(update_ms), 1), 2)
                                      for k, v in cpu.items()},
        "settings": {"speed": args.speed, "tick_s": args.tick,
                     "meter_patch_every_s": round(args.tick / args.speed, 2),
                     "track_interval_s": args.track_interval, "ramp_s": args.ramp,
                     "duration_s": args.duration, "generate": generate,
                     "connect_seconds": round(connect_s, 1),
                     "processes": "1 bridge serve + 1 bridge worker + ocpi-mock + redis + "
                                  "this BAP, one host"},
        "machine": {"nproc": os.cpu_count(), "cpu": _cpu_model(),
                    "python": sys.version.split()[0]},
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
