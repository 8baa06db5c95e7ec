"""Does the Redis we write to keep what we acknowledged? (issue 12, finding 9)

Redis is the bridge's only state (DESIGN principle 3): orders, payments, CPO
credentials, the job queue. A Redis that keeps its data only in memory loses
all of it on a restart, and then even the CPOs' pushes are refused (their
tokens are gone). So `bridge serve` and `bridge worker` check at start that
Redis persists acknowledged writes and refuse to start otherwise, with a
one-line reason, unless told `--allow-volatile-redis` (tests, benchmarks).

Persistent means one of:
- the append-only file is on (INFO persistence `aof_enabled:1`); with
  `appendfsync always` nothing acknowledged is lost, with `everysec` (the usual
  choice) a power loss or kernel crash can lose up to about one second of
  writes (a Redis process crash loses nothing: the data is in the OS's page
  cache);
- or writes need replicas (`min-replicas-to-write` >= 1, seen in INFO
  replication as `min_slaves_good_slaves`), for a managed Redis without AOF.

docs/operations.md gives the settings for zero loss of acknowledged writes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
import structlog

from bridge.config import Settings

log = structlog.get_logger("bridge.durability")


async def _config(redis: aioredis.Redis, name: str) -> str | None:
    try:
        got: dict[str, Any] = await redis.config_get(name)
    except Exception:  # CONFIG may be renamed or forbidden (managed Redis): not needed
        return None
    value = got.get(name)
    return str(value) if value is not None else None


async def persistence(redis: aioredis.Redis) -> tuple[bool, str]:
    """(persists acknowledged writes?, how, in a few words). On a Cluster, every primary
    must."""
    from redis.asyncio.cluster import RedisCluster

    if isinstance(redis, RedisCluster):
        if redis._initialize:
            await redis.initialize()
        found = []
        for node in redis.get_primaries():
            async with aioredis.Redis(host=node.host, port=node.port,
                                      password=redis.connection_kwargs.get("password")) as one:
                ok, how = await persistence(one)
            if not ok:
                return False, f"primary {node.name}: {how}"
            found.append(how)
        return True, f"{len(found)} primaries: " + "; ".join(sorted(set(found)))
    info = await redis.info("persistence")
    if int(info.get("aof_enabled", 0)) == 1:
        fsync = await _config(redis, "appendfsync")
        return True, f"AOF on (appendfsync {fsync or 'unknown'})"
    repl = await redis.info("replication")
    if "min_slaves_good_slaves" in repl:
        return True, (f"writes need replicas (min-replicas-to-write; "
                      f"{repl.get('min_slaves_good_slaves')} in sync)")
    return False, "no AOF (appendonly no) and no min-replicas-to-write"


async def wait_for_redis(redis: aioredis.Redis, what: str) -> None:
    """Ping until Redis answers, with capped backoff (a process started before Redis)."""
    delay = 0.2
    while True:
        try:
            await redis.ping()
            return
        except (OSError, aioredis.RedisError) as exc:
            log.warning("bridge.redis_unreachable", process=what, error=repr(exc)[:200],
                        retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def check(settings: Settings, what: str) -> str | None:
    """None when the bridge may start; else the one-line reason it must not."""
    from bridge import redisconn

    redis = redisconn.data(settings)
    try:
        await wait_for_redis(redis, what)
        ok, how = await persistence(redis)
        layout_problem = await check_layout(redis)
    finally:
        await redis.aclose()
    where = redisconn.describe(settings)
    if layout_problem:
        return f"refusing to start: {layout_problem}"
    if ok:
        log.info("bridge.redis_durability", process=what, redis=where, persistence=how)
        return None
    if settings.redis_allow_volatile:
        log.warning("bridge.REDIS_IS_VOLATILE", process=what, redis=where, persistence=how,
                    note="--allow-volatile-redis: a Redis restart loses every order, "
                         "payment and credential")
        return None
    return (f"refusing to start: Redis at {where} does not persist acknowledged writes "
            f"({how}); a restart would lose every order, payment and CPO credential. Turn on "
            f"AOF (appendonly yes) or pass --allow-volatile-redis (tests only); "
            f"see docs/operations.md")


LAYOUT_KEY = "obb:meta:layout"


async def check_layout(redis: aioredis.Redis) -> str | None:
    """The shard layout is fixed for the life of the data (docs/scaling.md): the first
    process to start records it, every later one must have the same."""
    from bridge.store import shards

    layout = shards.current()
    mine = f"{layout.count} shards, {'tagged' if layout.tagged else 'untagged'}"
    await redis.set(LAYOUT_KEY, mine, nx=True)
    stored = await redis.get(LAYOUT_KEY)
    if stored is not None and stored.decode() != mine:
        return (f"the data in Redis was written with {stored.decode()} keys, these settings "
                f"make {mine} (redis_shards, redis_cluster_nodes): the layout cannot change "
                f"under existing data; see docs/scaling.md")
    return None
