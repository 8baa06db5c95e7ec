# ruff: noqa: ASYNC110, ASYNC220, ASYNC230, ASYNC240  (set-up and tear-down block on purpose)
"""Catalog publish benchmark: OCPI EVSE status PATCH -> the CDS has it.

Starts its own redis-server, loads `--locations` locations (5 EVSEs each, 4 CPOs, as
bench/discover.py does), starts `bridge serve` and `bridge worker` (one process each) with
`beckn.cds_url` pointing at a CDS played here (aiohttp on loopback: it ACKs, indexes the
items' status by item id, verifies one publish signature in 10, and sends signed
`on_catalog_publish` results back to serve). Then, for each `--delays` value (the
worker restarted with that `beckn.publish_delay`, after its full publish on start):
`--rate` status PATCHes per second for `--seconds` over OCPI (each to another EVSE,
flipping AVAILABLE <-> CHARGING), and the time from each PATCH being sent until the CDS
holds that EVSE's new status. Also the CPU time per change of serve, worker and Redis
(from /proc), and the publish requests and items they took. Results:
bench/results-publish.json. Everything stops by itself.

    .venv/bin/python bench/publish.py [--locations 2000] [--rate 100] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import discover as dbench  # noqa: E402  (bench/discover.py: the same generated network)

from bridge.beckn import signing  # noqa: E402
from bridge.mapping.catalog import item_id  # noqa: E402

PIDS = ("TPC", "ZAP", "CHG", "STA")
STATUS_TEXT = {"AVAILABLE": "Available", "CHARGING": "Occupied"}


class Cds:
    """The CDS: records when each item's status arrives."""

    def __init__(self, key: Any, verify_every: int = 10) -> None:
        self.key = key
        self.bpp_key: Any = None
        self.url = ""
        self.status: dict[str, str] = {}  # item id -> status text last received
        self.waiting: dict[str, tuple[str, float]] = {}  # item id -> (status, PATCH sent)
        self.latency: list[float] = []
        self.requests = 0
        self.items = 0
        self.bad_signatures = 0
        self.verified = 0
        self.verify_every = verify_every
        self.results_acked = 0
        self.tasks: set[asyncio.Task[Any]] = set()

    async def publish(self, request: web.Request) -> web.Response:
        raw = await request.read()
        now = time.monotonic()
        self.requests += 1
        if self.bpp_key is not None and self.requests % self.verify_every == 0:
            self.verified += 1
            try:
                signing.verify(signing.parse_header(request.headers.get("Authorization")), raw,
                               self.bpp_key, time.time())
            except Exception:
                self.bad_signatures += 1
        body = orjson.loads(raw)
        results = []
        for cat in body["message"]["catalogs"]:
            items = cat.get("beckn:items", [])
            self.items += len(items)
            for it in items:
                iid = it["beckn:id"]
                text = it["beckn:descriptor"].get("beckn:shortDesc", "").rsplit(", ", 1)[-1]
                self.status[iid] = text
                want = self.waiting.get(iid)
                if want is not None and want[0] == text:
                    self.latency.append(now - want[1])
                    del self.waiting[iid]
            results.append({"catalog_id": cat["beckn:id"], "status": "ACCEPTED",
                            "item_count": len(items)})
        task = asyncio.create_task(self.on_publish(body["context"], results))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return web.json_response({"transaction_id": body["context"]["transaction_id"],
                                  "timestamp": datetime.now(UTC).isoformat(),
                                  "ack_status": "ACK"})

    async def on_publish(self, ctx: dict[str, Any], results: list[dict[str, Any]]) -> None:
        raw = orjson.dumps({"context": {
            "domain": ctx["domain"], "action": "on_catalog_publish", "version": "2.0.0",
            "bap_id": ctx["bap_id"], "bap_uri": ctx["bap_uri"], "bpp_id": "bench-cds",
            "bpp_uri": self.url, "transaction_id": ctx["transaction_id"],
            "message_id": str(uuid.uuid4()),
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "ttl": "PT30S"},
            "message": {"results": results}})
        auth = signing.Signer("bench-cds", "cds1", self.key, 60).header(raw, time.time())
        try:
            async with aiohttp.ClientSession() as http, http.post(
                    f"{ctx['bap_uri']}/catalog/on_publish", data=raw,
                    headers={"Authorization": auth, "Content-Type": "application/json"}) as r:
                if r.status == 200:
                    self.results_acked += 1
        except aiohttp.ClientError:
            pass


def cpu_seconds(pid: int) -> float:
    return dbench._cpu_seconds(pid)


async def wait_ready(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("bridge serve did not come up")


async def grant_cpos(redis_url: str) -> str:
    from bridge.store.credentials import Connection, CredentialsStore, new_token

    r = aioredis.Redis.from_url(redis_url)
    token = new_token()
    conn = Connection(id="bench", their_token="unused", versions_url="http://127.0.0.1:1/",
                      roles=[{"role": "CPO", "country_code": "IN", "party_id": pid,
                              "business_details": {"name": f"Bench {pid}"}} for pid in PIDS])
    await CredentialsStore(r).save_connection(conn, token)
    await r.aclose()
    return token


async def phase(args: argparse.Namespace, cds: Cds, bridge: str, token: str,
                evses: list[tuple[str, str, str, str]], pids: dict[str, int],
                rnd: random.Random) -> dict[str, Any]:
    auth = "Token " + base64.b64encode(token.encode()).decode()
    n = int(args.rate * args.seconds)
    picks = rnd.sample(evses, n)
    cds.latency.clear()
    cds.waiting.clear()
    req0, items0 = cds.requests, cds.items
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    failed = 0
    start = time.monotonic()
    conn = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=conn) as http:
        tasks = []

        async def patch(pid: str, lid: str, uid: str, iid: str) -> None:
            nonlocal failed
            now_status = "CHARGING" if cds.status.get(iid) == "Available" else "AVAILABLE"
            body = orjson.dumps({"status": now_status, "last_updated": datetime.now(UTC)
                                 .isoformat().replace("+00:00", "Z")})
            cds.waiting[iid] = (STATUS_TEXT[now_status], time.monotonic())
            try:
                async with http.patch(f"{bridge}/ocpi/2.2.1/locations/IN/{pid}/{lid}/{uid}",
                                      data=body, headers={"Authorization": auth,
                                                          "Content-Type": "application/json"}
                                      ) as resp:
                    await resp.read()
                    if resp.status != 200:
                        failed += 1
                        cds.waiting.pop(iid, None)
            except aiohttp.ClientError:
                failed += 1
                cds.waiting.pop(iid, None)

        for i, (pid, lid, uid, iid) in enumerate(picks):
            delay = start + i / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(patch(pid, lid, uid, iid)))
        await asyncio.gather(*tasks)
    sent_for = time.monotonic() - start
    deadline = time.monotonic() + args.delay_max * 3 + 30
    while cds.waiting and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    done = len(cds.latency)
    cpu = {name: round((cpu_seconds(pid) - cpu0[name]) * 1000 / max(done, 1), 3)
           for name, pid in pids.items()}
    lat = sorted(cds.latency)
    return {"changes": n, "patch_failed": failed, "sent_rps": round(n / sent_for, 1),
            "reached_cds": done, "missing": len(cds.waiting),
            "p50_s": round(dbench.pct(lat, 0.5), 3), "p99_s": round(dbench.pct(lat, 0.99), 3),
            "max_s": round(lat[-1], 3) if lat else None,
            "publish_requests": cds.requests - req0, "items_sent": cds.items - items0,
            "cpu_ms_per_change": cpu}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--locations", type=int, default=2000)
    ap.add_argument("--evses-per-location", type=int, default=5)
    ap.add_argument("--rate", type=float, default=100, help="status PATCHes per second")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--delays", default="10,1", help="beckn.publish_delay values, one run each")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results-publish.json"))
    args = ap.parse_args()
    args.delay_max = max(float(d) for d in args.delays.split(","))
    return args


async def main(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="obb-bench-publish-"))
    procs: list[subprocess.Popen[bytes]] = []
    worker: subprocess.Popen[bytes] | None = None
    runner: web.AppRunner | None = None
    try:
        rport = dbench.free_port()
        redis_bin = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "redis-server"
        procs.append(subprocess.Popen([redis_bin, "--port", str(rport), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                                      stdout=subprocess.DEVNULL))
        redis_url = f"redis://127.0.0.1:{rport}/0"
        await asyncio.sleep(0.5)
        load_s = await dbench.load(redis_url, args.locations, args.evses_per_location)
        total = args.locations * args.evses_per_location
        print(f"loaded {args.locations} locations / {total} EVSEs in {load_s:.1f} s", flush=True)
        evses = [(["TPC", "ZAP", "CHG", "STA"][i % 4], f"L{i:06d}", f"E{e}",
                  item_id("IN", ["TPC", "ZAP", "CHG", "STA"][i % 4], f"L{i:06d}", f"E{e}", "1"))
                 for i in range(args.locations) for e in range(args.evses_per_location)]

        bpp_key, cds_key = signing.generate_private_key(), signing.generate_private_key()
        (tmp / "bpp.key").write_bytes(signing.private_key_pem(bpp_key))
        (tmp / "keys.json").write_text(json.dumps([{
            "subscriber_id": "bench-cds", "unique_key_id": "cds1",
            "signing_public_key": signing.public_key_b64(cds_key.public_key())}]))
        cds = Cds(cds_key)
        cds.bpp_key = bpp_key.public_key()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/beckn/catalog/publish", cds.publish)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        cport = dbench.free_port()
        await web.TCPSite(runner, "127.0.0.1", cport).start()
        cds.url = f"http://127.0.0.1:{cport}/beckn"

        port = dbench.free_port()
        env = {**os.environ, "BRIDGE_CONFIG": str(ROOT / "config" / "bridge.toml"),
               "BRIDGE_REDIS_URL": redis_url, "BRIDGE_PORT": str(port),
               "BRIDGE_REDIS_ALLOW_VOLATILE": "1",
               "BRIDGE_PUBLIC_URL": f"http://127.0.0.1:{port}", "BRIDGE_LOG_LEVEL": "warning",
               "BRIDGE_LOG_FORMAT": "json", "BRIDGE_OCPI_RATE_LIMIT": "off",
               "BRIDGE_BECKN_RATE_LIMIT": "off", "BRIDGE_BECKN_SUBSCRIBER_ID": "bench-bpp",
               "BRIDGE_BECKN_PRIVATE_KEY": str(tmp / "bpp.key"),
               "BRIDGE_BECKN_STATIC_KEYS": str(tmp / "keys.json"),
               "BRIDGE_BECKN_REGISTRY_URL": "", "BRIDGE_BECKN_CDS_URL": cds.url,
               "BRIDGE_BECKN_CDS_SUBSCRIBER_ID": "bench-cds"}
        py = sys.executable
        procs.append(subprocess.Popen([py, "-m", "bridge.cli", "serve"], env=env, cwd=ROOT,
                                      stderr=open(tmp / "serve.log", "wb")))
        bridge = f"http://127.0.0.1:{port}"
        await wait_ready(bridge)
        token = await grant_cpos(redis_url)
        rnd = random.Random(11)
        results: dict[str, Any] = {"locations": args.locations, "evses": total,
                                   "rate": args.rate, "seconds": args.seconds,
                                   "nproc": os.cpu_count(), "cpu": dbench._cpu(), "runs": []}
        for delay in (float(d) for d in args.delays.split(",")):
            items_before = cds.items
            worker = subprocess.Popen([py, "-m", "bridge.cli", "worker"],
                                      env={**env, "BRIDGE_BECKN_PUBLISH_DELAY": str(delay)},
                                      cwd=ROOT, stderr=open(tmp / f"worker-{delay}.log", "wb"))
            t0 = time.monotonic()
            while cds.items - items_before < total:  # the full publish on start
                if time.monotonic() - t0 > 300 or worker.poll() is not None:
                    raise RuntimeError(f"the full publish did not arrive (see {tmp})")
                await asyncio.sleep(0.1)
            full_s = time.monotonic() - t0
            print(f"publish_delay {delay:g} s: full publish of {total} items in "
                  f"{full_s:.1f} s (from the worker's start)", flush=True)
            pids = {"serve": procs[1].pid, "worker": worker.pid, "redis": procs[0].pid}
            res = await phase(args, cds, bridge, token, evses, pids, rnd)
            res = {"publish_delay_s": delay, "full_publish_s": round(full_s, 1), **res}
            print(json.dumps(res), flush=True)
            results["runs"].append(res)
            worker.terminate()
            worker.wait(timeout=30)
            worker = None
        results["signatures_verified"] = cds.verified
        results["bad_signatures"] = cds.bad_signatures
        results["results_acked"] = cds.results_acked
        print(json.dumps(results, indent=2))
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    finally:
        if worker is not None:
            worker.kill()
        if runner is not None:
            await runner.cleanup()
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
