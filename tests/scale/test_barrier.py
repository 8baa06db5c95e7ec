"""The WAIT barrier (bridge/redisconn.py): with `redis_wait_replicas` = n every write
command, script and pipeline returns only once n replicas have it, and a write the
replicas did not acknowledge in time is an error (NotReplicated), never a silent
success. Real primary and replica processes on loopback."""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge import redisconn
from bridge.config import Settings
from tests.scale.redis_topologies import Node

# real Redis topologies on loopback: `make test-cluster` (docs/scaling.md#tests)
pytestmark = pytest.mark.cluster

_SCRIPT = "redis.call('HSET', KEYS[1], 'v', ARGV[1]); redis.call('XADD', KEYS[2], '*', 'v', ARGV[1]); return 1"


def settings(primary: Node, replicas: int, timeout: float = 2.0) -> Settings:
    return Settings(redis_url=f"redis://127.0.0.1:{primary.port}/0",
                    redis_wait_replicas=replicas, redis_wait_timeout=timeout)


async def test_every_kind_of_write_is_on_the_replica_when_it_returns(
        replicated: tuple[Node, Node]) -> None:
    primary, replica = replicated
    r = redisconn.data(settings(primary, 1))
    seen = replica.client()
    try:
        for i in range(50):  # the replica has each write the moment the call returns
            await r.set(f"k{i}", i)
            assert seen.get(f"k{i}") == str(i).encode()
        script = r.register_script(_SCRIPT)  # EVALSHA; NOSCRIPT first, then loaded
        for i in range(20):
            await script(keys=["h", "s"], args=[i])
            assert seen.hget("h", "v") == str(i).encode()
        assert seen.xlen("s") == 20
        async with r.pipeline(transaction=True) as pipe:  # MULTI/EXEC
            pipe.hset("m", "a", 1).rpush("l", "x").zadd("z", {"m": 1})
            await pipe.execute()
        assert (seen.hget("m", "a"), seen.llen("l"), seen.zscore("z", "m")) == (b"1", 1, 1.0)
        async with r.pipeline(transaction=False) as pipe:
            pipe.set("p1", 1).set("p2", 2)
            await pipe.execute()
        assert seen.mget("p1", "p2") == [b"1", b"2"]
        async with r.pipeline(transaction=True) as pipe:  # WATCH, read, MULTI
            await pipe.watch("w")
            old = await pipe.get("w")
            pipe.multi()
            pipe.set("w", int(old or 0) + 1)
            await pipe.execute()
        assert seen.get("w") == b"1"
        arq = redisconn.arq_on(r)  # arq's writes too (a job is an effect)
        await arq.enqueue_job("noop", _job_id="j1")
        assert seen.zscore("obb:queue", "j1") is not None
    finally:
        seen.close()
        await r.aclose()


async def test_a_write_no_replica_acknowledges_is_an_error(replicated: tuple[Node, Node]) -> None:
    primary, replica = replicated
    barrier = redisconn.data(settings(primary, 1, timeout=0.3))
    plain = redisconn.data(settings(primary, 0))
    replica.pause()
    try:
        t0 = time.monotonic()
        with pytest.raises(redisconn.NotReplicated):
            await barrier.set("a", 1)
        assert time.monotonic() - t0 < 2  # within the timeout, not hanging
        with pytest.raises(redisconn.NotReplicated):
            async with barrier.pipeline(transaction=True) as pipe:
                pipe.set("b", 1)
                await pipe.execute()
        with pytest.raises(redisconn.NotReplicated):
            await barrier.register_script(_SCRIPT)(keys=["h", "s"], args=[1])
        with pytest.raises(redisconn.NotReplicated):  # arq's enqueue (WATCH + MULTI)
            await redisconn.arq_on(barrier).enqueue_job("noop", _job_id="j2")
        assert await barrier.get("a") == b"1"  # a read needs no replica
        await plain.set("c", 1)  # without the barrier the same write "succeeds"
    finally:
        replica.resume()
    deadline = time.monotonic() + 20
    while True:  # the replica is back: once it has caught up, writes go through again
        try:
            await barrier.set("a", 2)
            break
        except redisconn.NotReplicated:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    await barrier.aclose()
    await plain.aclose()


async def test_more_replicas_than_there_are_is_refused(replicated: tuple[Node, Node]) -> None:
    primary, _ = replicated
    r = redisconn.data(settings(primary, 2, timeout=1.0))
    try:
        with pytest.raises(redisconn.NotReplicated, match="of 2 replicas"):
            await r.set("a", 1)
    finally:
        await r.aclose()
