"""Journeys on a real Redis Cluster (3 primaries, 3 replicas) with 2 `bridge serve` and
2 `bridge worker`, the queues on their own Redis (docs/scaling.md): every order step is
one script in its transaction's slot with its callbacks, messages and jobs; jobs reach
arq through the relay, callbacks' safety net is the shard's due set. Four walk-in
journeys complete, every bill balances to the paisa, no callback is told twice, the CPO
sees one session and one CDR per driver."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bridge.store import shards
from bridge.store.orders import order_key
from tests.scale.redis_topologies import Cluster, Node
from tests.scale.stack import Stack, new_journeys

# real Redis topologies on loopback: `make test-cluster` (docs/scaling.md#tests)
pytestmark = pytest.mark.cluster


async def test_journeys_on_a_cluster(cluster: Cluster, queue_redis: Node,
                                     tmp_path: Path) -> None:
    env = {"BRIDGE_REDIS_CLUSTER_NODES": cluster.nodes_setting,
           "BRIDGE_QUEUE_REDIS_URL": f"redis://127.0.0.1:{queue_redis.port}/0",
           "BRIDGE_REDIS_WAIT_REPLICAS": "1"}
    journeys = new_journeys(4)
    try:
        async with Stack(tmp_path, env) as stack:
            tasks = [asyncio.create_task(stack.journey(j, kwh=3.0)) for j in journeys]
            done, pending = await asyncio.wait(tasks, timeout=300)
            for t in pending:
                t.cancel()
            errors = [j.error for j in journeys if j.error]
            assert not pending and not errors, (errors, [j.step for j in journeys])
            assert await stack.bills(journeys) == []
            assert stack.doubled() == {}
            assert stack.bap.bad_signatures == 0
            state = await stack.mock_state()
            assert (state["sessions"], state["cdrs"]) == (4, 4), state
            # the orders are spread over the shards (and so over the primaries)
            layout = shards.current()
            assert len({layout.shard_of_key(order_key(j.txn)) for j in journeys}) > 1
            assert stack.redeliveries() == 0
            started = time.monotonic()
            assert started  # (the journeys' own timings are in the BAP's records)
    finally:
        shards.configure(1, False)
