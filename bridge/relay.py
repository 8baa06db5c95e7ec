"""The job relay: jobs reach arq's queues when those are not on the data's Redis
(docs/scaling.md, "Queues beside a Cluster").

arq needs one primary (its enqueue is WATCH + MULTI over three keys), so beside a Redis
Cluster the queues are on a single or Sentinel-managed primary of their own. A job
written with a state change (an order step's START_SESSION, a settlement, a timer) can
then not be written in the same atomic step as that change; it is written there as an
entry of the shard's relay stream instead (`Effects.arq_job`, `journey.queue.enqueue`):

    obb:{tag}:jobs    STREAM  job (id), payload (arq's serialised job), score (ms: when
                              it is due), ttl (ms: the job key's life)

Every worker relays every shard's stream in the consumer group `relay`: it writes each
job into the queue as arq's `enqueue_job` does (unless a job or a result of that id
exists: arq's uniqueness rule, one Lua call on the queue's Redis), then acknowledges
and deletes the entry. A worker killed between the two leaves the entry pending; another
worker claims it after `CLAIM_IDLE_MS` and enqueues it again, which arq's uniqueness
rule makes harmless while the job or its result lives (and every job is safe to run
again: docs/operations.md).
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import redis.asyncio as aioredis
import structlog
from arq.constants import job_key_prefix, result_key_prefix
from redis.exceptions import ResponseError

from bridge.store import shards

log = structlog.get_logger("bridge.relay")

GROUP = "relay"
CLAIM_IDLE_MS = 30_000
BATCH = 100

# KEYS job, result, queue; ARGV ttl ms, payload, score, job id -> 1 enqueued, 0 exists
_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
"""


def fields(job_id: str, payload: bytes, score_ms: int, ttl_ms: int) -> dict[str, Any]:
    """A relay stream entry (what `Effects.arq_job` writes in relay mode)."""
    return {"job": job_id, "payload": payload, "score": score_ms, "ttl": ttl_ms}


async def relay_shard(data: aioredis.Redis, queue: aioredis.Redis, shard: int,
                      consumer: str | None = None, stop: asyncio.Event | None = None,
                      block_ms: int = 1000) -> None:
    """Relay one shard's stream until cancelled (or `stop`)."""
    from bridge.worker import QUEUE

    consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
    stream = shards.current().relay_stream(shard)
    enqueue = queue.register_script(_ENQUEUE)
    try:
        await data.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    pending_first = True
    claim_from = "0-0"
    while stop is None or not stop.is_set():
        if pending_first:  # what this consumer read and never acknowledged (a restart)
            resp: Any = await data.xreadgroup(GROUP, consumer, {stream: "0"}, count=BATCH)
            entries = resp[0][1] if resp else []
            pending_first = bool(entries)
        else:
            resp = await data.xreadgroup(GROUP, consumer, {stream: ">"}, count=BATCH,
                                         block=block_ms)
            entries = resp[0][1] if resp else []
        if not entries:
            claimed = await data.xautoclaim(stream, GROUP, consumer, CLAIM_IDLE_MS,
                                            start_id=claim_from, count=BATCH)
            nxt = claimed[0]
            claim_from = nxt.decode() if isinstance(nxt, bytes) else str(nxt)
            entries = [e for e in claimed[1] if e and e[1]]
            if not entries:
                continue
        for _entry_id, f in entries:
            job_id = f[b"job"].decode()
            await enqueue(keys=[job_key_prefix + job_id, result_key_prefix + job_id, QUEUE],
                          args=[int(f[b"ttl"]), f[b"payload"], int(f[b"score"]), job_id])
        ids = [e[0] for e in entries]
        await data.xack(stream, GROUP, *ids)
        await data.xdel(stream, *ids)


async def relay_all(data: aioredis.Redis, queue: aioredis.Redis,
                    stop: asyncio.Event | None = None) -> None:
    """`relay_shard` for every shard, each started again after any error."""
    from bridge.worker import keep_running

    def one(shard: int) -> Any:
        return keep_running(f"relay-{shard}", lambda: relay_shard(data, queue, shard, stop=stop))

    log.info("relay.started", shards=shards.current().count)
    await asyncio.gather(*(one(s) for s in shards.current().shards))
