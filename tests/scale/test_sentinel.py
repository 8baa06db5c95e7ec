"""The bridge on a Sentinel-managed Redis (docs/scaling.md): data and queues on the
primary three sentinels name, found through them and followed through failovers, with
the WAIT barrier so that nothing the bridge acted on is lost when the primary dies.

Real processes on loopback: a primary, a replica, three `redis-server --sentinel`;
for the journeys also 2 `bridge serve` on one port (SO_REUSEPORT), 2 `bridge worker`
and the mock CPO."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bridge import redisconn
from bridge.config import Settings
from tests.scale.redis_topologies import SentinelSet, until, wait_replicas_online
from tests.scale.stack import Stack, new_journeys

# real Redis topologies on loopback: `make test-cluster` (docs/scaling.md#tests)
pytestmark = pytest.mark.cluster


def sentinel_settings(s: SentinelSet, **extra: object) -> Settings:
    return Settings(redis_sentinels=s.sentinels_setting, redis_sentinel_service=s.service,
                    redis_wait_replicas=1, redis_wait_timeout=1.0, **extra)  # type: ignore[arg-type]


async def _write(r: aioredis.Redis, key: str, seconds: float = 60) -> float:
    """SET `key`, tried again (as every caller of the bridge does) until it is stored
    and replicated; returns the seconds it took."""
    t0 = time.monotonic()
    while True:
        try:
            await r.set(key, "1")
            return time.monotonic() - t0
        except (aioredis.RedisError, OSError):
            assert time.monotonic() - t0 < seconds, f"{key}: no primary for {seconds} s"
            await asyncio.sleep(0.05)


async def test_writes_follow_the_primary_through_a_failover(sentinel_set: SentinelSet) -> None:
    r = redisconn.data(sentinel_settings(sentinel_set))
    old = sentinel_set.primary()
    try:
        for i in range(50):
            await _write(r, f"k{i}")
        sentinel_set.failover()  # the primary hands over to the replica
        waits = [await _write(r, f"k{i}") for i in range(50, 150)]
        new = sentinel_set.wait_new_primary(old.port)
        assert new is not old
        # every acknowledged write is on the new primary, and the old one follows it
        check = new.client()
        try:
            assert check.exists(*[f"k{i}" for i in range(150)]) == 150
        finally:
            check.close()
        until(lambda: old.role() == "slave", 30, "the old primary to follow the new one")
        print(f"sentinel failover: longest wait for a write {max(waits):.2f} s")
    finally:
        await r.aclose()


async def test_journeys_complete_when_the_primary_dies_mid_charge(
        sentinel_set: SentinelSet, tmp_path: Path) -> None:
    """kill -9 of the primary while four drivers charge, through 2 serve and 2 workers:
    every journey completes, every bill balances to the paisa, no callback is told twice,
    no charge is started twice; the time to recover is printed."""
    env = {"BRIDGE_REDIS_SENTINELS": sentinel_set.sentinels_setting,
           "BRIDGE_REDIS_SENTINEL_SERVICE": sentinel_set.service,
           "BRIDGE_REDIS_WAIT_REPLICAS": "1", "BRIDGE_REDIS_WAIT_TIMEOUT": "1"}
    journeys = new_journeys(4)
    async with Stack(tmp_path, env) as stack:
        tasks = [asyncio.create_task(stack.journey(j, kwh=3.0)) for j in journeys]
        deadline = time.monotonic() + 180
        while not all(j.active_at for j in journeys):  # everyone is charging
            failed = [j.error for j in journeys if j.error]
            assert not failed, failed
            assert time.monotonic() < deadline, [j.step for j in journeys]
            await asyncio.sleep(0.2)
        old = sentinel_set.primary()
        killed_at = time.monotonic()
        old.kill()
        new = sentinel_set.wait_new_primary(old.port)
        promoted_at = time.monotonic()
        # the machine comes back (a supervisor restarts it) as the new primary's replica
        old.start(replica_of=new.port)
        wait_replicas_online(new, 1)
        writable_in = await _write(stack.redis, "probe") + time.monotonic() - killed_at  # type: ignore[arg-type]
        done, pending = await asyncio.wait(tasks, timeout=300)
        for t in pending:
            t.cancel()
        errors = [j.error for j in journeys if j.error]
        assert not pending and not errors, (errors, [j.step for j in journeys])
        assert all(j.completed_at for j in journeys)
        assert await stack.bills(journeys) == []
        assert stack.doubled() == {}
        assert stack.bap.bad_signatures == 0
        state = await stack.mock_state()
        assert (state["sessions"], state["cdrs"]) == (4, 4), state  # one charge each
        # both serve processes took requests on the one port (SO_REUSEPORT)
        assert await stack.each_serve_answers()
        print(f"sentinel kill -9: new primary after {promoted_at - killed_at:.1f} s, "
              f"writable (replica back) after {writable_in:.1f} s, journeys done "
              f"{max(j.completed_at or 0 for j in journeys) - killed_at:.1f} s after the kill; "
              f"re-deliveries {stack.redeliveries()}")
