"""Failover on a real Redis Cluster, with 2 `bridge serve` and 2 `bridge worker` and the
mock CPO (docs/scaling.md, "Failover and what it keeps"):

- the primary that holds an active order's slot is killed (kill -9) while four drivers
  charge: its replica takes over, the killed node comes back as a replica;
- the queues' primary (a Sentinel set beside the Cluster) is killed while the first
  settlements run.

Every journey completes, every bill balances to the paisa, no callback is told twice,
the CPO sees one session and one CDR per driver; the time to recover is printed."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bridge.store import shards
from bridge.store.orders import order_key
from tests.conftest import redis_binary
from tests.scale.redis_topologies import Cluster, Node, SentinelSet, until, wait_replicas_online
from tests.scale.stack import Journey, Stack, new_journeys

# real Redis topologies on loopback: `make test-cluster` (docs/scaling.md#tests)
pytestmark = pytest.mark.cluster


async def _charging(journeys: list[Journey], seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not all(j.active_at for j in journeys):
        failed = [j.error for j in journeys if j.error]
        assert not failed, failed
        assert time.monotonic() < deadline, [j.step for j in journeys]
        await asyncio.sleep(0.2)


async def _writable(redis: aioredis.Redis, key: str, seconds: float = 90) -> float:
    t0 = time.monotonic()
    while True:
        try:
            await redis.set(key, "1")
            return time.monotonic() - t0
        except (aioredis.RedisError, OSError):
            assert time.monotonic() - t0 < seconds, f"{key} not writable for {seconds} s"
            await asyncio.sleep(0.1)


_LOUD = re.compile(r'"level": ?"(warning|error|critical)"|Traceback')


def _trail(stack: Stack, txns: list[str], lines: int = 40) -> list[str]:
    """The processes' log lines about unfinished transactions, for a failure's message
    (pytest keeps few temporary directories on a machine running many suites)."""
    out = []
    for name in stack.procs:
        out += [f"{name}: {line[:400]}" for line in stack.log(name).splitlines()
                if any(t in line for t in txns) or _LOUD.search(line)]
    return out[-lines:]


async def _all_done(stack: Stack, journeys: list[Journey], tasks: list[asyncio.Task[None]]
                    ) -> None:
    _, pending = await asyncio.wait(tasks, timeout=300)
    for t in pending:
        t.cancel()
    errors = [j.error for j in journeys if j.error]
    if pending or errors:  # printed whole (an assertion's message is cut short)
        print("\n".join(_trail(stack, [j.txn for j in journeys if not j.completed_at], 400)))
    assert not pending and not errors, (errors, [j.step for j in journeys])
    assert await stack.bills(journeys) == []
    assert stack.doubled() == {}
    assert stack.bap.bad_signatures == 0
    state = await stack.mock_state()
    assert (state["sessions"], state["cdrs"]) == (len(journeys), len(journeys)), state


async def test_the_primary_of_an_active_orders_slot_dies_mid_charge(
        cluster: Cluster, queue_redis: Node, tmp_path: Path) -> None:
    env = {"BRIDGE_REDIS_CLUSTER_NODES": cluster.nodes_setting,
           "BRIDGE_QUEUE_REDIS_URL": f"redis://127.0.0.1:{queue_redis.port}/0",
           "BRIDGE_REDIS_WAIT_REPLICAS": "1", "BRIDGE_REDIS_WAIT_TIMEOUT": "1"}
    journeys = new_journeys(4)
    try:
        async with Stack(tmp_path, env) as stack:
            assert stack.redis is not None
            tasks = [asyncio.create_task(stack.journey(j, kwh=3.0)) for j in journeys]
            await _charging(journeys)
            layout = shards.current()
            shard = layout.shard_of_key(order_key(journeys[0].txn))
            assert shard is not None
            slot = layout.slot(shard)
            old = cluster.primary_of_slot(slot)
            killed_at = time.monotonic()
            old.kill()
            new = cluster.wait_new_primary(slot, old)
            promoted_in = time.monotonic() - killed_at
            old.start()  # the machine comes back: it rejoins as the new primary's replica
            until(lambda: old.role() == "slave", 60, "the old primary to rejoin as a replica")
            wait_replicas_online(new, 1)
            writable_in = await _writable(stack.redis, layout.key(shard, "probe")) \
                + time.monotonic() - killed_at
            await _all_done(stack, journeys, tasks)
            done_in = max(j.completed_at or 0 for j in journeys) - killed_at
            print(f"cluster kill -9 of shard {shard}'s primary: replica promoted after "
                  f"{promoted_in:.1f} s, the slot writable (replica back) after "
                  f"{writable_in:.1f} s, journeys done {done_in:.1f} s after the kill; "
                  f"re-deliveries {stack.redeliveries()}")
    finally:
        shards.configure(1, False)


async def test_the_queues_primary_dies_mid_settlement(cluster: Cluster, tmp_path: Path) -> None:
    queues = SentinelSet(redis_binary(), tmp_path / "queues", service="obb-queue").start()
    env = {"BRIDGE_REDIS_CLUSTER_NODES": cluster.nodes_setting,
           "BRIDGE_QUEUE_REDIS_SENTINELS": queues.sentinels_setting,
           "BRIDGE_QUEUE_REDIS_SENTINEL_SERVICE": "obb-queue",
           "BRIDGE_QUEUE_REDIS_WAIT_REPLICAS": "1", "BRIDGE_REDIS_WAIT_REPLICAS": "1"}
    journeys = new_journeys(4)
    try:
        async with Stack(tmp_path, env) as stack:
            tasks = [asyncio.create_task(stack.journey(j, kwh=2.0 + i))
                     for i, j in enumerate(journeys)]
            deadline = time.monotonic() + 240
            while not any(j.completed_at for j in journeys):  # the first settlement is done
                assert not [j.error for j in journeys if j.error]
                assert time.monotonic() < deadline, [j.step for j in journeys]
                await asyncio.sleep(0.1)
            assert not all(j.completed_at for j in journeys)  # others are still to settle
            old = queues.primary()
            killed_at = time.monotonic()
            old.kill()
            new = queues.wait_new_primary(old.port)
            promoted_in = time.monotonic() - killed_at
            old.start(replica_of=new.port)
            wait_replicas_online(new, 1)
            await _all_done(stack, journeys, tasks)
            done_in = max(j.completed_at or 0 for j in journeys) - killed_at
            print(f"queue primary kill -9 mid-settlement: new primary after {promoted_in:.1f} s,"
                  f" every journey done {done_in:.1f} s after the kill; "
                  f"re-deliveries {stack.redeliveries()}")
    finally:
        queues.stop()
        shards.configure(1, False)
