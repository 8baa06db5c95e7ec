"""`bridge sync` reads each SENDER list once per CPO platform, whatever the number of its
parties; shows its progress; and the worker schedules it (arq cron) except for the
parties that push reliably."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from arq.connections import ArqRedis

from bridge.ocpi.deps import OcpiDeps
from bridge.ocpi.sync import sync
from bridge.store.credentials import CredentialsStore
from bridge.store.ocpi_store import OcpiStore
from bridge.worker import QUEUE, build_worker, parse_parties, periodic_sync, sync_schedule
from tests.ocpi.conftest import Bridge, Ocpi, location, tariff
from tests.ocpi.cpo_double import CpoDouble


def deps_of(bridge: Bridge) -> OcpiDeps:
    return OcpiDeps(settings=bridge.settings, store=OcpiStore(bridge.redis),
                    creds=CredentialsStore(bridge.redis))


async def test_one_fetch_per_list_for_a_platform_of_two_parties(bridge: Bridge, cpo_double: CpoDouble,
                                                                cpo: Ocpi) -> None:
    cpo_double.lists["locations"] = [location(f"T{i}") for i in range(3)] + [
        location(f"Z{i}") | {"party_id": "ZEO"} for i in range(2)]
    cpo_double.lists["tariffs"] = [tariff("T1"), tariff("T2") | {"party_id": "ZEO"}]
    seen: list[tuple[str, int, int | None]] = []
    deps = deps_of(bridge)
    try:
        reports = await sync(deps, datetime(2026, 11, 25, 11, tzinfo=UTC), None,
                             ("locations", "tariffs"),
                             progress=lambda m, n, total: seen.append((m, n, total)))
    finally:
        await deps.close()
    by = {(r.party, r.module): r for r in reports}
    assert (by[("IN-TPC", "locations")].written, by[("IN-ZEO", "locations")].written) == (3, 2)
    assert (by[("IN-TPC", "tariffs")].written, by[("IN-ZEO", "tariffs")].written) == (1, 1)
    first_pages = [p for m, p, _ in cpo_double.requests
                   if m == "GET" and p.rstrip("/") in ("/ocpi/2.2.1/locations", "/ocpi/2.2.1/tariffs")
                   and "offset" not in p]
    list_gets = [p for m, p, _ in cpo_double.requests if m == "GET" and "/locations" in p]
    # pages of 2: 5 locations are 3 pages, read once (not once per party: 6)
    assert len(list_gets) == 3, list_gets
    assert first_pages
    assert [n for m, n, _ in seen if m == "locations"] == [1, 2, 3, 4, 5]
    assert all(total == 5 for m, _, total in seen if m == "locations")


async def test_date_from_is_the_oldest_party_mark(bridge: Bridge, cpo_double: CpoDouble,
                                                  cpo: Ocpi) -> None:
    cpo_double.lists["locations"] = [location("T1")]
    await bridge.redis.set("obb:sync:IN:TPC:locations", "2026-11-25T10:00:00Z")
    await bridge.redis.set("obb:sync:IN:ZEO:locations", "2026-11-24T09:00:00Z")
    deps = deps_of(bridge)
    try:
        await sync(deps, datetime(2026, 11, 25, 12, tzinfo=UTC), None, ("locations",))
    finally:
        await deps.close()
    asked = [p for m, p, _ in cpo_double.requests if "/locations" in p][-1]
    assert "2026-11-24T09" in asked.replace("%3A", ":")
    marks = await bridge.redis.mget("obb:sync:IN:TPC:locations", "obb:sync:IN:ZEO:locations")
    assert marks == [b"2026-11-25T12:00:00Z"] * 2


def test_progress_lines_without_a_terminal() -> None:
    from bridge.commands.core import SyncProgress

    out = io.StringIO()
    p = SyncProgress(out, every=0)
    for n in range(1, 4):
        p("locations", n, 3)
    p("tariffs", 1, None)
    p.close()
    assert out.getvalue().splitlines() == ["sync locations: 1/3", "sync locations: 2/3",
                                           "sync locations: 3/3", "sync tariffs: 1"]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal() -> None:
    from bridge.commands.core import SyncProgress

    out = _Tty()
    p = SyncProgress(out)
    for n in range(1, 6):
        p("locations", n, 5)
    p.close()
    assert "sync locations" in out.getvalue() and "5/5" in out.getvalue()


@pytest.mark.parametrize(("minutes", "fields"), [
    (15, {"minute": {0, 15, 30, 45}}),
    (60, {"hour": set(range(24)), "minute": {0}}),
    (360, {"hour": {0, 6, 12, 18}, "minute": {0}}),
    (1, {"minute": set(range(60))}),
])
def test_sync_schedule(minutes: int, fields: dict[str, Any]) -> None:
    assert sync_schedule(minutes) == fields


def test_parse_parties() -> None:
    assert parse_parties(" in-tpc, IN-ZEO ,,x") == {("IN", "TPC"), ("IN", "ZEO")}


async def test_periodic_sync_queues_a_job_per_party_except_skipped(bridge: Bridge, cpo: Ocpi) -> None:
    settings = bridge.settings.replace(ocpi_sync_skip="IN-ZEO")
    deps = deps_of(bridge)
    try:
        ctx = {"settings": settings, "ocpi": deps, "redis_app": bridge.redis}
        assert await periodic_sync(ctx) == 1
        assert await periodic_sync(ctx) == 0  # the same run is not queued twice
    finally:
        await deps.close()
    arq = ArqRedis(connection_pool=bridge.redis.connection_pool)
    jobs = await arq.queued_jobs(queue_name=QUEUE)
    assert [(j.function, j.args) for j in jobs] == [("sync", ("IN-TPC",))]


def test_worker_schedules_the_sync_cron_unless_off(bridge: Bridge) -> None:
    on = build_worker(bridge.settings.replace(ocpi_sync_interval=30), burst=True)
    off = build_worker(bridge.settings.replace(ocpi_sync_interval=0), burst=True)
    assert [c.name for c in on.cron_jobs] == ["periodic_sync"]
    assert off.cron_jobs == []
