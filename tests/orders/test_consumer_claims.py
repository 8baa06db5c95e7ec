"""The journey consumer takes over what a dead worker read and never acknowledged."""

from __future__ import annotations

import asyncio

from bridge.config import Settings
from bridge.journey import events
from bridge.journey.common import JourneyDeps
from bridge.store.keys import EVENTS
from tests.conftest import ROOT


async def test_entries_of_a_dead_consumer_are_claimed(redis_client, redis_url, monkeypatch) -> None:
    seen: list[dict[str, str]] = []

    async def record(deps, fields, now):
        seen.append(fields)
        return "seen"

    monkeypatch.setattr(events, "handle_event", record)
    await redis_client.xgroup_create(EVENTS, events.GROUP, id="$", mkstream=True)
    await redis_client.xadd(EVENTS, {"module": "cdrs", "op": "put", "id": "C1"})
    # a worker reads the entry, then dies before acknowledging it
    await redis_client.xreadgroup(events.GROUP, "dead-worker", {EVENTS: ">"}, count=10)
    settings = Settings(redis_url=redis_url,
                        journey_pricing_policy=str(ROOT / "config" / "pricing.toml"))
    deps = JourneyDeps.build(settings, redis_client)
    stop = asyncio.Event()
    task = asyncio.create_task(events.consume(deps, "new-worker", stop, block_ms=50,
                                              claim_idle_ms=0))
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert [f["id"] for f in seen] == ["C1"]
    pending = await redis_client.xpending(EVENTS, events.GROUP)
    assert pending["pending"] == 0


async def test_they_are_claimed_while_changes_keep_coming(redis_client, redis_url,
                                                         monkeypatch) -> None:
    """Found by the chaos suite: the dead worker's entries were taken over only when the
    stream fell quiet. With a CPO's meter PATCHes arriving all the time they waited: a
    Session's ACTIVE handled late, the charge not stopped at its target. They are taken
    over every half claim_idle_ms now, whatever else arrives."""
    seen: list[str] = []

    async def record(deps, fields, now):
        seen.append(fields["id"])
        return "seen"

    monkeypatch.setattr(events, "handle_event", record)
    await redis_client.xgroup_create(EVENTS, events.GROUP, id="$", mkstream=True)
    await redis_client.xadd(EVENTS, {"module": "sessions", "op": "put", "id": "ACTIVE-1"})
    await redis_client.xreadgroup(events.GROUP, "dead-worker", {EVENTS: ">"}, count=10)
    settings = Settings(redis_url=redis_url,
                        journey_pricing_policy=str(ROOT / "config" / "pricing.toml"))
    deps = JourneyDeps.build(settings, redis_client)
    stop = asyncio.Event()
    task = asyncio.create_task(events.consume(deps, "new-worker", stop, block_ms=50,
                                              claim_idle_ms=300))
    try:
        for i in range(600):  # 3 s of changes, one every 5 ms
            await redis_client.xadd(EVENTS, {"module": "sessions", "op": "patch", "id": f"P{i}"})
            if "ACTIVE-1" in seen:
                break
            await asyncio.sleep(0.005)
        assert "ACTIVE-1" in seen, f"not taken over in 3 s ({len(seen)} others handled)"
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
