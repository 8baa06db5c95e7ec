"""Benchmark: Redis time of discover's two costliest Lua scripts, this tree against a
git revision, in the same Redis, rounds interleaved.

    .venv/bin/python bench/discover_scripts.py [--baseline main] [--rounds 5] [--calls 1000]

`bench/discover.py --profile` shows where Redis's time goes per discover (by
command and script): the worker's claim of the on_discover callback, which joins
the page's pre-rendered items and offers (`beckn.callbacks._CLAIM`), and the
nearby search (`store.catalog._NEAR`). This times each on a synthetic index
shaped like discover.py's (20,000 locations over 65 x 65 km, the connector
type's geo index holding 92 % of them, and a rare type's holding 5 %; a page of
20 items of about 1.1 KB with offers of about 1 KB), checks that both versions
return the same answers, and prints Redis's own time per call (INFO
commandstats, µs) for each version and the ratio per round. Its own
redis-server, no persistence, 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.beckn import callbacks  # noqa: E402
from bridge.store import catalog  # noqa: E402

CENTER = (77.5946, 12.9716)
SPAN = 0.6


def script_at(rev: str, path: str, name: str) -> str:
    """The Lua source `name = \"\"\"...\"\"\"` in `path` at git revision `rev`."""
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], capture_output=True,
                          text=True, check=True).stdout
    start = text.index(f'{name} = """') + len(f'{name} = """')
    return text[start:text.index('"""', start)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_time(r: redis.Redis, command: str = "cmdstat_evalsha") -> float:
    return float(r.info("commandstats")[command]["usec"])


def load_index(r: redis.Redis) -> list[tuple[float, float]]:
    rnd = random.Random(1)
    facet = b"[" + b",".join([b'["IN*TPC*E0000010","E0","1","CCS2","DC",60.0,"Available",'
                              b'"T1","t:T1"]'] * 5) + b"]"
    pipe = r.pipeline(transaction=False)
    for i in range(20_000):
        lon = CENTER[0] + rnd.uniform(-SPAN / 2, SPAN / 2)
        lat = CENTER[1] + rnd.uniform(-SPAN / 2, SPAN / 2)
        ref = f"IN:TPC:L{i:06d}"
        if rnd.random() < 0.92:
            pipe.geoadd("bench:geo:common", (lon, lat, ref))
        if rnd.random() < 0.05:
            pipe.geoadd("bench:geo:rare", (lon, lat, ref))
        pipe.hset("bench:cat:" + ref, "f", facet)
    pipe.execute()
    return [(CENTER[0] + rnd.uniform(-0.25, 0.25), CENTER[1] + rnd.uniform(-0.25, 0.25))
            for _ in range(2000)]


def page(r: redis.Redis) -> tuple[bytes, list[str]]:
    """A callback record's recipe for a page of 20 items and their offers."""
    item = orjson.dumps({"beckn:id": "x", "beckn:descriptor": {"long": "a" * 1100}})
    offer = orjson.dumps({"beckn:id": "\x00item\x00", "beckn:items": ["\x00item\x00"],
                          "beckn:price": {"note": "b" * 900}})
    for i in range(20):
        r.hset(f"bench:cat:P{i}", mapping={f"i:item{i}": item, "t:T1": offer})
    holes = [[[f"bench:cat:P{i}", f"i:item{i}", f"item{i}"] for i in range(20)],
             [[f"bench:cat:P{i}", "t:T1", f"item{i}"] for i in range(20)]]
    recipe = orjson.dumps({"s": ['{"message":{"catalogs":[{"beckn:items":[',
                                 '],"beckn:offers":[', ']}]}}'], "h": holes})
    return recipe, ["0", "1000", "bench:txq:", "cb1", callbacks._OFFER_ITEM_JSON]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="main", metavar="REV")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=1000, help="calls per script per round")
    args = ap.parse_args()
    redis_bin = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "redis-server"
    tmp = tempfile.mkdtemp()
    port = free_port()
    proc = subprocess.Popen([redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
    try:
        r = redis.Redis(port=port)
        for _ in range(50):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        points = load_index(r)
        recipe, claim_args = page(r)
        versions = {
            args.baseline: (script_at(args.baseline, "bridge/store/catalog.py", "_NEAR"),
                            script_at(args.baseline, "bridge/beckn/callbacks.py", "_CLAIM")),
            "this tree": (catalog._NEAR, callbacks._CLAIM),
        }
        near = {v: r.register_script(src[0]) for v, src in versions.items()}
        claim = {v: r.register_script(src[1]) for v, src in versions.items()}

        def fresh_record() -> None:
            r.delete("bench:cb", "bench:lock", "bench:txq:b:t")
            r.hset("bench:cb", mapping={"state": "pending", "next_at": "0", "bap_id": "b",
                                        "txn": "t", "url": "u", "attempts": "0", "deadline": "0",
                                        "recipe": recipe, "created": "0"})

        # the same answers, or the comparison means nothing
        for key in ("bench:geo:common", "bench:geo:rare"):
            for lon, lat in points[:300]:
                got = {v: s(keys=[key], args=[repr(lon), repr(lat), "5000", 20, 0, "bench:cat:"])
                       for v, s in near.items()}
                if len({orjson.dumps([x.decode() if isinstance(x, bytes) else x for x in g])
                        for g in got.values()}) != 1:
                    print(f"nearby search: the versions disagree at {lon}, {lat}", file=sys.stderr)
                    return 1
        bodies = set()
        for s in claim.values():
            fresh_record()
            bodies.add(s(keys=["bench:cb", "bench:lock"], args=claim_args)[2])
        if len(bodies) != 1:
            print("claim: the versions join different bodies", file=sys.stderr)
            return 1

        def time_near(script: Any, key: str) -> float:
            t0 = redis_time(r)
            for lon, lat in points[:args.calls]:
                script(keys=[key], args=[repr(lon), repr(lat), "5000", 20, 0, "bench:cat:"])
            return (redis_time(r) - t0) / args.calls

        def time_claim(script: Any) -> float:
            total = 0.0
            for _ in range(args.calls // 4):
                fresh_record()
                t0 = redis_time(r)
                script(keys=["bench:cb", "bench:lock"], args=claim_args)
                total += redis_time(r) - t0
            return total / (args.calls // 4)

        cases: dict[str, Any] = {
            "nearby search, connector type at 92 % of locations (discover.py's CCS2)":
                lambda s: time_near(near[s], "bench:geo:common"),
            "nearby search, a rare connector type (5 %)": lambda s: time_near(near[s], "bench:geo:rare"),
            f"claim of an on_discover (a page of 20, {len(bodies.pop())} B)":
                lambda s: time_claim(claim[s]),
        }
        print(f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}; "
              f"Redis µs per call (its own clock), {args.rounds} rounds interleaved")
        for name, run in cases.items():
            per: dict[str, list[float]] = {v: [] for v in versions}
            for _ in range(args.rounds):
                for v in versions:
                    per[v].append(run(v))
            ratios = sorted(b / a for a, b in zip(*per.values(), strict=True))
            meds = {v: sorted(x)[len(x) // 2] for v, x in per.items()}
            print(f"{name}:\n  " + ", ".join(f"{v} {m:.1f} µs" for v, m in meds.items())
                  + f"; this tree / {args.baseline}: median of rounds {ratios[len(ratios) // 2]:.2f}x"
                  f" (range {ratios[0]:.2f}-{ratios[-1]:.2f})")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
