"""OCPI ingestion on a real Redis Cluster (3 primaries, 3 replicas), through 2 `bridge
serve` on one port and 2 `bridge worker`, the queues on their own Redis
(docs/scaling.md): the mock CPO registers and pushes its network; every object is stored
in its shard (the object, its index entries and its change event in one slot), the
objects are spread over the three primaries, and the workers' catalog consumers, reading
every shard's stream, render every listed location."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bridge.mapping.catalog import listed
from bridge.ocpi.models import Location
from bridge.store import keys, shards
from bridge.store.catalog import CatalogStore
from bridge.store.ocpi_store import OcpiStore
from tests.scale.redis_topologies import Cluster, Node
from tests.scale.stack import Stack

# real Redis topologies on loopback: `make test-cluster` (docs/scaling.md#tests)
pytestmark = pytest.mark.cluster


async def test_a_cpo_network_on_a_cluster(cluster: Cluster, queue_redis: Node,
                                          tmp_path: Path) -> None:
    env = {"BRIDGE_REDIS_CLUSTER_NODES": cluster.nodes_setting,
           "BRIDGE_QUEUE_REDIS_URL": f"redis://127.0.0.1:{queue_redis.port}/0",
           "BRIDGE_REDIS_WAIT_REPLICAS": "1"}
    try:
        async with Stack(tmp_path, env, generate=60) as stack:
            redis = stack.redis
            assert redis is not None
            layout = shards.current()
            assert layout.tagged and layout.count == 12
            state = await stack.mock_state()
            refs: list[str] = []
            deadline = time.monotonic() + 60
            while True:  # the push is answered before its last objects are read back
                refs = [m.decode() for s in layout.shards
                        for m in await redis.zrange(keys.module_index("locations", s), 0, -1)]
                if len(refs) >= state["locations"] or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            assert len(refs) == state["locations"] > 60
            tariffs = sum([await redis.zcard(keys.module_index("tariffs", s))
                           for s in layout.shards])
            assert tariffs == state["tariffs"]
            # each object in its shard, the shards on every primary
            ports = set()
            for ref in refs:
                cc, pid, lid = ref.split(":", 2)
                shard = keys.shard_of(cc, pid, lid)
                assert await redis.zscore(keys.module_index("locations", shard), ref)
                ports.add(cluster.primary_of_slot(layout.slot(shard)).port)
            assert len(ports) == 3
            # every listed location rendered by the workers' consumers
            store = OcpiStore(redis)
            want = set()
            for ref in refs:
                cc, pid, lid = ref.split(":", 2)
                raw = await store.get_location(cc, pid, lid)
                assert raw is not None
                if listed(Location.model_validate(raw)):
                    want.add(ref)
            catalog = CatalogStore(redis)
            deadline = time.monotonic() + 60
            while set(await catalog.all_refs(0, 100_000)) != want:  # every shard's index
                assert time.monotonic() < deadline, "catalog not rendered"
                await asyncio.sleep(0.5)
            near, _ = await catalog.near(77.59, 12.97, 50_000, 10)
            assert near and all(ref in want for ref, _ in near)
            # both serve processes answer on the one port (SO_REUSEPORT)
            assert await stack.each_serve_answers()
    finally:
        shards.configure(1, False)
