"""Benchmark: price 20-period CDR-like sessions with a 3-element tariff.

The tariff has a peak window (ENERGY 0.40/kWh 18:00-21:00), a default ENERGY
0.25/kWh and a PARKING_TIME 2/h element; sessions of 20 periods of 15 minutes
start at different times of day so that some cross the peak boundaries and
are split. Prints evaluations per CPU-second and µs per evaluation (one core).

    .venv/bin/python bench/pricing.py [--seconds 5] [--rounds 5] [--baseline REV]

Rates are evaluations per second of this process's CPU time (one core), so a
machine shared with other work does not skew them much; the best and the median
round are printed. `--baseline REV` also loads the engine (`bridge/mapping/tariff.py`) as it was at the
git revision REV and times both in the same run, rounds interleaved (so load from
other processes hits both alike); it checks that both give the same totals.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import importlib.util
import subprocess
from types import ModuleType
from typing import Any

from bridge.mapping import tariff as engine
from bridge.ocpi.models import ChargingPeriod, Tariff

ROOT = Path(__file__).resolve().parents[1]

TARIFF = Tariff.model_validate(
    {
        "country_code": "IN", "party_id": "TPC", "id": "bench", "currency": "INR",
        "elements": [
            {"price_components": [{"type": "ENERGY", "price": "20", "vat": "18", "step_size": 1}],
             "restrictions": {"start_time": "18:00", "end_time": "21:00"}},
            {"price_components": [{"type": "ENERGY", "price": "16", "vat": "18", "step_size": 1}]},
            {"price_components": [{"type": "PARKING_TIME", "price": "60", "vat": "18", "step_size": 60}]},
        ],
        "last_updated": "2025-01-01T00:00:00Z",
    }
)


def sessions(count: int) -> list[tuple[list[ChargingPeriod], datetime, datetime]]:
    out = []
    base = datetime(2025, 7, 30, 8, 0, tzinfo=UTC)  # 13:30 in Asia/Kolkata
    for k in range(count):
        start = base + timedelta(minutes=37 * k)
        periods = []
        for i in range(20):
            t = start + timedelta(minutes=15 * i)
            dims = (
                [{"type": "ENERGY", "volume": Decimal("1.8") + Decimal(i) / 100},
                 {"type": "TIME", "volume": Decimal("0.25")}]
                if i < 17
                else [{"type": "PARKING_TIME", "volume": Decimal("0.25")}]
            )
            periods.append(ChargingPeriod.model_validate({"start_date_time": t, "dimensions": dims}))
        out.append((periods, start, start + timedelta(minutes=300)))
    return out


def baseline_engine(rev: str) -> ModuleType:
    """bridge/mapping/tariff.py at git revision `rev`, as a module of its own."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:bridge/mapping/tariff.py"],
                            capture_output=True, text=True, check=True).stdout
    name = "bench_tariff_baseline"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:bridge/mapping/tariff.py", "exec"), module.__dict__)
    return module


def one_round(mod: Any, compiled: Any, work: list[Any], seconds: float) -> tuple[float, int, Decimal]:
    evals = 0
    total = Decimal(0)
    t0 = time.perf_counter()
    c0 = time.process_time()
    deadline = t0 + seconds
    price = mod.price
    while True:
        for periods, start, end in work:
            # read the rounded total, as every caller does
            result = price(compiled, periods, start=start, end=end, time_zone="Asia/Kolkata")
            total += result.total_cost.incl_vat
        evals += len(work)
        now = time.perf_counter()
        if now >= deadline or evals >= 10_000_000:
            break
    # CPU time of this process: the rate on one core, whatever else the machine runs
    # (wall time on a shared machine measures the neighbours).
    return evals / (time.process_time() - c0), evals, total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="how long to run in all (bounded loop)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (best and median are printed)")
    ap.add_argument("--baseline", metavar="REV", default=None,
                    help="also time the engine at this git revision, in the same run")
    args = ap.parse_args()
    work = sessions(48)
    engines: list[tuple[str, Any]] = [("engine", engine)]
    if args.baseline:
        engines.insert(0, (f"baseline {args.baseline}", baseline_engine(args.baseline)))
    compiled = {label: mod.compile_tariff(TARIFF) for label, mod in engines}
    sums = {}
    for label, mod in engines:  # warm-up and sanity: every engine gives the same totals
        sums[label] = [mod.price(compiled[label], periods, start=start, end=end, time_zone="Asia/Kolkata")
                       .total_cost.incl_vat for periods, start, end in work]
    if len({tuple(v) for v in sums.values()}) != 1:
        print("engines disagree on the totals", file=sys.stderr)
        return 1
    # Several rounds: the machine may be shared, so report the best and the median round,
    # the engines' rounds interleaved.
    rounds = max(1, args.rounds)
    per_round = args.seconds / rounds / len(engines)
    rates: dict[str, list[float]] = {label: [] for label, _ in engines}
    counts = {label: 0 for label, _ in engines}
    for _ in range(rounds):
        for label, mod in engines:
            rate, evals, _total = one_round(mod, compiled[label], work, per_round)
            rates[label].append(rate)
            counts[label] += evals
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"python {platform.python_version()} on {platform.machine()}, cpus={os.cpu_count()}, "
          f"load average {load}")
    for label, _ in engines:
        r = sorted(rates[label])
        best, median = r[-1], r[len(r) // 2]
        print(f"{label}: {counts[label]} evaluations of 20-period sessions in {rounds} rounds of "
              f"{per_round:.1f} s")
        print(f"  best   {best:,.0f} evaluations/s, {1e6 / best:.1f} µs/evaluation")
        print(f"  median {median:,.0f} evaluations/s, {1e6 / median:.1f} µs/evaluation")
    if len(engines) == 2:
        base, new = (sorted(rates[label]) for label, _ in engines)
        ratios = sorted(n / b for n, b in zip(rates[engines[1][0]], rates[engines[0][0]], strict=True))
        mid = len(new) // 2
        print(f"engine / baseline: best {new[-1] / base[-1]:.2f}x, median {new[mid] / base[mid]:.2f}x,"
              f" median of paired rounds {ratios[len(ratios) // 2]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
