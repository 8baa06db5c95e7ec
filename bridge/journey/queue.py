"""Queueing the journey's worker jobs (OCPI commands, timers, settlement) on arq.

Every outbound call is a job with a timeout and retries (DESIGN principle 6);
timers are deferred jobs in Redis, never in memory, so any worker runs them.
A `job_id` makes a job unique: enqueueing the same settlement twice runs it once.
`job_effect` queues a job in the same atomic step as an order's change.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from redis.exceptions import WatchError

from bridge import redisconn, relay
from bridge.beckn import intake
from bridge.store import shards
from bridge.store.beckn_keys import txn_shard
from bridge.store.effects import RELAY_MAXLEN, Effects


async def enqueue(redis: aioredis.Redis, name: str, *args: Any, job_id: str | None = None,
                  defer_until: datetime | None = None) -> None:
    from bridge.worker import QUEUE

    taken = intake.pending()
    if shards.current().relay:  # the queues are elsewhere: through the relay
        await _relay(redis, name, args, job_id or uuid.uuid4().hex, defer_until, taken)
        return
    if taken is not None:
        # The job is the Beckn request's queued work (e.g. update start-charging): its
        # duplicate-check record goes in the same MULTI (bridge/beckn/intake.py).
        await _enqueue_with_record(redis, QUEUE, name, args, job_id or uuid.uuid4().hex,
                                   defer_until)
        return
    arq = redisconn.arq_on(redis)
    await arq.enqueue_job(name, *args, _job_id=job_id, _queue_name=QUEUE,
                          _defer_until=defer_until)


async def _enqueue_with_record(redis: aioredis.Redis, queue: str, name: str,
                               args: tuple[Any, ...], job_id: str,
                               defer_until: datetime | None) -> None:
    """arq's enqueue_job (unique by job id: WATCH, then MULTI), with the request's record
    in the MULTI. An existing job of that id is left as it is; the record is written."""
    job_key = job_key_prefix + job_id
    while True:
        async with redisconn.transaction(redis, job_key) as pipe:
            await pipe.watch(job_key)
            exists = await pipe.exists(job_key, result_key_prefix + job_id)
            now_ms = int(time.time() * 1000)
            score = int(defer_until.timestamp() * 1000) if defer_until else now_ms
            pipe.multi()
            if not exists:
                pipe.psetex(job_key, max(score - now_ms, 0) + _ARQ_EXPIRES_MS,
                            serialize_job(name, args, {}, None, now_ms))
                pipe.zadd(queue, {job_id: score})
            taken = intake.pending()
            if taken is not None:
                intake.take(pipe, taken.bap_id, taken.action, taken.message_id)
            try:
                await pipe.execute()
                return
            except WatchError:  # the job appeared meanwhile: the record still goes in
                if taken is not None:
                    taken.written = False
                continue


_ARQ_EXPIRES_MS = 86_400_000  # arq's expires_extra_ms default


async def _relay(redis: aioredis.Redis, name: str, args: tuple[Any, ...], job_id: str,
                 defer_until: datetime | None, taken: intake.Intake | None) -> None:
    """`enqueue` when the queues are not on the data's Redis (bridge/relay.py): an entry of
    the relay stream (with the request's record, in its transaction's shard, one MULTI)."""
    now_ms = int(time.time() * 1000)
    score = max(int(defer_until.timestamp() * 1000), now_ms) if defer_until else now_ms
    entry = relay.fields(job_id, serialize_job(name, args, {}, None, now_ms), score,
                         score - now_ms + _ARQ_EXPIRES_MS)
    layout = shards.current()
    if taken is None:
        await redis.xadd(layout.relay_stream(layout.of(job_id)), entry,
                         maxlen=RELAY_MAXLEN, approximate=True)
        return
    async with redisconn.transaction(redis, taken.key) as pipe:
        pipe.xadd(layout.relay_stream(txn_shard(taken.txn)), entry, maxlen=RELAY_MAXLEN,
                  approximate=True)
        intake.take(pipe, taken.bap_id, taken.action, taken.message_id)
        await pipe.execute()


def job_effect(fx: Effects, name: str, *args: Any, job_id: str,
               defer_until: datetime | None = None) -> Effects:
    """The same job as `enqueue`, as a write of an order's change (the outbox): queued in
    the same atomic step, or not at all; skipped, as arq does, if the id is taken."""
    from bridge.worker import QUEUE

    now_ms = int(time.time() * 1000)
    score = max(int(defer_until.timestamp() * 1000), now_ms) if defer_until else now_ms
    payload = serialize_job(name, args, {}, None, now_ms)
    fx.arq_job(QUEUE, job_id, payload, score, score - now_ms + _ARQ_EXPIRES_MS)
    taken = intake.pending()  # the request this job is for: its record goes with it
    if taken is not None:
        intake.take(fx, taken.bap_id, taken.action, taken.message_id)
    return fx
