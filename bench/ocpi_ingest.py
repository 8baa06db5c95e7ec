"""OCPI ingest benchmark: the bridge against a bare aiohttp + one HSET handler.

Starts its own redis-server on a free port, one `bridge serve` process and one
bare handler process (both on 127.0.0.1), then drives each in turn from 64
concurrent connections for a bounded time with the same request mix:
PATCH EVSE status (80%) and PUT Location (20%). Prints req/s, p50 and p99 of
both and the ratios. Everything stops by itself.

    .venv/bin/python bench/ocpi_ingest.py [--seconds 10] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N_LOCATIONS = 500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def location(i: int, lu: str) -> dict[str, Any]:
    return {
        "country_code": "IN", "party_id": "TPC", "id": f"LOC{i}", "publish": True,
        "name": f"Bench site {i}", "address": "MG Road", "city": "Bengaluru", "country": "IND",
        "coordinates": {"latitude": "12.97160", "longitude": "77.59460"},
        "time_zone": "Asia/Kolkata", "last_updated": lu,
        "evses": [{"uid": f"E{i}-{j}", "evse_id": f"IN*TPC*E{i}{j}", "status": "AVAILABLE",
                   "last_updated": lu,
                   "connectors": [{"id": "1", "standard": "IEC_62196_T2_COMBO", "format": "CABLE",
                                   "power_type": "DC", "max_voltage": 500, "max_amperage": 125,
                                   "last_updated": lu}]} for j in range(2)],
    }


# --------------------------------------------------------------------------- bare server


def run_bare(port: int, redis_url: str) -> None:
    """The baseline: parse JSON, one HSET, answer a small JSON body."""
    import redis.asyncio as aioredis
    from aiohttp import web

    async def main() -> None:
        r = aioredis.Redis.from_url(redis_url, max_connections=512)

        async def handler(request: web.Request) -> web.Response:
            body = orjson.loads(await request.read())
            await r.hset("bare:" + request.path, "d", orjson.dumps(body))
            return web.Response(body=b'{"status_code":1000}', content_type="application/json")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        await asyncio.Event().wait()

    asyncio.run(main())


# --------------------------------------------------------------------------- load


async def drive(base: str, token: str, seconds: float, concurrency: int) -> dict[str, float]:
    auth = "Token " + base64.b64encode(token.encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds
    counter = [0]

    async def one(session: aiohttp.ClientSession, rng: random.Random) -> None:
        nonlocal errors
        while time.monotonic() < stop:
            counter[0] += 1
            n = counter[0]
            i = rng.randrange(N_LOCATIONS)
            # Strictly increasing last_updated so that every write is applied.
            lu = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_800_000_000 + n)) + "Z"
            if rng.random() < 0.8:
                url = f"{base}/ocpi/2.2.1/locations/IN/TPC/LOC{i}/E{i}-{rng.randrange(2)}"
                method, body = "PATCH", {"status": rng.choice(["AVAILABLE", "CHARGING"]),
                                         "last_updated": lu}
            else:
                url = f"{base}/ocpi/2.2.1/locations/IN/TPC/LOC{i}"
                method, body = "PUT", location(i, lu)
            t0 = time.perf_counter()
            async with session.request(method, url, data=orjson.dumps(body),
                                       headers=headers) as resp:
                await resp.read()
                if resp.status not in (200, 201):  # 201: a new object (OCPI §5)
                    errors += 1
            latencies.append(time.perf_counter() - t0)

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:
        t0 = time.monotonic()
        await asyncio.gather(*(one(session, random.Random(k)) for k in range(concurrency)))
        elapsed = time.monotonic() - t0
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
            "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000}


async def prepare(redis_url: str, bridge_url: str) -> str:
    import redis.asyncio as aioredis

    from bridge.store.credentials import Connection, CredentialsStore, new_token

    r = aioredis.Redis.from_url(redis_url)
    token = new_token()
    conn = Connection(id="bench", their_token="unused", versions_url="http://127.0.0.1:1/",
                      roles=[{"role": "CPO", "country_code": "IN", "party_id": "TPC",
                              "business_details": {"name": "Bench CPO"}}])
    await CredentialsStore(r).save_connection(conn, token)
    await r.aclose()
    auth = "Token " + base64.b64encode(token.encode()).decode()
    async with aiohttp.ClientSession() as s:
        for i in range(N_LOCATIONS):
            async with s.put(f"{bridge_url}/ocpi/2.2.1/locations/IN/TPC/LOC{i}",
                             data=orjson.dumps(location(i, "2026-01-01T00:00:00Z")),
                             headers={"Authorization": auth,
                                      "Content-Type": "application/json"}) as resp:
                assert resp.status in (200, 201), await resp.text()
    return token


def wait_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3,
                    help="bare and bridge measured alternately this many times; the median "
                         "ratio is the figure (one round is at the mercy of the neighbours)")
    ap.add_argument("--bare-server", nargs=2, metavar=("PORT", "REDIS_URL"))
    args = ap.parse_args()
    if args.bare_server:
        run_bare(int(args.bare_server[0]), args.bare_server[1])
        return

    redis_bin = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "redis-server"
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            rport, bport, xport = free_port(), free_port(), free_port()
            redis_url = f"redis://127.0.0.1:{rport}/0"
            procs.append(subprocess.Popen([redis_bin, "--port", str(rport), "--dir", tmp,
                                           "--save", "", "--appendonly", "yes",
                                           "--appendfsync", "everysec"],
                                          stdout=subprocess.DEVNULL))
            wait_port(rport)
            env = {**os.environ, "REDIS_URL": redis_url, "BRIDGE_PORT": str(bport),
                   "BRIDGE_PUBLIC_URL": f"http://127.0.0.1:{bport}", "BRIDGE_LOG_LEVEL": "warning",
                   # a benchmark is one client at full tilt: no per-caller budget
                   "BRIDGE_OCPI_RATE_LIMIT": "off", "BRIDGE_BECKN_RATE_LIMIT": "off",
                   "BRIDGE_LOG_FORMAT": "json"}
            procs.append(subprocess.Popen([str(ROOT / ".venv/bin/bridge"), "serve"], env=env,
                                          cwd=ROOT, stderr=subprocess.DEVNULL))
            procs.append(subprocess.Popen([sys.executable, __file__, "--bare-server", str(xport),
                                           redis_url]))
            wait_port(bport)
            wait_port(xport)
            bridge_url = f"http://127.0.0.1:{bport}"
            token = asyncio.run(prepare(redis_url, bridge_url))
            print(f"machine: {os.cpu_count()} cpus, {platform_line()}, "
                  f"load average {os.getloadavg()[0]:.2f} before the run")
            print(f"load: {args.concurrency} connections, {args.seconds:.0f} s each, "
                  f"80% PATCH EVSE status / 20% PUT Location, {N_LOCATIONS} locations x 2 EVSEs")
            # Warm-up both, then measure bare and bridge back to back.
            asyncio.run(drive(f"http://127.0.0.1:{xport}", token, 1, args.concurrency))
            asyncio.run(drive(bridge_url, token, 1, args.concurrency))
            ratios: list[tuple[float, float]] = []
            for n in range(1, args.rounds + 1):
                bare = asyncio.run(drive(f"http://127.0.0.1:{xport}", token, args.seconds,
                                         args.concurrency))
                bridge = asyncio.run(drive(bridge_url, token, args.seconds, args.concurrency))
                for name, r in (("bare HSET handler", bare), ("bridge serve", bridge)):
                    print(f"round {n}: {name:18s} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.1f} ms"
                          f"  p99 {r['p99_ms']:6.1f} ms  ({r['requests']} requests, "
                          f"{r['errors']} errors)")
                ratios.append((bridge["rps"] / bare["rps"], bridge["p99_ms"] / bare["p99_ms"]))
                print(f"round {n}: ratio {ratios[-1][0]:.2f} of bare, p99 {ratios[-1][1]:.2f}x")
            tput = sorted(r[0] for r in ratios)
            p99 = sorted(r[1] for r in ratios)
            print(f"ratio (median of {len(ratios)} rounds; range {tput[0]:.2f}-{tput[-1]:.2f}): "
                  f"throughput {tput[len(tput) // 2]:.2f} of bare (target >= 0.50), "
                  f"p99 {p99[len(p99) // 2]:.2f}x bare (target <= 2.0)")
            print("Runs differ: the load generator, Redis, the bridge and whatever else runs here "
                  "share the cores; compare the ratios of one run, not figures across runs.")
        finally:
            for p in reversed(procs):
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()


def platform_line() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
