"""Signed `on_*` callbacks to the BAP: an arq job each, retried with exponential
backoff while the request's ttl allows, then dead-lettered.

    enqueue_callback()  (serve or worker)
        HSET obb:beckn:cb:{id} {url, body, deadline, ...}
        RPUSH obb:beckn:txq:{bap}:{txn} id         per-transaction order
        arq job "beckn_callback"(id)              the durable driver
        LPUSH obb:beckn:cb:wake id                 the worker's fast lane

    attempt_once(id)  (arq job or fast lane; one at a time per id: a lock)
        not head of its transaction queue -> wait (predecessor still trying)
        POST {bap_uri}/on_{action}, signed; any 2xx is success, whatever the body
        failure: attempts+1, next try after backoff * 2^(attempts-1) if that is
        before the deadline and attempts < max, else dead letter:
        ZADD obb:beckn:dead, state=dead; `bridge callbacks replay ID` resends.

Why a fast lane: arq polls its queue every 0.5 s, which alone would break the
discover latency target; the worker also BLPOPs the wake list and makes the
first attempt at once. The arq job stays the single source of truth: it
finds the callback done (and returns), or retries it.

Retries happen while `request timestamp + ttl` is in the future (or
`beckn_callback_default_ttl` seconds when the request had no ttl).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
import structlog
from arq.connections import ArqRedis
from arq.worker import Retry

from bridge.beckn.models import Context, format_timestamp
from bridge.beckn.signing import Signer, load_private_key
from bridge.config import Settings
from bridge.store import beckn_keys

log = structlog.get_logger("bridge.beckn.callbacks")

JOB_NAME = "beckn_callback"
WAIT_DEFER = 0.1  # seconds between looks at a predecessor still being delivered
DONE_KEEP = 3600  # seconds a delivered callback's metadata is kept
DEAD_KEEP = 30 * 86400
_NO_RESPONSE = "no response"


def callback_action(action: str) -> str:
    """`discover` -> `on_discover` (also `rating` -> `on_rating`); `on_x` stays."""
    return action if action.startswith("on_") else f"on_{action}"


def callback_context(request: Context, action: str, settings: Settings, now: datetime,
                     message_id: str | None = None) -> Context:
    """The context of our answer to `request`: same transaction (and, for the answer
    to a request, the same message_id), our bpp_id/bpp_uri, a fresh timestamp."""
    data = request.model_dump(exclude_none=True)
    data.update(action=callback_action(action), bpp_id=settings.beckn_subscriber_id,
                bpp_uri=f"{settings.public_url}/beckn", timestamp=now,
                message_id=message_id or request.message_id)
    return Context.model_validate(data)


def _deadline(context: Context, settings: Settings, now: float) -> float:
    ttl = context.ttl_delta
    if ttl is None:
        return now + settings.beckn_callback_default_ttl
    return max(context.timestamp.timestamp() + ttl.total_seconds(), now + 1.0)


def callback_url(settings: Settings, context: Context) -> str:
    action = context.action
    if settings.beckn_mode == "adapter" and settings.beckn_adapter_url:
        return f"{settings.beckn_adapter_url.rstrip('/')}/{action}"
    return f"{context.bap_uri.rstrip('/')}/{action}"


def _arq(redis: aioredis.Redis) -> ArqRedis:
    return ArqRedis(connection_pool=redis.connection_pool)


async def enqueue_callback(redis: aioredis.Redis, settings: Settings, context: Context,
                           message: dict[str, Any] | None = None,
                           error: dict[str, Any] | None = None,
                           deadline: float | None = None) -> str:
    """Queue one signed callback; `context` is the callback's own context (use
    `callback_context`). Returns the callback id. Delivery order is the order of
    calls for the same (bap_id, transaction_id)."""
    from bridge.worker import QUEUE

    now = time.time()
    cb_id = uuid.uuid4().hex
    body: dict[str, Any] = {"context": context.wire()}
    if message is not None:
        body["message"] = message
    if error is not None:
        body["error"] = error
    record = {
        "id": cb_id, "url": callback_url(settings, context), "action": context.action,
        "bap_id": context.bap_id, "txn": context.transaction_id,
        "message_id": context.message_id, "body": orjson.dumps(body),
        "deadline": repr(deadline if deadline is not None else _deadline(context, settings, now)),
        "attempts": "0", "next_at": "0", "state": "pending", "created": repr(now), "replays": "0",
    }
    txq = beckn_keys.txn_queue(context.bap_id, context.transaction_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(beckn_keys.callback(cb_id), mapping=record)
        pipe.rpush(txq, cb_id)
        pipe.expire(txq, 7 * 86400)
        pipe.lpush(beckn_keys.WAKE, cb_id)
        await pipe.execute()
    await _arq(redis).enqueue_job(JOB_NAME, cb_id, _job_id=f"cb:{cb_id}:0", _queue_name=QUEUE)
    return cb_id


@dataclass
class CallbackDeps:
    settings: Settings
    redis: aioredis.Redis
    signer: Signer | None
    session: aiohttp.ClientSession

    async def close(self) -> None:
        await self.session.close()


def make_signer(settings: Settings) -> Signer | None:
    """Our signer, or None in adapter mode (the adapter signs)."""
    if settings.beckn_mode == "adapter":
        return None
    return Signer(settings.beckn_subscriber_id, settings.beckn_key_id,
                  load_private_key(settings.beckn_private_key), settings.beckn_signature_ttl)


def make_deps(settings: Settings, redis: aioredis.Redis) -> CallbackDeps:
    connector = aiohttp.TCPConnector(limit=256, limit_per_host=64)
    session = aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=settings.beckn_callback_timeout))
    return CallbackDeps(settings, redis, make_signer(settings), session)


class Outcome:
    DONE = "done"
    DEAD = "dead"
    RETRY = "retry"  # with a delay
    WAIT = "wait"  # someone else holds it, or a predecessor is still pending
    GONE = "gone"  # unknown id, or already done/dead


async def _post(deps: CallbackDeps, url: str, body: bytes) -> str | None:
    """POST one callback; None on any 2xx, else a short reason."""
    headers = {"Content-Type": "application/json"}
    if deps.signer is not None:
        headers["Authorization"] = deps.signer.header(body, time.time())
    try:
        async with deps.session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            if 200 <= resp.status < 300:
                return None
            return f"HTTP {resp.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return type(exc).__name__


async def attempt_once(deps: CallbackDeps, cb_id: str) -> tuple[str, float]:
    """One delivery attempt if it is this callback's turn. Returns (outcome, delay)."""
    redis, settings = deps.redis, deps.settings
    key = beckn_keys.callback(cb_id)
    rec = await redis.hgetall(key)
    if not rec or rec.get(b"state") != b"pending":
        return Outcome.GONE, 0.0
    now = time.time()
    next_at = float(rec[b"next_at"])
    if next_at > now:
        return Outcome.RETRY, next_at - now
    txq = beckn_keys.txn_queue(rec[b"bap_id"].decode(), rec[b"txn"].decode())
    head = await redis.lindex(txq, 0)
    if head is not None and head.decode() != cb_id:
        return Outcome.WAIT, WAIT_DEFER
    lock = beckn_keys.callback_lock(cb_id)
    if not await redis.set(lock, b"1", nx=True, px=int((settings.beckn_callback_timeout + 5) * 1000)):
        return Outcome.WAIT, WAIT_DEFER
    try:
        state = await redis.hget(key, "state")
        if state != b"pending":
            return Outcome.GONE, 0.0
        url = rec[b"url"].decode()
        failure = await _post(deps, url, rec[b"body"])
        attempts = int(rec[b"attempts"]) + 1
        now = time.time()
        if failure is None:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={"state": "done", "attempts": attempts,
                                        "delivered": repr(now)})
                pipe.hdel(key, "body")  # the payload is not needed any more
                pipe.expire(key, DONE_KEEP)
                pipe.lrem(txq, 1, cb_id)
                pipe.lindex(txq, 0)
                res = await pipe.execute()
            if res[-1] is not None:  # let the next one of this transaction go at once
                await redis.lpush(beckn_keys.WAKE, res[-1])
            log.info("beckn.callback.delivered", cb=cb_id, url=url, attempts=attempts)
            return Outcome.DONE, 0.0
        delay = settings.beckn_callback_backoff * (2 ** (attempts - 1))
        deadline = float(rec[b"deadline"])
        if attempts >= settings.beckn_callback_max_attempts or now + delay > deadline:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={"state": "dead", "attempts": attempts,
                                        "last_error": failure, "dead_at": repr(now)})
                pipe.expire(key, DEAD_KEEP)
                pipe.zadd(beckn_keys.DEAD, {cb_id: now})
                pipe.lrem(txq, 1, cb_id)
                pipe.lindex(txq, 0)
                res = await pipe.execute()
            if res[-1] is not None:
                await redis.lpush(beckn_keys.WAKE, res[-1])
            log.warning("beckn.callback.dead_letter", cb=cb_id, url=url, attempts=attempts,
                        error=failure)
            return Outcome.DEAD, 0.0
        await redis.hset(key, mapping={"attempts": attempts, "last_error": failure,
                                       "next_at": repr(now + delay)})
        log.info("beckn.callback.retry", cb=cb_id, url=url, attempts=attempts, error=failure,
                 delay=delay)
        return Outcome.RETRY, delay
    finally:
        await redis.delete(lock)


async def callback_job(ctx: dict[str, Any], cb_id: str) -> str:
    """arq job: deliver (or keep retrying) one callback."""
    deps: CallbackDeps = ctx["beckn_callbacks"]
    outcome, delay = await attempt_once(deps, cb_id)
    if outcome in (Outcome.RETRY, Outcome.WAIT):
        raise Retry(defer=max(delay, 0.01))
    return outcome


async def fast_lane(deps: CallbackDeps, stop: asyncio.Event | None = None,
                    concurrency: int = 64) -> None:
    """First attempts without arq's poll delay (see module docstring)."""
    sem = asyncio.Semaphore(concurrency)
    pending: set[asyncio.Task[Any]] = set()

    async def one(cb_id: str) -> None:
        try:
            await attempt_once(deps, cb_id)
        except Exception:  # the arq job will try again; never kill the lane
            log.exception("beckn.callback.fast_lane_error", cb=cb_id)
        finally:
            sem.release()

    while stop is None or not stop.is_set():
        item = await deps.redis.blpop([beckn_keys.WAKE], timeout=1)
        if item is None:
            continue
        await sem.acquire()
        task = asyncio.create_task(one(item[1].decode()))
        pending.add(task)
        task.add_done_callback(pending.discard)


# --- dead letters (CLI)


@dataclass(frozen=True)
class DeadLetter:
    id: str
    url: str
    action: str
    txn: str
    attempts: int
    last_error: str
    dead_at: datetime


async def dead_letters(redis: aioredis.Redis, limit: int = 100) -> list[DeadLetter]:
    ids = await redis.zrevrange(beckn_keys.DEAD, 0, limit - 1)
    out: list[DeadLetter] = []
    for raw in ids:
        cb_id = raw.decode()
        rec = await redis.hgetall(beckn_keys.callback(cb_id))
        if not rec:
            await redis.zrem(beckn_keys.DEAD, cb_id)
            continue
        out.append(DeadLetter(
            id=cb_id, url=rec[b"url"].decode(), action=rec[b"action"].decode(),
            txn=rec[b"txn"].decode(), attempts=int(rec[b"attempts"]),
            last_error=rec.get(b"last_error", b"").decode(),
            dead_at=datetime.fromtimestamp(float(rec.get(b"dead_at", b"0")), UTC)))
    return out


async def replay(redis: aioredis.Redis, settings: Settings, cb_id: str) -> bool:
    """Send a dead-lettered callback again, with a fresh retry window."""
    from bridge.worker import QUEUE

    key = beckn_keys.callback(cb_id)
    rec = await redis.hgetall(key)
    if not rec or rec.get(b"state") != b"dead" or b"body" not in rec:
        return False
    now = time.time()
    replays = int(rec.get(b"replays", b"0")) + 1
    txq = beckn_keys.txn_queue(rec[b"bap_id"].decode(), rec[b"txn"].decode())
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping={"state": "pending", "attempts": 0, "next_at": 0,
                                "replays": replays,
                                "deadline": repr(now + settings.beckn_callback_default_ttl)})
        pipe.persist(key)
        pipe.zrem(beckn_keys.DEAD, cb_id)
        pipe.rpush(txq, cb_id)
        pipe.lpush(beckn_keys.WAKE, cb_id)
        await pipe.execute()
    await _arq(redis).enqueue_job(JOB_NAME, cb_id, _job_id=f"cb:{cb_id}:{replays}",
                                  _queue_name=QUEUE)
    log.info("beckn.callback.replay", cb=cb_id, replays=replays,
             at=format_timestamp(datetime.now(UTC)))
    return True
