"""OCPI ingest benchmark: the bridge against a bare aiohttp + one HSET handler.

Starts its own redis-server on a free port, one `bridge serve` process and one
bare handler process (both on 127.0.0.1), then drives each in turn from 64
concurrent connections for a bounded time with the same request mix:
PATCH EVSE status (80%) and PUT Location (20%). Prints req/s, p50 and p99 of
both and the ratios. Everything stops by itself.

    .venv/bin/python bench/ocpi_ingest.py [--seconds 10] [--concurrency 64] [--rounds 3]
        [--baseline REV] [--profile DIR]

`--baseline REV` also starts `bridge serve` as it was at git revision REV (its
tree from `git archive`, run with this venv) on the same Redis, measured in the
same rounds (bare, baseline, bridge), so a change is compared within one run.
`--profile DIR` records py-spy stacks (raw folded) of each server during round 1.
Every write carries a `last_updated` newer than any before it in the run (all
rounds, warm-up included): a stale write is answered without writing, and is
counted as an error.
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


# One counter for the whole run: every round's writes are newer than the previous
# rounds' (each round used to start again at 0, so later rounds sent stale writes,
# which the bridge answers without writing).
_COUNTER = [0]


async def drive(base: str, token: str, seconds: float, concurrency: int) -> dict[str, float]:
    auth = "Token " + base64.b64encode(token.encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds
    counter = _COUNTER

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
                answer = await resp.read()
                # 201: a new object (OCPI §5); "Ignored": a stale write (nothing written)
                if resp.status not in (200, 201) or b"Ignored" in answer:
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
    ap.add_argument("--baseline", metavar="REV",
                    help="also measure bridge serve at this git revision, in the same rounds")
    ap.add_argument("--profile", metavar="DIR", help="py-spy stacks of each server in round 1")
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
            servers = {"bridge serve": (bport, ROOT, {})}
            if args.baseline:
                base_dir = Path(tmp) / "baseline"
                base_dir.mkdir()
                archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline],
                                         capture_output=True, check=True).stdout
                subprocess.run(["tar", "-x", "-C", str(base_dir)], input=archive, check=True)
                # this venv's packages, the revision's code (PYTHONPATH comes before the
                # editable install's finder)
                servers = {f"baseline {args.baseline}": (free_port(), base_dir,
                                                         {"PYTHONPATH": str(base_dir)}),
                           **servers}
            spids: dict[str, int] = {}  # the servers' pids (CPU time per request, py-spy)
            for name, (port, cwd, extra) in servers.items():
                p = subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve"],
                                     env={**env, **extra, "BRIDGE_PORT": str(port),
                                          "BRIDGE_PUBLIC_URL": f"http://127.0.0.1:{port}"},
                                     cwd=cwd, stderr=subprocess.DEVNULL)
                procs.append(p)
                spids[name] = p.pid
            procs.append(subprocess.Popen([sys.executable, __file__, "--bare-server", str(xport),
                                           redis_url]))
            cpids = {"bare HSET handler": procs[-1].pid, **spids}
            for port, _, _ in servers.values():
                wait_port(port)
            wait_port(xport)
            urls = {"bare HSET handler": f"http://127.0.0.1:{xport}",
                    **{name: f"http://127.0.0.1:{port}" for name, (port, _, _) in servers.items()}}
            token = asyncio.run(prepare(redis_url, urls["bridge serve"]))
            print(f"machine: {os.cpu_count()} cpus, {platform_line()}, "
                  f"load average {os.getloadavg()[0]:.2f} before the run")
            print(f"load: {args.concurrency} connections, {args.seconds:.0f} s each, "
                  f"80% PATCH EVSE status / 20% PUT Location, {N_LOCATIONS} locations x 2 EVSEs")
            # Warm-up each, then measure them back to back, round after round.
            for url in urls.values():
                asyncio.run(drive(url, token, 1, args.concurrency))
            ratios: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
            cpu_ratio: dict[str, list[float]] = {name: [] for name in servers}
            for n in range(1, args.rounds + 1):
                spies = _profile(args.profile, spids, args.seconds) if n == 1 else []
                res = {}
                for name, url in urls.items():
                    # CPU time of the server and of Redis per request: what the throughput
                    # ratio comes from, and much steadier than it on a shared machine.
                    c0, r0 = cpu_seconds(cpids[name]), cpu_seconds(procs[0].pid)
                    res[name] = asyncio.run(drive(url, token, args.seconds, args.concurrency))
                    n_req = max(1, int(res[name]["requests"]))
                    res[name]["cpu_ms"] = (cpu_seconds(cpids[name]) - c0) * 1000 / n_req
                    res[name]["redis_cpu_ms"] = (cpu_seconds(procs[0].pid) - r0) * 1000 / n_req
                for s in spies:
                    s.wait(timeout=60)
                bare = res["bare HSET handler"]
                for name, r in res.items():
                    print(f"round {n}: {name:18s} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.1f} ms"
                          f"  p99 {r['p99_ms']:6.1f} ms  ({r['requests']} requests, "
                          f"{r['errors']} errors)  CPU/request: server {r['cpu_ms']:.3f} ms, "
                          f"Redis {r['redis_cpu_ms']:.3f} ms")
                for name in servers:
                    ratios[name].append((res[name]["rps"] / bare["rps"],
                                         res[name]["p99_ms"] / bare["p99_ms"]))
                    cpu_ratio[name].append(res[name]["cpu_ms"] / bare["cpu_ms"])
                    print(f"round {n}: {name}: ratio {ratios[name][-1][0]:.2f} of bare, "
                          f"p99 {ratios[name][-1][1]:.2f}x, server CPU per request "
                          f"{cpu_ratio[name][-1]:.2f}x bare's")
            for name, rs in ratios.items():
                tput = sorted(r[0] for r in rs)
                p99 = sorted(r[1] for r in rs)
                cr = sorted(cpu_ratio[name])
                print(f"{name}: ratio (median of {len(rs)} rounds; range {tput[0]:.2f}-{tput[-1]:.2f}): "
                      f"throughput {tput[len(tput) // 2]:.2f} of bare (target >= 0.50), "
                      f"p99 {p99[len(p99) // 2]:.2f}x bare (target <= 2.0), "
                      f"server CPU per request {cr[len(cr) // 2]:.2f}x bare's")
            if args.baseline:
                rel = sorted(b[0] / a[0] for a, b in zip(*ratios.values(), strict=True))
                crel = sorted(b / a for a, b in zip(*cpu_ratio.values(), strict=True))
                print(f"bridge serve / baseline {args.baseline}: throughput {rel[len(rel) // 2]:.2f}x, "
                      f"server CPU per request {crel[len(crel) // 2]:.2f}x "
                      "(medians of the rounds' ratios)")
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


def _profile(out: str | None, pids: dict[str, int], seconds: float) -> list[subprocess.Popen[bytes]]:
    """py-spy (raw folded stacks) of each server, for as long as a round lasts."""
    if not out:
        return []
    Path(out).mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).parent / "py-spy")
    total = int(seconds * (len(pids) + 1)) + 1
    return [subprocess.Popen([spy, "record", "-p", str(pid), "-f", "raw", "-r", "200", "-d", str(total),
                              "-o", str(Path(out) / f"{name.split()[0]}.txt"), "--nonblocking"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, pid in pids.items()]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
