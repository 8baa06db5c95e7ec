"""Signed `on_*` callbacks to the BAP: an arq job each, retried with exponential
backoff while the request's ttl allows, then dead-lettered.

    enqueue_callback()  (serve or worker; one MULTI round trip)
        HSET obb:beckn:cb:{id} {url, body, deadline, ...}
        RPUSH obb:beckn:txq:{bap}:{txn} id         per-transaction order
        arq job "beckn_callback"(id), deferred     the durable safety net
        RPUSH obb:beckn:cb:wake id                 the worker's fast lane (FIFO)

    attempt_once(id)  (fast lane or arq job; one at a time per id: a lock)
        claim (one Lua call): pending, due, head of its transaction queue, lock
        POST {bap_uri}/on_{action}, signed; any 2xx is success, whatever the body
        finish (one Lua call):
          success: state=done, body dropped, next of the transaction woken
                   (LPUSH: it goes first), the arq job removed
          failure: attempts+1, next try after min(backoff * 2^(attempts-1), max
                   backoff), the last one at the deadline (`retry_delay`; the arq job
                   is moved to that time), after it dead letter: ZADD obb:beckn:dead,
                   state=dead,
                   the arq job removed; `bridge callbacks replay ID` resends.

Why a fast lane: arq polls its queue every 0.5 s, which alone would break the
discover latency target; the worker pops the wake list and makes the first
attempt at once. The arq job is the durable driver of everything else: it is
written with the callback, deferred by `safety_net_delay` (callback timeout +
5 s), so it only runs if the fast lane has not delivered by then (worker down,
or far behind) or when a failed attempt moved it to the retry time. A
delivered callback's job is deleted unrun, so the happy path costs arq
nothing (no job run, no result stored).

Retries happen while `request timestamp + ttl` is in the future (or
`beckn_callback_default_ttl` seconds when the request had no ttl); unsolicited
callbacks (on_status / on_update of a charge) have a day.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
import structlog
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.jobs import serialize_job
from arq.worker import Retry

from bridge import metrics, redisconn
from bridge.beckn import countersign, intake
from bridge.beckn.errors import BecknError
from bridge.beckn.keyring import OwnKeys
from bridge.beckn.models import Context, format_timestamp
from bridge.beckn.profiles import LTS
from bridge.beckn.registry import KeyDirectory
from bridge.beckn.signing import BodySigner, KeyFileError
from bridge.config import Settings
from bridge.crashpoints import crash_point
from bridge.mapping.catalog import OFFER_ITEM
from bridge.store import beckn_keys, shards
from bridge.store.effects import Effects
from bridge.urlguard import UrlPolicy, guarded_session

log = structlog.get_logger("bridge.beckn.callbacks")

JOB_NAME = "beckn_callback"
WAIT_DEFER = 0.1  # seconds between looks at a predecessor still being delivered
DONE_KEEP = 3600  # seconds a delivered callback's metadata is kept
DEAD_KEEP = 30 * 86400
_NO_RESPONSE = "no response"
# The digest of an LTS request, kept in its (stored) context as this extra field: the
# answers to it carry it as `requestDigest` (bridge/beckn/lts.py).
REQUEST_DIGEST = "obb_request_digest"


def callback_action(action: str) -> str:
    """`discover` -> `on_discover` (also `rating` -> `on_rating`); `on_x` stays."""
    return action if action.startswith("on_") else f"on_{action}"


def callback_context(request: Context, action: str, settings: Settings, now: datetime,
                     message_id: str | None = None, profile: str | None = None) -> Context:
    """The context of our answer to `request`: same transaction (and, for the answer
    to a request, the same message_id), our bpp_id/bpp_uri, a fresh timestamp, written
    in `profile` (default: the request's own). An unsolicited message (a message id of
    its own) answers no request: it carries no request digest (LTS `requestDigest`)."""
    profile = profile or request.profile
    lts = profile == LTS
    update: dict[str, Any] = {
        "action": callback_action(action), "bpp_id": settings.beckn_subscriber_id,
        "bpp_uri": settings.lts_bpp_uri if lts else settings.bpp_uri,
        "timestamp": now.astimezone(UTC), "message_id": message_id or request.message_id}
    # every value is already of its field's type: a copy, not a re-validation
    ctx = request.model_copy(update=update)
    if message_id and message_id != request.message_id and ctx.model_extra:
        ctx.model_extra.pop(REQUEST_DIGEST, None)
    return ctx.in_profile(profile)


def wire_context(context: Context) -> dict[str, Any]:
    """The context as its profile writes it: the LTS's camelCase one, else the draft's."""
    if context.profile == LTS:
        from bridge.beckn.lts import context_out

        return context_out(context)
    return context.wire()


def wire_error(context: Context, error: dict[str, Any]) -> dict[str, Any]:
    """An error in a callback, as its profile writes it (LTS: `{errorCode, errorMessage}`)."""
    if context.profile == LTS:
        from bridge.beckn.lts import error_out

        return error_out(str(error.get("code", "")), str(error.get("message", "")))
    return error


def _deadline(context: Context, settings: Settings, now: float) -> float:
    ttl = context.ttl_delta
    if ttl is None:
        return now + settings.beckn_callback_default_ttl
    return max(context.timestamp.timestamp() + ttl.total_seconds(), now + 1.0)


def callback_url(settings: Settings, context: Context) -> str:
    action = context.action
    if context.profile == LTS:
        from bridge.beckn.lts import wire_action

        action = wire_action(action)
    if settings.beckn_mode == "adapter" and settings.beckn_adapter_url:
        return f"{settings.beckn_adapter_url.rstrip('/')}/{action}"
    return f"{context.bap_uri.rstrip('/')}/{action}"


def _arq(redis: aioredis.Redis) -> ArqRedis:
    return redisconn.arq_on(redis)


def safety_net_delay(settings: Settings) -> float:
    """Seconds after which the arq job of a callback runs if the fast lane has not
    delivered it by then (worker down or far behind)."""
    return settings.beckn_callback_timeout + 5.0


def _job_id(cb_id: str, replays: int | bytes | str = 0) -> str:
    return f"cb:{cb_id}:{int(replays)}"


# One round trip for each step of a delivery. The transaction queue's key is made
# from the record inside the script (its prefix carries the shard's tag: one slot).
# KEYS cb, lock; ARGV now, lock ms, txq key prefix, cb id, offer placeholder (JSON form),
# join ("1": join a recipe here; "0": return it, the catalog being in another slot of a
# Cluster, and the worker joins it: `_join`).
# A record has its `body`, or a `recipe` (see `Holes`): JSON text segments and, between
# them, lists of pre-rendered catalog fields that are joined with "," here.
_CLAIM = """
local r = redis.call('HMGET', KEYS[1], 'state', 'next_at', 'bap_id', 'txn', 'url', 'body',
                     'attempts', 'deadline', 'replays', 'recipe', 'created', 'profile',
                     'message_id')
if r[1] ~= 'pending' then return {'gone'} end
if tonumber(r[2]) > tonumber(ARGV[1]) then return {'retry', r[2]} end
local txq = ARGV[3] .. r[3] .. ':' .. r[4]
local head = redis.call('LINDEX', txq, 0)
if head and head ~= ARGV[4] then return {'wait'} end
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then return {'wait'} end
local body = r[6]
-- v with every `ph` replaced by `id`: a plain search (string.gsub matched a pattern at
-- every position of each template, half of this script's time for a page of 20)
local function splice(v, ph, id)
  local i = string.find(v, ph, 1, true)
  if not i then return v end
  local parts, from = {}, 1
  while i do
    parts[#parts + 1] = string.sub(v, from, i - 1)
    parts[#parts + 1] = id
    from = i + #ph
    i = string.find(v, ph, from, true)
  end
  parts[#parts + 1] = string.sub(v, from)
  return table.concat(parts)
end
if not body and r[10] and ARGV[6] == '0' then
  return {'go', r[5], '', r[7], r[8], r[9] or '0', txq, r[11] or '0', r[12] or '',
          r[3], r[13] or '', r[10]}
end
if not body and r[10] then
  local rc = cjson.decode(r[10])
  local out = {}
  for k, hole in ipairs(rc.h) do
    out[#out + 1] = rc.s[k]
    local parts = {}
    for _, p in ipairs(hole) do
      local v = redis.call('HGET', p[1], p[2])
      if v then
        if string.sub(p[2], 1, 2) == 't:' then
          v = splice(v, ARGV[5], p[3])
        elseif p[4] then
          -- figures of the query (a route's distances) first in the item's own descriptor
          local at = string.find(v, '"beckn:descriptor":{', 1, true)
          if at then v = string.sub(v, 1, at + 19) .. p[4] .. string.sub(v, at + 20) end
        end
        parts[#parts + 1] = v
      end
    end
    out[#out + 1] = table.concat(parts, ',')
  end
  out[#out + 1] = rc.s[#rc.s]
  body = table.concat(out)
end
return {'go', r[5], body or '', r[7], r[8], r[9] or '0', txq, r[11] or '0', r[12] or '',
        r[3], r[13] or ''}
"""
# KEYS cb, lock, txq, wake, dead, arq queue, arq job; ARGV mode (done|dead|retry), cb id,
# attempts, now, keep seconds, last error, next_at, arq job id, arq score (ms), keep
# seconds of a delivered answer that keeps its body (`keep` = 1: the dedupe window),
# safety net ("arq": an arq job; "due": KEYS[6] and KEYS[7] are the shard's due set, the
# callback id its member: the queues are not on this Redis, docs/scaling.md).
# done/dead: the record's end state, the next callback of the transaction woken, the
# safety net removed. retry: the safety net moved to next_at ('nojob' if there is none
# any more).
_FINISH = """
local mode = ARGV[1]
local due = ARGV[11] == 'due'
if mode == 'retry' then
  redis.call('HSET', KEYS[1], 'attempts', ARGV[3], 'last_error', ARGV[6], 'next_at', ARGV[7])
  redis.call('DEL', KEYS[2])
  if due then
    redis.call('ZADD', KEYS[6], ARGV[9], ARGV[2])
    return false
  end
  if redis.call('EXISTS', KEYS[7]) == 0 then return 'nojob' end
  redis.call('ZADD', KEYS[6], ARGV[9], ARGV[8])
  return false
end
local keep = ARGV[5]
if mode == 'done' then
  redis.call('HSET', KEYS[1], 'state', 'done', 'attempts', ARGV[3], 'delivered', ARGV[4])
  if redis.call('HGET', KEYS[1], 'keep') == '1' then
    keep = ARGV[10]  -- an answer a duplicate request gets again (intake.py): kept as long
  else
    redis.call('HDEL', KEYS[1], 'body', 'recipe')
  end
else
  redis.call('HSET', KEYS[1], 'state', 'dead', 'attempts', ARGV[3], 'last_error', ARGV[6],
             'dead_at', ARGV[4])
  redis.call('ZADD', KEYS[5], ARGV[4], ARGV[2])
end
redis.call('EXPIRE', KEYS[1], keep)
redis.call('LREM', KEYS[3], 1, ARGV[2])
if due then
  redis.call('ZREM', KEYS[6], ARGV[2])
  redis.call('DEL', KEYS[2])
else
  redis.call('ZREM', KEYS[6], ARGV[8])
  redis.call('DEL', KEYS[7], KEYS[2])
end
local nxt = redis.call('LINDEX', KEYS[3], 0)
if nxt then redis.call('LPUSH', KEYS[4], nxt) end
return nxt
"""
_SCRIPTS: weakref.WeakKeyDictionary[aioredis.Redis, tuple[Any, Any]] = weakref.WeakKeyDictionary()


def _scripts(redis: aioredis.Redis) -> tuple[Any, Any]:
    found = _SCRIPTS.get(redis)
    if found is None:
        found = _SCRIPTS[redis] = (redis.register_script(_CLAIM), redis.register_script(_FINISH))
    return found


# (Redis key of a hash, field, item id[, JSON members]) of pre-rendered JSON to splice in;
# fields "t:..." are offer templates, expanded with the item id; an item's optional JSON
# members (`"k":v,`) go first into its descriptor (discover's route figures).
Part = tuple[str, str, str] | tuple[str, str, str, str]
HOLE = b"\x00"  # where `message` has orjson.Fragment(b"[" + HOLE + b"]"): one per hole


async def enqueue_callback(redis: aioredis.Redis, settings: Settings, context: Context,
                           message: dict[str, Any] | None = None,
                           error: dict[str, Any] | None = None,
                           deadline: float | None = None,
                           holes: list[list[Part]] | None = None,
                           answers: str | None = None, keep: bool = False,
                           beside: dict[str, Any] | None = None) -> str:
    """Queue one signed callback; `context` is the callback's own context (use
    `callback_context`). Returns the callback id. Delivery order is the order of
    calls for the same (bap_id, transaction_id).

    `holes` (discover): `message` holds as many `HOLE` markers, and the record keeps a
    recipe instead of the body: the worker's claim joins the pre-rendered fields in
    Redis at delivery, so the items never travel to serve and back.

    `answers`: the request action this callback answers (its message id is the
    request's): the request's duplicate-check record is written (or noted with this
    callback's id) in the same MULTI (bridge/beckn/intake.py). `keep`: the body stays
    after delivery for the dedupe window, so a duplicate request gets it again.

    One round trip (MULTI) of the writes `callback_effects` lists. To queue a callback
    in the same atomic step as an order's change, pass those writes to
    `OrderStore.update(..., effects=...)` instead."""
    cb_id, fx = callback_effects(settings, context, message=message, error=error,
                                 deadline=deadline, holes=holes, answers=answers, keep=keep,
                                 beside=beside)
    async with redisconn.transaction(redis, beckn_keys.callback(cb_id)) as pipe:
        fx.to_pipeline(pipe)
        await pipe.execute()
    fx.committed()
    return cb_id


def callback_effects(settings: Settings, context: Context,
                     message: dict[str, Any] | None = None,
                     error: dict[str, Any] | None = None,
                     deadline: float | None = None,
                     holes: list[list[Part]] | None = None,
                     answers: str | None = None, keep: bool = False,
                     into: Effects | None = None,
                     beside: dict[str, Any] | None = None) -> tuple[str, Effects]:
    """The writes that queue one callback (the one layout of a callback record, used
    alone by `enqueue_callback` and with an order's change by the journey): the
    record, its place in the transaction's queue, the fast lane's wake-up, the arq
    job, deferred by `safety_net_delay` (written as arq's enqueue_job writes it; the
    id is new, so arq's uniqueness check is moot), and (`answers`) the request's
    duplicate-check record. Added to `into` if given."""
    from bridge.worker import QUEUE

    now = time.time()
    cb_id = beckn_keys.new_callback_id(context.transaction_id, uuid.uuid4().hex)
    shard = beckn_keys.callback_shard(cb_id)
    body: dict[str, Any] = {"context": wire_context(context)}
    if message is not None:
        body["message"] = message
    if beside:  # a dialect that puts the payload next to the context (the guide's)
        body.update(beside)
    if error is not None:
        body["error"] = wire_error(context, error)
    raw = orjson.dumps(body)
    if holes:
        segments = raw.split(HOLE)
        if len(segments) != len(holes) + 1:
            raise ValueError("enqueue_callback: holes do not match the message's markers")
        content: tuple[str, bytes] = ("recipe", orjson.dumps(
            {"s": [seg.decode() for seg in segments], "h": holes}))
    else:
        content = ("body", raw)
    record: dict[str, str | bytes] = {
        "id": cb_id, "url": callback_url(settings, context), "action": context.action,
        **({"profile": LTS} if context.profile == LTS else {}),
        "bap_id": context.bap_id, "txn": context.transaction_id,
        "message_id": context.message_id, content[0]: content[1],
        "deadline": repr(deadline if deadline is not None else _deadline(context, settings, now)),
        "attempts": "0", "next_at": "0", "state": "pending", "created": repr(now), "replays": "0",
    }
    if keep:
        record["keep"] = "1"
    txq = beckn_keys.txn_queue(context.bap_id, context.transaction_id)
    now_ms = int(now * 1000)
    defer_ms = int(safety_net_delay(settings) * 1000)
    job_id = _job_id(cb_id)
    fx = into if into is not None else Effects()
    fx.hset(beckn_keys.callback(cb_id), mapping=record)
    fx.call("RPUSH", txq, cb_id)
    fx.call("EXPIRE", txq, 7 * 86400)
    if shards.current().relay:  # the safety net: the shard's due set (docs/scaling.md)
        fx.call("ZADD", beckn_keys.due(shard), now_ms + defer_ms, cb_id)
    else:
        fx.arq_job(QUEUE, job_id, serialize_job(JOB_NAME, (cb_id,), {}, None, now_ms),
                   now_ms + defer_ms, defer_ms + _ARQ_EXPIRES_MS, fresh=True)
    fx.call("RPUSH", beckn_keys.wake(shard), cb_id)
    if answers:
        intake.take(fx, context.bap_id, answers, context.message_id,
                    cb_id if keep else None, settings.beckn_dedupe_ttl,
                    txn=context.transaction_id)
    return cb_id, fx


_ARQ_EXPIRES_MS = 86_400_000  # arq's expires_extra_ms default
_OFFER_ITEM_JSON = orjson.dumps(OFFER_ITEM)[1:-1].decode()  # as in a stored offer template


@dataclass
class CallbackDeps:
    settings: Settings
    redis: aioredis.Redis
    signer: BodySigner | None
    session: aiohttp.ClientSession
    # the BAPs' keys, for the counter-signatures of the Acks LTS BAPs answer with (None in
    # adapter mode, where the adapter checks them, and with beckn.verify off)
    keys: KeyDirectory | None = None

    async def close(self) -> None:
        await self.session.close()
        if self.keys is not None:
            await self.keys.close()


def make_signer(settings: Settings) -> BodySigner | None:
    """Our signer: the key ring's key of the moment (bridge/beckn/keyring.py; it follows a
    rotation without a restart), or None in adapter mode (the adapter signs: a callback
    signed here too would be signed twice). Fails now if the signing key cannot be read."""
    if settings.beckn_mode == "adapter":
        return None
    own = OwnKeys(settings)
    own.signer_at(time.time())
    return own


def direct_signer(settings: Settings) -> BodySigner | None:
    """The signer of what the bridge sends the BAP itself, never through an adapter: the
    live-tracking PATCHes (not a Beckn action an adapter's caller can route). In signed
    mode our key ring; in adapter mode the configured key if there is one (give the
    bridge the adapter's signing key, so a BAP finds it under our subscriber id), else
    None: sent unsigned, which serve and worker warn about at start."""
    if settings.beckn_mode != "adapter":
        return make_signer(settings)
    own = OwnKeys(settings)
    try:
        own.signer_at(time.time())
    except KeyFileError:
        return None
    return own


def make_deps(settings: Settings, redis: aioredis.Redis) -> CallbackDeps:
    # Every callback URL passes the URL guard at connect time (bridge.urlguard): a BAP's
    # bap_uri must not make us POST into our own network. Behind an adapter every callback
    # goes to beckn.adapter_url (callback_url), an address the operator configured, not
    # one a peer gave us, and usually a sidecar on loopback or the private network: the
    # guard would only refuse the one place callbacks may go.
    timeout = aiohttp.ClientTimeout(total=settings.beckn_callback_timeout)
    if settings.beckn_mode == "adapter":
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256,
                                                                       limit_per_host=64),
                                        timeout=timeout)
    else:
        session = guarded_session(url_policy(settings), limit=256, limit_per_host=64,
                                  timeout=timeout)
    keys = KeyDirectory(settings, redis) if (settings.beckn_mode == "signed"
                                             and settings.beckn_verify) else None
    return CallbackDeps(settings, redis, make_signer(settings), session, keys)


def url_policy(settings: Settings) -> UrlPolicy:
    """The outbound URL policy: one pair of settings for every URL a peer gives us."""
    return UrlPolicy(allow_loopback=settings.ocpi_allow_loopback_urls,
                     allow_private=settings.ocpi_allow_private_urls)


class Outcome:
    DONE = "done"
    DEAD = "dead"
    RETRY = "retry"  # not due yet: try again after the delay
    SCHEDULED = "scheduled"  # failed; the next try is scheduled (the arq job moved to it)
    WAIT = "wait"  # someone else holds it, or a predecessor is still pending
    GONE = "gone"  # unknown id, or already done/dead


@dataclass(frozen=True)
class AckCheck:
    """An LTS callback: its Ack must be an ACK counter-signed by the BAP it went to."""

    bap_id: str
    message_id: str


async def ack_refusal(deps: CallbackDeps, answer: bytes, body: bytes, check: AckCheck
                      ) -> str | None:
    """Why the Ack an LTS BAP answered `body` with does not prove receipt, or None: it
    must be `status` ACK and counter-signed (LTS CounterSignature) by the BAP the callback
    is for (`context.bapId`), over this Ack, `body` and its message id, with a key the
    registry knows. Anything else is a failed delivery."""
    if deps.keys is None:
        return None
    try:
        ack = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return "the Ack is not JSON"
    if not isinstance(ack, dict):
        return "the Ack is not an object"
    if ack.get("status") != "ACK":
        return f"the Ack's status is {ack.get('status')!r}"
    try:
        header = countersign.parse(ack.get("signature"))
        if header.subscriber_id != check.bap_id:
            return (f"the Ack is counter-signed by {header.subscriber_id}, "
                    f"not {check.bap_id}")
        _sub, key = await deps.keys.verifying_key(header.subscriber_id, header.key_id)
        countersign.verify(ack, body, check.message_id, key, time.time(),
                           skew=deps.settings.beckn_max_clock_skew)
    except BecknError as exc:
        return f"{exc.message} ({(exc.details or {}).get('reason', exc.code)})"
    return None


async def _post(deps: CallbackDeps, url: str, body: bytes,
                check: AckCheck | None = None) -> str | None:
    """POST one callback; None on any 2xx (an LTS callback: on a counter-signed ACK, see
    `ack_refusal`), else a short reason."""
    headers = {"Content-Type": "application/json"}
    if deps.signer is not None:
        headers["Authorization"] = deps.signer.header(body, time.time())
    try:
        async with deps.session.post(url, data=body, headers=headers) as resp:
            answer = await resp.read()
            if 200 <= resp.status < 300:
                return await ack_refusal(deps, answer, body, check) if check else None
            return f"HTTP {resp.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return type(exc).__name__


def retry_delay(settings: Settings, attempts: int, now: float, deadline: float) -> float | None:
    """Seconds until the next try after `attempts` failed ones, or None: dead letter.

    Capped exponential backoff (`callback_backoff` doubled each try, at most
    `callback_max_backoff`: seconds, then minutes, then hourly) for as long as the
    callback's deadline allows; the last try is made at the deadline itself. A
    BAP down for minutes gets an unsolicited on_update, whose deadline is a day,
    when it is back (issue 12, finding 10: 8 tries used to end after ~2 minutes).
    `callback_max_attempts` only bounds a runaway."""
    if attempts >= settings.beckn_callback_max_attempts or now >= deadline:
        return None
    delay: float = min(settings.beckn_callback_backoff * 2.0 ** min(attempts - 1, 30),
                       settings.beckn_callback_max_backoff)
    return min(delay, deadline - now)


async def attempt_once(deps: CallbackDeps, cb_id: str) -> tuple[str, float]:
    """One delivery attempt if it is this callback's turn. Returns (outcome, delay)."""
    from bridge.worker import QUEUE

    redis, settings = deps.redis, deps.settings
    claim, finish = _scripts(redis)
    key = beckn_keys.callback(cb_id)
    lock = beckn_keys.callback_lock(cb_id)
    shard = beckn_keys.callback_shard(cb_id)
    layout = shards.current()
    now = time.time()
    got = await claim(keys=[key, lock],
                      args=[repr(now), int((settings.beckn_callback_timeout + 5) * 1000),
                            beckn_keys.txn_queue_prefix(shard), cb_id, _OFFER_ITEM_JSON,
                            "0" if layout.tagged else "1"])
    tag = got[0]
    if tag == b"gone":
        return Outcome.GONE, 0.0
    if tag == b"retry":
        return Outcome.RETRY, max(float(got[1]) - now, 0.0)
    if tag == b"wait":
        return Outcome.WAIT, WAIT_DEFER
    url_b, body, attempts_b, deadline_b, replays, txq, created_b, profile_b, bap_b, mid_b = \
        got[1:11]
    url = url_b.decode()
    action = url.rsplit("/", 1)[-1]  # the metrics' label: on_select, on_status, ...
    job_id = _job_id(cb_id, replays)
    if layout.relay:
        net = "due"
        keys = [key, lock, txq, beckn_keys.wake(shard), beckn_keys.dead(shard),
                beckn_keys.due(shard), beckn_keys.due(shard)]
    else:
        net = "arq"
        keys = [key, lock, txq, beckn_keys.wake(shard), beckn_keys.dead(shard), QUEUE,
                job_key_prefix + job_id]
    try:
        check = AckCheck(bap_b.decode(), mid_b.decode()) if profile_b == LTS.encode() else None
        if len(got) > 11:  # a recipe the claim could not join (the catalog is elsewhere)
            body = await _join(redis, got[11])
        failure = await _post(deps, url, body, check)
    except BaseException:
        await redis.delete(lock)
        raise
    attempts = int(attempts_b) + 1
    now = time.time()
    if failure is None:
        crash_point("callback.posted")  # delivered, not yet marked: it is sent again
        await finish(keys=keys, args=["done", cb_id, attempts, repr(now), DONE_KEEP, "", "0", job_id,
                                      0, settings.beckn_dedupe_ttl, net])
        log.debug("beckn.callback.delivered", cb=cb_id, url=url, attempts=attempts)
        metrics.CALLBACKS.labels(action, "delivered").inc()
        metrics.CALLBACK_LATENCY.labels(action).observe(max(now - float(created_b), 0.0))
        return Outcome.DONE, 0.0
    delay = retry_delay(settings, attempts, now, float(deadline_b))
    if delay is None:
        await finish(keys=keys, args=["dead", cb_id, attempts, repr(now), DEAD_KEEP, failure, "0",
                                      job_id, 0, 0, net])
        log.warning("beckn.callback.dead_letter", cb=cb_id, url=url, attempts=attempts,
                    error=failure)
        metrics.CALLBACKS.labels(action, "dead").inc()
        return Outcome.DEAD, 0.0
    res = await finish(keys=keys, args=["retry", cb_id, attempts, repr(now), 0, failure,
                                        repr(now + delay), job_id, int((now + delay) * 1000), 0,
                                        net])
    if res == b"nojob":  # its arq job is gone (e.g. queued by an older version): a new one
        arq = _arq(redis)
        if await arq.enqueue_job(JOB_NAME, cb_id, _job_id=job_id, _queue_name=QUEUE,
                                 _defer_by=delay) is None:
            await arq.enqueue_job(JOB_NAME, cb_id, _job_id=f"{job_id}:r{attempts}",
                                  _queue_name=QUEUE, _defer_by=delay)
    log.info("beckn.callback.retry", cb=cb_id, url=url, attempts=attempts, error=failure,
             delay=delay)
    metrics.CALLBACKS.labels(action, "retry").inc()
    return Outcome.SCHEDULED, delay


async def callback_job(ctx: dict[str, Any], cb_id: str) -> str:
    """arq job: deliver (or keep retrying) one callback."""
    deps: CallbackDeps = ctx["beckn_callbacks"]
    outcome, delay = await attempt_once(deps, cb_id)
    if outcome == Outcome.SCHEDULED:
        # The failed attempt already moved this job to the next try's time: a deferral
        # here too would add the delay twice (each retry came about twice as late).
        raise Retry(defer=0)
    if outcome in (Outcome.RETRY, Outcome.WAIT):
        raise Retry(defer=max(delay, 0.01))
    return outcome


async def _join(redis: aioredis.Redis, recipe: bytes) -> bytes:
    """A recipe's body, as the claim script joins it (used where the catalog is in
    another slot of a Cluster than the callback: one pipelined read of its parts)."""
    rc = orjson.loads(recipe)
    parts = [p for hole in rc["h"] for p in hole]
    async with redis.pipeline(transaction=False) as pipe:
        for p in parts:
            pipe.hget(p[0], p[1])
        values = await pipe.execute() if parts else []
    out: list[bytes] = []
    i = 0
    placeholder = _OFFER_ITEM_JSON.encode()
    for k, hole in enumerate(rc["h"]):
        out.append(rc["s"][k].encode())
        found = []
        for p in hole:
            v = values[i]
            i += 1
            if v:
                if p[1].startswith("t:"):
                    v = v.replace(placeholder, p[2].encode())
                found.append(v)
        out.append(b",".join(found))
    out.append(rc["s"][-1].encode())
    return b"".join(out)


async def fast_lane_all(deps: CallbackDeps, stop: asyncio.Event | None = None) -> None:
    """`fast_lane` on every shard's wake list (docs/scaling.md), each started again after
    any error."""
    from bridge.worker import keep_running

    def one(shard: int) -> Any:
        return keep_running(f"beckn-callback-fast-lane-{shard}",
                            lambda: fast_lane(deps, stop, shard=shard))

    lanes = [one(s) for s in shards.current().shards]
    if shards.current().relay:
        lanes += [keep_running(f"beckn-callback-due-{s}",
                               lambda s=s: due_lane(deps, stop, shard=s))  # type: ignore[misc]
                  for s in shards.current().shards]
    await asyncio.gather(*lanes)


async def due_lane(deps: CallbackDeps, stop: asyncio.Event | None = None, shard: int = 0,
                   every: float = 0.25, batch: int = 64) -> None:
    """The safety net when the queues are not on the data's Redis (docs/scaling.md): the
    callbacks of a shard's due set whose time has come (their first attempt failed or
    never came: worker down, BAP down) are attempted, as arq's job would."""
    redis = deps.redis
    key = beckn_keys.due(shard)
    while stop is None or not stop.is_set():
        now_ms = int(time.time() * 1000)
        ids = await redis.zrangebyscore(key, "-inf", now_ms, start=0, num=batch)
        for raw in ids:
            cb_id = raw.decode()
            outcome, delay = await attempt_once(deps, cb_id)
            if outcome == Outcome.GONE:
                await redis.zrem(key, cb_id)
            elif outcome in (Outcome.RETRY, Outcome.WAIT):  # look again when it is time
                await redis.zadd(key, {cb_id: int((time.time() + max(delay, 0.05)) * 1000)},
                                 xx=True)
        if len(ids) < batch:
            await asyncio.sleep(every)


async def fast_lane(deps: CallbackDeps, stop: asyncio.Event | None = None,
                    concurrency: int = 64, shard: int = 0) -> None:
    """First attempts without arq's poll delay (see module docstring). Takes what is
    waiting in one LPOP (up to `concurrency`), blocks only when there is nothing."""
    redis = deps.redis
    wake = beckn_keys.wake(shard)
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
        ids = await redis.lpop(wake, concurrency)
        if not ids:
            item = await redis.blpop([wake], timeout=1)
            if item is None:
                continue
            ids = [item[1]]
        for raw in ids:
            await sem.acquire()
            task = asyncio.create_task(one(raw.decode()))
            pending.add(task)
            task.add_done_callback(pending.discard)


async def resend(redis: aioredis.Redis, settings: Settings, cb_id: str) -> str:
    """The answer `cb_id` again, for a duplicate request: "queued" if a copy is queued
    (same context and body, a fresh retry window; behind the original in its
    transaction's queue when that is still on its way: the BAP asked again, so it gets
    it again), "gone" if it is no longer kept."""
    rec = await redis.hgetall(beckn_keys.callback(cb_id))
    if not rec:
        return "gone"
    content = ("body", rec[b"body"]) if b"body" in rec else (
        ("recipe", rec[b"recipe"]) if b"recipe" in rec else None)
    if content is None:
        return "gone"
    from bridge.worker import QUEUE

    now = time.time()
    new_id = beckn_keys.new_callback_id(rec[b"txn"].decode(), uuid.uuid4().hex)
    shard = beckn_keys.callback_shard(new_id)
    copy = {k.decode(): v for k, v in rec.items()
            if k in (b"url", b"action", b"bap_id", b"txn", b"message_id", b"keep", b"profile")}
    copy.update({"id": new_id, content[0]: content[1], "attempts": "0", "next_at": "0",
                 "state": "pending", "created": repr(now), "replays": "0", "copy_of": cb_id,
                 "deadline": repr(now + settings.beckn_callback_default_ttl)})
    txq = beckn_keys.txn_queue(copy["bap_id"].decode(), copy["txn"].decode())
    now_ms = int(now * 1000)
    defer_ms = int(safety_net_delay(settings) * 1000)
    job_id = _job_id(new_id)
    async with redisconn.transaction(redis, txq) as pipe:
        pipe.hset(beckn_keys.callback(new_id), mapping=copy)
        pipe.rpush(txq, new_id)
        pipe.expire(txq, 7 * 86400)
        if shards.current().relay:
            pipe.zadd(beckn_keys.due(shard), {new_id: now_ms + defer_ms})
        else:
            pipe.psetex(job_key_prefix + job_id, defer_ms + _ARQ_EXPIRES_MS,
                        serialize_job(JOB_NAME, (new_id,), {}, None, now_ms))
            pipe.zadd(QUEUE, {job_id: now_ms + defer_ms})
        pipe.rpush(beckn_keys.wake(shard), new_id)
        await pipe.execute()
    log.info("beckn.callback.resent", cb=cb_id, copy=new_id)
    return "queued"


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
    found: list[tuple[float, str]] = []
    for shard in shards.current().shards:
        found += [(float(t), m.decode()) for m, t in await redis.zrevrange(
            beckn_keys.dead(shard), 0, limit - 1, withscores=True)]
    ids = [cb_id for _, cb_id in sorted(found, reverse=True)[:limit]]
    out: list[DeadLetter] = []
    for cb_id in ids:
        rec = await redis.hgetall(beckn_keys.callback(cb_id))
        if not rec:
            await redis.zrem(beckn_keys.dead(beckn_keys.callback_shard(cb_id)), cb_id)
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
    if not rec or rec.get(b"state") != b"dead" or (b"body" not in rec and b"recipe" not in rec):
        return False
    now = time.time()
    replays = int(rec.get(b"replays", b"0")) + 1
    txq = beckn_keys.txn_queue(rec[b"bap_id"].decode(), rec[b"txn"].decode())
    shard = beckn_keys.callback_shard(cb_id)
    async with redisconn.transaction(redis, key) as pipe:
        pipe.hset(key, mapping={"state": "pending", "attempts": 0, "next_at": 0,
                                "replays": replays,
                                "deadline": repr(now + settings.beckn_callback_default_ttl)})
        pipe.persist(key)
        pipe.zrem(beckn_keys.dead(shard), cb_id)
        pipe.rpush(txq, cb_id)
        pipe.rpush(beckn_keys.wake(shard), cb_id)
        if shards.current().relay:
            pipe.zadd(beckn_keys.due(shard), {cb_id: int(now * 1000)})
        await pipe.execute()
    if not shards.current().relay:
        await _arq(redis).enqueue_job(JOB_NAME, cb_id, _job_id=_job_id(cb_id, replays),
                                      _queue_name=QUEUE)
    log.info("beckn.callback.replay", cb=cb_id, replays=replays,
             at=format_timestamp(datetime.now(UTC)))
    return True
