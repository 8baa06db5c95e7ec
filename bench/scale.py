# ruff: noqa: ASYNC240  (set-up and tear-down block on purpose)
"""Scale-out benchmark (docs/scaling.md): the same load on one Redis and on a Redis
Cluster (3 primaries, 3 replicas, the queues on their own Redis), with 1 and with 2
`bridge serve` (one port, SO_REUSEPORT) and `bridge worker` processes, in one run.

    .venv/bin/python bench/scale.py [--locations 3000] [--seconds 8] [--journeys 6]

For each arrangement and process count:
- discover: a signed discover (point + 5 km + CCS2, page of 20; bench/discover.py's
  request and lean client/BAP) at `--discover-rate` req/s for `--seconds`;
- OCPI ingestion: EVSE status PATCHes of the loaded locations (a CPO platform's token),
  `--ingest-concurrency` in flight for `--seconds`;
- journeys: `--journeys` walk-in journeys against the mock CPO (tests/scale/stack.py), end
  to end;
and for each, the Redis commands and Redis CPU time (INFO commandstats, summed over every
primary; replicas' replication work apart) per discover, per OCPI push and per journey.
The data set is bench/discover.py's generator (4 CPOs around Bengaluru). Everything runs
on loopback and stops by itself; figures go to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import discover as bench_discover  # noqa: E402
from bench.discover import Bap, Client, _cpu_seconds, make_location, pct, phase  # noqa: E402
from bridge import redisconn  # noqa: E402
from bridge.beckn import signing  # noqa: E402
from bridge.config import Settings  # noqa: E402
from bridge.ocpi.models import Tariff  # noqa: E402
from bridge.store import beckn_keys as bk  # noqa: E402
from bridge.store import keys, shards  # noqa: E402
from bridge.store.catalog import CATALOG_VERSION, CatalogStore  # noqa: E402
from bridge.store.credentials import Connection, CredentialsStore  # noqa: E402
from bridge.store.ocpi_store import OcpiStore  # noqa: E402
from tests.conftest import free_port, redis_binary  # noqa: E402
from tests.scale.redis_topologies import Cluster, Node  # noqa: E402
from tests.scale.stack import Stack, new_journeys  # noqa: E402

CPO_TOKEN = "bench-cpo-token-c"


class Http(Client):
    """bench/discover.py's lean client, for any method."""

    async def request(self, method: str, path: str, body: bytes, headers: dict[str, str]
                      ) -> tuple[int, bytes]:
        conn = await self.free.get()
        try:
            if conn is None:
                conn = await asyncio.open_connection(self.host, self.port)
            reader, writer = conn
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{head}"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            raw = await reader.readuntil(b"\r\n\r\n")
            status = int(raw[9:12])
            length = 0
            for line in raw.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            data = await reader.readexactly(length) if length else b""
        except (OSError, asyncio.IncompleteReadError, ValueError):
            conn = None
            raise
        finally:
            self.free.put_nowait(conn)
        return status, data


class Topology:
    """One Redis, or a Cluster with the queues' Redis: its env and its primaries."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self.root = root
        self.nodes: list[Node] = []
        self.cluster: Cluster | None = None

    def start(self) -> Topology:
        binary = redis_binary()
        if self.kind == "single":
            self.nodes = [Node(binary, self.root, "single").start()]
        else:
            self.cluster = Cluster(binary, self.root).start()
            self.nodes = [Node(binary, self.root, "queue").start()]
        return self

    def env(self) -> dict[str, str]:
        if self.cluster is None:
            return {"BRIDGE_REDIS_URL": f"redis://127.0.0.1:{self.nodes[0].port}/0"}
        return {"BRIDGE_REDIS_CLUSTER_NODES": self.cluster.nodes_setting,
                "BRIDGE_QUEUE_REDIS_URL": f"redis://127.0.0.1:{self.nodes[0].port}/0"}

    def settings(self) -> Settings:
        e = self.env()
        return Settings(redis_url=e.get("BRIDGE_REDIS_URL", "redis://127.0.0.1:1/0"),
                        redis_cluster_nodes=e.get("BRIDGE_REDIS_CLUSTER_NODES", ""),
                        queue_redis_url=e.get("BRIDGE_QUEUE_REDIS_URL", ""))

    def primaries(self) -> list[int]:
        """Ports whose commandstats count the bridge's work (the data's primaries and the
        queues' Redis)."""
        ports = [n.port for n in self.nodes]
        if self.cluster is not None:
            ports += [n.port for n in self.cluster.nodes if n.proc and n.role() == "master"]
        return ports

    def primary_pids(self) -> list[int]:
        """The redis-server processes of `primaries()`, for their CPU time (commandstats
        counts command execution only; the process's time adds the network, parsing and
        replication that a shard's core also spends)."""
        nodes = list(self.nodes)
        if self.cluster is not None:
            nodes += [n for n in self.cluster.nodes if n.proc and n.role() == "master"]
        return [n.proc.pid for n in nodes if n.proc is not None]

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        for n in self.nodes:
            n.stop()


async def idle_rate(ports: list[int], pids: list[int], seconds: float = 3.0
                    ) -> tuple[float, float, float]:
    """(commands/s, Redis µs/s, redis-server process CPU s/s) of the processes at rest
    (their polls and blocking reads: arq's queue poll, the consumers, the fast lanes, the
    due sets, the relay), to take off each phase's count."""
    reset_stats(ports)
    cpu0 = redis_cpu(pids)
    await asyncio.sleep(seconds)
    calls, usec = read_stats(ports)
    return calls / seconds, usec / seconds, (redis_cpu(pids) - cpu0) / seconds


def redis_cpu(pids: list[int]) -> float:
    """CPU seconds the redis-server processes have used (user + system)."""
    return sum(_cpu_seconds(pid) for pid in pids)


def used_memory(ports: list[int]) -> int:
    total = 0
    for port in ports:
        c = redis.Redis(port=port)
        total += int(c.info("memory")["used_memory"])
        c.close()
    return total


async def drained(topo: Topology, seconds: float = 240) -> float:
    """Wait until every consumer group of every shard's change stream has read and
    acknowledged everything (the workers' share of the pushes is done); the seconds it
    took."""
    r = redisconn.data(topo.settings())
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            behind = 0
            for s in shards.current().shards:
                for g in await r.xinfo_groups(keys.events(s)):
                    behind += int(g.get("lag") or 0) + int(g.get("pending") or 0)
            if not behind:
                break
            await asyncio.sleep(0.2)
    finally:
        await r.aclose()
    return time.monotonic() - t0


def reset_stats(ports: list[int]) -> None:
    for port in ports:
        c = redis.Redis(port=port)
        c.config_resetstat()
        c.close()


def read_stats(ports: list[int]) -> tuple[int, int]:
    """(commands, Redis CPU µs) since the last reset, over `ports`."""
    calls = usec = 0
    for port in ports:
        c = redis.Redis(port=port)
        for name, v in c.info("commandstats").items():
            if name in ("cmdstat_config", "cmdstat_info", "cmdstat_ping", "cmdstat_cluster"):
                continue  # this script's own and the cluster clients' topology reads
            calls += int(v["calls"])
            usec += int(v["usec"])
        c.close()
    return calls, usec


async def load(topo: Topology, n: int, evses: int) -> float:
    r = redisconn.data(topo.settings(), max_connections=64)
    store = OcpiStore(r)
    t0 = time.monotonic()
    for pid in ("TPC", "ZAP", "CHG", "STA"):
        await store.put("tariffs", Tariff.model_validate({
            "country_code": "IN", "party_id": pid, "id": "T1", "currency": "INR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": 18, "vat": 18,
                                                "step_size": 1}]}],
            "last_updated": "2025-01-01T00:00:00Z"}))
    catalog = CatalogStore(r, store)
    rnd = random.Random(42)
    locs = [make_location(i, evses, rnd) for i in range(n)]
    sem = asyncio.Semaphore(32)

    async def one(loc: Any) -> None:
        async with sem:
            await store.put_location(loc)
            await catalog.render("IN", loc.party_id, loc.id)

    await asyncio.gather(*(one(loc) for loc in locs))
    for s in shards.current().shards:  # the worker's consumer must not render again
        await r.xgroup_create(keys.events(s), "beckn-catalog", id="$", mkstream=True)
        await r.set(bk.catalog_version(s), CATALOG_VERSION)  # rendered in this layout
    creds = CredentialsStore(r)
    await creds.save_connection(Connection(
        id="bench-cpo", their_token="unused", versions_url="http://127.0.0.1:1/versions",
        roles=[{"role": "CPO", "country_code": "IN", "party_id": p}
               for p in ("TPC", "ZAP", "CHG", "STA")]), CPO_TOKEN)
    await r.aclose()
    return time.monotonic() - t0


def start_bridge(topo: Topology, tmp: Path, procs: int, port: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "BRIDGE_CONFIG": str(ROOT / "config" / "bridge.toml"),
           "BRIDGE_PORT": str(port), "BRIDGE_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "BRIDGE_REDIS_ALLOW_VOLATILE": "1", "BRIDGE_LOG_LEVEL": "warning",
           "BRIDGE_LOG_FORMAT": "json", "BRIDGE_ACCESS_LOG": "false",
           "BRIDGE_OCPI_RATE_LIMIT": "off", "BRIDGE_BECKN_RATE_LIMIT": "off",
           "BRIDGE_BECKN_SUBSCRIBER_ID": "bench-bpp",
           "BRIDGE_BECKN_PRIVATE_KEY": str(tmp / "bpp.key"),
           "BRIDGE_BECKN_STATIC_KEYS": str(tmp / "keys.json"), "BRIDGE_BECKN_REGISTRY_URL": "",
           "BRIDGE_WORKER_METRICS_PORT": "0", "BRIDGE_OCPI_SYNC_INTERVAL": "0", **topo.env()}
    out = []
    for i in range(procs):
        for what in ("serve", "worker"):
            args = [sys.executable, "-m", "bridge.cli", what] + (
                ["--reuse-port"] if what == "serve" else [])
            with open(tmp / f"{topo.kind}-{procs}-{what}{i}.log", "wb") as log:
                out.append(subprocess.Popen(args, env=env, cwd=ROOT, stderr=log,
                                            stdout=subprocess.DEVNULL))
    return out


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


async def wait_ready(port: int, seconds: float = 60) -> None:
    client = Client("127.0.0.1", port, 1)
    deadline = time.monotonic() + seconds
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = await reader.read(12)
            writer.close()
            if head[9:12] == b"200":
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("bridge serve did not come up")
        await asyncio.sleep(0.2)
    await client.close()
    await asyncio.sleep(2.0)  # the workers' consumers


async def ingest(port: int, n_locations: int, evses: int, seconds: float, concurrency: int
                 ) -> dict[str, Any]:
    client = Http("127.0.0.1", port, concurrency)
    auth = "Token " + base64.b64encode(CPO_TOKEN.encode()).decode()
    rnd = random.Random(3)
    lat: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds
    statuses = ["AVAILABLE", "CHARGING", "AVAILABLE", "OUTOFORDER"]

    async def loop(k: int) -> None:
        nonlocal errors
        i = 0
        while time.monotonic() < stop_at:
            i += 1
            loc = rnd.randrange(n_locations)
            pid = ["TPC", "ZAP", "CHG", "STA"][loc % 4]
            body = orjson.dumps({"status": statuses[(i + k) % 4], "last_updated":
                                 datetime.now(UTC).isoformat().replace("+00:00", "Z")})
            path = f"/ocpi/2.2.1/locations/IN/{pid}/L{loc:06d}/E{rnd.randrange(evses)}"
            t0 = time.monotonic()
            try:
                status, data = await client.request("PATCH", path, body, {
                    "Content-Type": "application/json", "Authorization": auth,
                    "X-Request-ID": f"r{k}-{i}", "OCPI-from-country-code": "IN",
                    "OCPI-from-party-id": pid, "OCPI-to-country-code": "IN",
                    "OCPI-to-party-id": "BKN"})
                if status != 200 or b'"status_code":1000' not in data:
                    errors += 1
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
            lat.append(time.monotonic() - t0)

    t0 = time.monotonic()
    await asyncio.gather(*(loop(k) for k in range(concurrency)))
    elapsed = time.monotonic() - t0
    await client.close()
    return {"pushes": len(lat), "errors": errors, "achieved_rps": round(len(lat) / elapsed, 1),
            "p50_ms": round(pct(lat, 0.5) * 1000, 1), "p99_ms": round(pct(lat, 0.99) * 1000, 1)}


async def journeys(kind: str, root: Path, procs: int, n: int) -> dict[str, Any]:
    topo = Topology(kind, root / f"{kind}-journeys-{procs}").start()
    (root / f"{kind}-stack-{procs}").mkdir(parents=True, exist_ok=True)
    try:
        async with Stack(root / f"{kind}-stack-{procs}", topo.env(), serves=procs,
                         workers=procs) as stack:
            ports = topo.primaries()
            rpids = topo.primary_pids()
            idle_calls, idle_usec, idle_cpu = await idle_rate(ports, rpids)
            reset_stats(ports)
            js = new_journeys(n)
            rcpu0 = redis_cpu(rpids)
            mem0 = used_memory(ports)
            bridge = {name: p.pid for name, p in stack.procs.items() if name != "mock"}
            bcpu0 = {name: _cpu_seconds(pid) for name, pid in bridge.items()}
            t0 = time.monotonic()
            results = await asyncio.gather(*(stack.journey(j, kwh=3.0) for j in js),
                                           return_exceptions=True)
            elapsed = time.monotonic() - t0
            rcpu = redis_cpu(rpids) - rcpu0 - idle_cpu * elapsed
            bcpu = {name: _cpu_seconds(pid) - bcpu0[name] for name, pid in bridge.items()}
            grown = used_memory(ports) - mem0
            calls, usec = read_stats(ports)
            calls -= int(idle_calls * elapsed)
            usec -= int(idle_usec * elapsed)
            ok = sum(1 for r in results if r is None)
            bad = await stack.bills([j for j in js if j.completed_at])
            return {"journeys": n, "completed": ok, "seconds": round(elapsed, 1),
                    "money_mismatches": len(bad), "doubled_callbacks": len(stack.doubled()),
                    "redis_commands_per_journey": round(calls / max(ok, 1)),
                    "redis_cpu_ms_per_journey": round(usec / 1000 / max(ok, 1), 2),
                    "redis_process_cpu_ms_per_journey": round(rcpu * 1000 / max(ok, 1), 1),
                    "serve_cpu_ms_per_journey": round(sum(
                        v for k, v in bcpu.items() if k.startswith("serve")) * 1000 / max(ok, 1)),
                    "worker_cpu_ms_per_journey": round(sum(
                        v for k, v in bcpu.items() if k.startswith("worker")) * 1000 / max(ok, 1)),
                    "redis_bytes_per_journey": round(grown / max(ok, 1)),
                    "idle_redis_commands_per_s": round(idle_calls)}
    finally:
        topo.stop()
        shards.configure(1, False)


async def arrangement(kind: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    topo = Topology(kind, root / kind).start()
    try:
        mem0 = used_memory(topo.primaries())
        loaded = await load(topo, args.locations, args.evses)
        out["load_seconds"] = round(loaded, 1)
        out["bytes_per_evse"] = round((used_memory(topo.primaries()) - mem0)
                                      / (args.locations * args.evses))
        out["shards"] = shards.current().count
        bpp_key = signing.generate_private_key()
        (root / "bpp.key").write_bytes(signing.private_key_pem(bpp_key))
        bap_key = signing.generate_private_key()
        (root / "keys.json").write_text(json.dumps([{
            "subscriber_id": "bench-bap", "unique_key_id": "k1",
            "signing_public_key": signing.public_key_b64(bap_key.public_key())}]))
        bap = Bap(bap_key, 10)
        bap.bpp_key = bpp_key.public_key()
        app = web.Application()
        app.router.add_post("/bap/on_discover", bap.on_discover)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        bport = free_port()
        await web.TCPSite(runner, "127.0.0.1", bport, backlog=2048).start()
        try:
            for procs in (1, 2):
                port = free_port()
                bridge = start_bridge(topo, root, procs, port)
                try:
                    await wait_ready(port)
                    pids = {f"p{k}": p.pid for k, p in enumerate(bridge)}  # serve, worker, ...
                    bench_discover.PIDS.clear()
                    bench_discover.PIDS.update(pids)
                    client = Client("127.0.0.1", port, 64)
                    rnd = random.Random(7)
                    await phase(client, bap, f"http://127.0.0.1:{bport}/bap", 30, 1, rnd)
                    ports = topo.primaries()
                    rpids = topo.primary_pids()
                    await drained(topo)  # nothing left of an earlier phase
                    idle_calls, idle_usec, idle_cpu = await idle_rate(ports, rpids)
                    reset_stats(ports)
                    rcpu0 = redis_cpu(rpids)
                    t0 = time.monotonic()
                    d = await phase(client, bap, f"http://127.0.0.1:{bport}/bap",
                                    args.discover_rate, args.seconds, rnd)
                    took = time.monotonic() - t0
                    rcpu = redis_cpu(rpids) - rcpu0 - idle_cpu * took
                    calls, usec = read_stats(ports)
                    calls -= int(idle_calls * took)
                    usec -= int(idle_usec * took)
                    cpu = d.pop("cpu_ms_per_request", {})
                    d["serve_cpu_ms_per_discover"] = round(sum(
                        v for k, v in cpu.items() if int(k[1:]) % 2 == 0), 2)
                    d["worker_cpu_ms_per_discover"] = round(sum(
                        v for k, v in cpu.items() if int(k[1:]) % 2 == 1), 2)
                    d["redis_commands_per_discover"] = round(calls / max(d["completed"], 1), 1)
                    d["redis_cpu_ms_per_discover"] = round(usec / 1000 / max(d["completed"], 1), 3)
                    d["redis_process_cpu_ms_per_discover"] = round(
                        rcpu * 1000 / max(d["completed"], 1), 3)
                    await client.close()
                    reset_stats(ports)
                    t0 = time.monotonic()
                    cpu0 = {k: _cpu_seconds(pid) for k, pid in pids.items()}
                    rcpu0 = redis_cpu(rpids)
                    i = await ingest(port, args.locations, args.evses, args.seconds,
                                     args.ingest_concurrency)
                    # a push's work ends when the workers have rendered its change
                    i["drain_seconds_after"] = round(await drained(topo), 1)
                    took = time.monotonic() - t0
                    i["end_to_end_pushes_per_s"] = round(i["pushes"] / took, 1)
                    spent = {k: _cpu_seconds(pid) - cpu0[k] for k, pid in pids.items()}
                    rcpu = redis_cpu(rpids) - rcpu0 - idle_cpu * took
                    n = max(i["pushes"], 1)
                    i["serve_cpu_ms_per_push"] = round(sum(
                        v for k, v in spent.items() if int(k[1:]) % 2 == 0) * 1000 / n, 3)
                    i["worker_cpu_ms_per_push"] = round(sum(
                        v for k, v in spent.items() if int(k[1:]) % 2 == 1) * 1000 / n, 3)
                    calls, usec = read_stats(ports)
                    calls -= int(idle_calls * took)
                    usec -= int(idle_usec * took)
                    i["redis_commands_per_push"] = round(calls / max(i["pushes"], 1), 1)
                    i["redis_cpu_ms_per_push"] = round(usec / 1000 / max(i["pushes"], 1), 3)
                    i["redis_process_cpu_ms_per_push"] = round(rcpu * 1000 / n, 3)
                    out[f"{procs}+{procs}"] = {"discover": d, "ingest": i,
                                               "idle_redis_commands_per_s": round(idle_calls),
                                               "idle_redis_process_cpu_pct": round(
                                                   idle_cpu * 100, 1)}
                    print(kind, f"{procs} serve + {procs} worker:", json.dumps(out[f"{procs}+{procs}"]),
                          flush=True)
                finally:
                    stop(bridge)
        finally:
            await runner.cleanup()
    finally:
        topo.stop()
        shards.configure(1, False)
    for procs in (1, 2):
        j = await journeys(kind, root, procs, args.journeys)
        out[f"{procs}+{procs}"]["journeys"] = j
        print(kind, f"{procs} serve + {procs} worker journeys:", json.dumps(j), flush=True)
    return out


def _machine() -> dict[str, Any]:
    return {"nproc": os.cpu_count(), "loadavg_at_start": os.getloadavg()[0],
            "python": sys.version.split()[0]}


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--locations", type=int, default=3000)
    ap.add_argument("--evses", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--discover-rate", type=float, default=150)
    ap.add_argument("--ingest-concurrency", type=int, default=32)
    ap.add_argument("--journeys", type=int, default=6)
    ap.add_argument("--only", choices=("single", "cluster"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results-scale.json"))
    args = ap.parse_args()
    results: dict[str, Any] = {"machine": _machine(), "settings": vars(args),
                               "date": datetime.now(UTC).strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory(prefix="obb-scale-") as tmp:
        for kind in ([args.only] if args.only else ["single", "cluster"]):
            results[kind] = await arrangement(kind, args, Path(tmp))
    results["machine"]["loadavg_at_end"] = os.getloadavg()[0]
    text = json.dumps(results, indent=2)
    print(text)
    Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
