"""Capacity model (docs/scaling.md): how many Redis primaries and bridge processes a
network needs, from the per-operation costs bench/scale.py measured.

    .venv/bin/python bench/capacity.py [--results bench/results-scale.json]

The measured inputs (from the results' "cluster" arrangement, 2 serve + 2 workers):
redis-server process CPU per OCPI push, per discover and per journey (summed over every
primary and the queues' Redis), serve and worker CPU per push, discover and journey,
Redis memory per EVSE (the catalog and the OCPI objects) and per journey. The traffic
assumptions are arguments, printed with the result; every figure follows from them by
the arithmetic below, nothing else. Peak = the busiest hour's average rate
(`--peak-factor` times the day's average)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def costs(results: dict[str, Any], kind: str = "cluster", procs: str = "2+2") -> dict[str, float]:
    r = results[kind]
    run = r[procs]
    d, i, j = run["discover"], run["ingest"], run["journeys"]
    return {
        "redis_ms_push": i["redis_process_cpu_ms_per_push"],
        "redis_ms_discover": d["redis_process_cpu_ms_per_discover"],
        "redis_ms_journey": j["redis_process_cpu_ms_per_journey"],
        "serve_ms_push": i["serve_cpu_ms_per_push"],
        "worker_ms_push": i["worker_cpu_ms_per_push"],
        "serve_ms_discover": d["serve_cpu_ms_per_discover"],
        "worker_ms_discover": d["worker_cpu_ms_per_discover"],
        "serve_ms_journey": j["serve_cpu_ms_per_journey"],
        "worker_ms_journey": j["worker_cpu_ms_per_journey"],
        "bytes_evse": r["bytes_per_evse"],
        "bytes_journey": j["redis_bytes_per_journey"],
    }


def model(c: dict[str, float], evses: int, sessions_per_day: float, a: argparse.Namespace
          ) -> dict[str, Any]:
    day = 86_400
    journeys = sessions_per_day * a.beckn_share / day * a.peak_factor
    # a journey's own pushes (its Session, meter values, CDR) are in its measured cost;
    # the other sessions' pushes and the status changes are counted here
    pushes = (sessions_per_day * (1 - a.beckn_share) * a.pushes_per_session
              + evses * a.status_changes_per_evse) / day * a.peak_factor
    discovers = journeys * a.discovers_per_journey
    redis_cpu = (pushes * c["redis_ms_push"] + discovers * c["redis_ms_discover"]
                 + journeys * c["redis_ms_journey"]) / 1000
    serve_cpu = (pushes * c["serve_ms_push"] + discovers * c["serve_ms_discover"]
                 + journeys * c["serve_ms_journey"]) / 1000
    worker_cpu = (pushes * c["worker_ms_push"] + discovers * c["worker_ms_discover"]
                  + journeys * c["worker_ms_journey"]) / 1000
    memory_gb = (evses * c["bytes_evse"]
                 + sessions_per_day * a.beckn_share * a.retention_days * c["bytes_journey"]) / 1e9
    by_cpu = math.ceil(redis_cpu / a.redis_core_budget)
    by_memory = math.ceil(memory_gb / a.memory_per_primary_gb)
    primaries = max(1, by_cpu, by_memory)
    return {"evses": evses, "sessions_per_day": sessions_per_day,
            "peak_per_s": {"ocpi_pushes": round(pushes), "discovers": round(discovers),
                           "journeys": round(journeys, 1)},
            "redis_cores": round(redis_cpu, 2), "redis_memory_gb": round(memory_gb, 1),
            "redis_primaries": primaries,
            "redis_primaries_bound_by": "cpu" if by_cpu >= by_memory else "memory",
            "serve_processes": max(1, math.ceil(serve_cpu / a.process_core_budget)),
            "worker_processes": max(1, math.ceil(worker_cpu / a.process_core_budget)),
            "serve_cores": round(serve_cpu, 2), "worker_cores": round(worker_cpu, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=str(ROOT / "bench" / "results-scale.json"))
    ap.add_argument("--pushes-per-session", type=float, default=12,
                    help="OCPI pushes a charge causes: 2 EVSE statuses, the session PUT, "
                         "~8 session PATCHes (every 5 min of a 40-min charge), the CDR")
    ap.add_argument("--status-changes-per-evse", type=float, default=4,
                    help="EVSE status PATCHes a day outside charges (faults, reservations)")
    ap.add_argument("--discovers-per-journey", type=float, default=10)
    ap.add_argument("--beckn-share", type=float, default=0.25,
                    help="share of the sessions that are Beckn journeys through the bridge "
                         "(the others: the CPO's own app, pushed to the bridge over OCPI)")
    ap.add_argument("--peak-factor", type=float, default=3.0)
    ap.add_argument("--retention-days", type=float, default=0,
                    help="days a finished order's keys stay in Redis (0: not modelled; the "
                         "measured growth per journey includes the bounded change streams "
                         "and is an upper bound)")
    ap.add_argument("--redis-core-budget", type=float, default=0.5,
                    help="share of its core a Redis primary may use at peak")
    ap.add_argument("--memory-per-primary-gb", type=float, default=16)
    ap.add_argument("--process-core-budget", type=float, default=0.7)
    a = ap.parse_args()
    results = json.loads(Path(a.results).read_text())
    c = costs(results)
    out = {"measured": c, "date_measured": results.get("date"),
           "assumptions": {k: v for k, v in vars(a).items() if k != "results"},
           "networks": [model(c, 100_000, 200_000, a), model(c, 1_000_000, 2_000_000, a)]}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
