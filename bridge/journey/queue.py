"""Queueing the journey's worker jobs (OCPI commands, timers, settlement) on arq.

Every outbound call is a job with a timeout and retries (DESIGN principle 6);
timers are deferred jobs in Redis, never in memory, so any worker runs them.
A `job_id` makes a job unique: enqueueing the same settlement twice runs it once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from arq.connections import ArqRedis


async def enqueue(redis: aioredis.Redis, name: str, *args: Any, job_id: str | None = None,
                  defer_until: datetime | None = None) -> None:
    from bridge.worker import QUEUE

    arq = ArqRedis(connection_pool=redis.connection_pool)
    await arq.enqueue_job(name, *args, _job_id=job_id, _queue_name=QUEUE,
                          _defer_until=defer_until)
