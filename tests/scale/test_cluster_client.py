"""The data on a real Redis Cluster (3 primaries, 3 replicas) through the factory:
commands and scripts routed by slot, transactions on the node of a slot, the WAIT
barrier on every node, the shard layout (docs/scaling.md)."""

from __future__ import annotations

import pytest
from redis.exceptions import RedisClusterException

from bridge import redisconn
from bridge.config import Settings
from bridge.store import shards
from tests.scale.redis_topologies import Cluster, Node

# real Redis topologies on loopback: `make test-cluster` (docs/scaling.md#tests)
pytestmark = pytest.mark.cluster


def cluster_settings(c: Cluster, q: Node, **extra: object) -> Settings:
    return Settings(redis_cluster_nodes=c.nodes_setting,
                    queue_redis_url=f"redis://127.0.0.1:{q.port}/0", **extra)  # type: ignore[arg-type]


async def test_commands_scripts_and_transactions_on_a_cluster(cluster: Cluster,
                                                              queue_redis: Node) -> None:
    r = redisconn.data(cluster_settings(cluster, queue_redis, redis_wait_replicas=1))
    layout = shards.current()
    try:
        assert layout.tagged and layout.count == redisconn.CLUSTER_SHARDS
        # each shard's keys on the primary its slot range belongs to: 4 shards on each
        per_node: dict[int, int] = {}
        for k in layout.shards:
            node = cluster.primary_of_slot(layout.slot(k))
            per_node[node.port] = per_node.get(node.port, 0) + 1
        assert sorted(per_node.values()) == [4, 4, 4]
        for k in layout.shards:  # the barrier: the shard's replica has a write once it returns
            await r.set(layout.key(k, "probe"), k)
            assert cluster.read_on_replica(layout.slot(k), layout.key(k, "probe")) == str(k).encode()
        script = r.register_script("redis.call('SET', KEYS[1], ARGV[1]); "
                                   "redis.call('SET', KEYS[2], ARGV[1]); return 1")
        a, b = layout.key(3, "a"), layout.key(3, "b")
        assert await script(keys=[a, b], args=["x"]) == 1
        with pytest.raises(RedisClusterException):  # two slots in one script: refused
            await script(keys=[layout.key(1, "a"), layout.key(2, "a")], args=["x"])
        async with redisconn.transaction(r, a) as pipe:
            await pipe.watch(a)
            assert await pipe.get(a) == b"x"
            pipe.multi()
            pipe.set(a, "y").set(b, "y")
            await pipe.execute()
        assert await r.mget(a, b) == [b"y", b"y"]
    finally:
        await r.aclose()
        shards.configure(1, False)



async def test_the_client_finds_the_cluster_again_after_losing_every_start_up_node(
        cluster: Cluster, queue_redis: Node) -> None:
    """redis-py drops a start-up node on each connection error; after a failover's burst
    of errors none was left and the workers never reached the cluster again. The
    configured nodes are put back before each discovery."""
    r = redisconn.data(cluster_settings(cluster, queue_redis, redis_wait_replicas=1))
    layout = shards.current()
    try:
        await r.set(layout.key(0, "seed"), "1")
        r.nodes_manager.startup_nodes.clear()  # what the errors of a failover leave
        r._initialize = True  # as after a connection error: learn the slots again
        await r.set(layout.key(1, "seed"), "2")
        assert await r.get(layout.key(1, "seed")) == b"2"
    finally:
        await r.aclose()
        shards.configure(1, False)
