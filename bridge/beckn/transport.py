"""Beckn BPP transport: authenticate, validate, dedupe, hand to the action, ACK.

Every request to `/beckn/{action}` goes through `receive()`:

    1. action known?                               UnknownAction (404)
    2. signature header (signed mode): well formed, in its time window, lifetime at most
       beckn.max_signature_lifetime, the signer's key found; or the TCP peer in
       beckn.adapter_allow_from (adapter mode), or nothing (verify off). All before the
       body is read.
    3. body at most beckn.max_body bytes, within body_timeout   Refused (413, 408)
       signature over the body                        AuthError (401)
       JSON object?                                   InvalidJson
    4. envelope (context) valid?                   SchemaError, details.field
    5. context.action == path, domain, version     SchemaError / WrongDomain
    6. bpp_id is ours (required except discover)   WrongRecipient
    7. timestamp not in the future, ttl not over   StaleRequest
    8. keyId subscriber == context.bap_id          AuthError
       the BAP within beckn.rate_limit                Refused (429, Retry-After)
    9. (bap_id, action, message_id) seen before?   the same body: its answer again;
                                                  another body: NACK 30020 (intake.py)
   10. the action's handler (validates its message, queues its work, and the request's
       duplicate-check record with it)
   -> ACK

`middleware` is the one place where exceptions become the NACK AckResponse.
Handlers should be quick: they validate and queue (the on_* callback, or an
arq job for slow work); the ACK means the work is durably queued.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from bridge import redisconn
from bridge.beckn import signing
from bridge.beckn.errors import (
    AlreadyAnswered,
    AuthError,
    BecknError,
    InternalError,
    InvalidJson,
    MessageIdReused,
    Refused,
    RequestInProgress,
    SchemaError,
    StaleRequest,
    UnknownAction,
    WrongDomain,
    WrongRecipient,
)
from bridge.beckn.intake import CURRENT, LOCK_MS, Intake, digest
from bridge.beckn.models import AckResponse, Context, Envelope, ErrorBody, format_timestamp
from bridge.beckn.profiles import RC2, profile_for
from bridge.beckn.recipients import bap_uri_refusal
from bridge.beckn.registry import KeyDirectory, Subscriber
from bridge.config import Settings
from bridge.crashpoints import crash_point
from bridge.ratelimit import Limit, RateLimiter, parse_limit

log = structlog.get_logger("bridge.beckn")

PREFIX = "/beckn"


@dataclass
class BecknRequest:
    """What an action handler gets: the checked context and the raw body."""

    action: str
    context: Context
    body: dict[str, Any]
    raw: bytes
    received_at: datetime
    services: BecknServices
    subscriber: Subscriber | None = None
    profile: str = RC2  # the wire profile its answers are written in (bridge.beckn.profiles)


Handler = Callable[[BecknRequest], Awaitable[None]]


@dataclass
class BecknServices:
    settings: Settings
    redis: aioredis.Redis
    keys: KeyDirectory
    handlers: Mapping[str, Handler]
    extra: dict[str, Any] = field(default_factory=dict)  # per-action dependencies


def schema_error(exc: ValidationError, prefix: str = "") -> SchemaError:
    """pydantic's first error as a Beckn SchemaError naming the field."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0] if errors else {"loc": (), "msg": str(exc)}
    where = ".".join(str(p) for p in (*([prefix] if prefix else []), *first["loc"]))
    return SchemaError(f"{where or 'body'}: {first['msg']}",
                       {"field": where, "errors": [
                           {"field": ".".join(str(p) for p in (*([prefix] if prefix else []),
                                                                 *e["loc"])),
                            "message": e["msg"]} for e in errors[:10]]})


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Any, prefix: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise schema_error(exc, prefix) from exc


def ack(transaction_id: str, error: BecknError | None = None) -> AckResponse:
    return AckResponse(
        transaction_id=transaction_id, timestamp=format_timestamp(datetime.now(UTC)),
        ack_status="NACK" if error else "ACK",
        error=ErrorBody(**error.to_error()) if error else None)


def _ack_ok(transaction_id: str) -> web.Response:
    """The ACK, serialised directly (the NACKs go through `ack()`)."""
    return web.Response(body=orjson.dumps({
        "transaction_id": transaction_id, "timestamp": format_timestamp(datetime.now(UTC)),
        "ack_status": "ACK"}), content_type="application/json")


def _json(resp: AckResponse, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(resp.wire()), status=status,
                        content_type="application/json")


def _from_adapter(remote: str | None, settings: Settings) -> bool:
    """The TCP peer (not X-Forwarded-For, which anyone can write) is in the adapter's
    allow-list (`beckn.adapter_allow_from`)."""
    try:
        addr = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in settings.adapter_networks)


async def authenticate(request: web.Request, services: BecknServices
                        ) -> tuple[signing.SignatureHeader | None, Subscriber | None, Any]:
    """Everything that can be checked before the body is read: the adapter's address, or
    the signature header (well formed, within its time window and the lifetime cap) and
    the signer's key (registry lookups rate-limited per claimed subscriber). A request
    that fails here is refused without reading a byte of its body."""
    settings = services.settings
    if settings.beckn_mode == "adapter":
        # The ONIX adapter's receiver verified the network signature and forwards the
        # request (its Authorization header too, unverified here: not verified twice).
        if not _from_adapter(request.remote, settings):
            raise AuthError("adapter mode accepts requests from the adapter only",
                            {"reason": "not_adapter"})
        return None, None, None
    if not settings.beckn_verify:
        return None, None, None
    header = signing.parse_header(request.headers.get("Authorization"))
    signing.check_window(header, time.time(), skew=settings.beckn_max_clock_skew,
                         max_lifetime=settings.beckn_max_signature_lifetime)
    sub, key = await services.keys.verifying_key(header.subscriber_id, header.key_id)
    return header, sub, key


async def read_body(request: web.Request, settings: Settings) -> bytes:
    """The body, at most `beckn_max_body` bytes, within `body_timeout` seconds."""
    limit = settings.beckn_max_body
    if request.content_length is not None and request.content_length > limit:
        raise Refused(f"the body is {request.content_length} bytes; at most {limit} are "
                      "accepted", 413)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(settings.body_timeout):
            while True:
                chunk = await request.content.read(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise Refused(f"the body is more than {limit} bytes", 413)
                chunks.append(chunk)
    except TimeoutError as exc:
        raise Refused(f"the body did not arrive within {settings.body_timeout:g} s", 408) from exc
    return b"".join(chunks)


async def rate_limit(services: BecknServices, bap_id: str) -> None:
    limit = _limit(services.settings.beckn_rate_limit)
    verdict = await RateLimiter(services.redis).take("bap", bap_id, limit,
                                                     int(time.time() * 1000))
    if not verdict.allowed:
        raise Refused(f"too many requests from {bap_id}: try again in "
                      f"{verdict.retry_after_header} s", 429, verdict.retry_after)


@functools.cache
def _limit(text: str) -> Limit:
    return parse_limit(text)


def check_context(ctx: Context, action: str, settings: Settings, now: datetime,
                  domain_required: bool = True) -> None:
    if ctx.action != action:
        raise SchemaError(f"context.action is {ctx.action!r}, the path says {action!r}",
                          {"field": "context.action"})
    domains = {settings.beckn_domain, *(d.strip() for d in settings.beckn_domain_aliases.split(",")
                                        if d.strip())}
    if ctx.domain is None:
        if domain_required:
            raise SchemaError("context.domain: Field required", {"field": "context.domain"})
    elif ctx.domain not in domains:
        raise WrongDomain(f"domain {ctx.domain!r} is not served here", {"field": "context.domain",
                                                                        "expected": sorted(domains)})
    if ctx.version != settings.beckn_version:
        raise WrongDomain(f"version {ctx.version!r} is not supported",
                          {"field": "context.version", "expected": settings.beckn_version})
    if ctx.bpp_id is None:
        if action != "discover":
            raise SchemaError("context.bpp_id: Field required", {"field": "context.bpp_id"})
    elif ctx.bpp_id != settings.beckn_subscriber_id:
        raise WrongRecipient(f"bpp_id {ctx.bpp_id!r} is not this BPP",
                             {"field": "context.bpp_id", "expected": settings.beckn_subscriber_id})
    skew = settings.beckn_max_clock_skew
    age = (now - ctx.timestamp).total_seconds()
    if age < -skew:
        raise StaleRequest("context.timestamp is in the future", {"field": "context.timestamp"})
    ttl = ctx.ttl_delta
    if ttl is not None:
        if age > ttl.total_seconds() + min(skew, 5.0):
            raise StaleRequest("ttl has elapsed", {"field": "context.ttl"})
    elif age > skew:
        raise StaleRequest("context.timestamp is too old", {"field": "context.timestamp"})


@dataclass(frozen=True)
class Dialect:
    """How one family of paths reads a request and writes its ACK: the draft's
    `/beckn/{action}` (`DRAFT`), or the LTS paths (`bridge.beckn.lts_routes`). The steps
    between (signature, limits, duplicates, the handler) are the same for both."""

    # the action a request to this path is (the handler's name)
    action: Callable[[web.Request], str]
    # the body as the handlers read it (the draft's form), from the parsed and the raw body
    inbound: Callable[[dict[str, Any], bytes, str], dict[str, Any]] | None = None
    # the profile the answers are written in; None: per BAP (`profile_for`)
    profile: str | None = None
    # the ACK: (request, services, its checked context, the raw body) -> response
    ack: Callable[[web.Request, BecknServices, Context, bytes], web.Response] | None = None

    def answer(self, request: web.Request, services: BecknServices, ctx: Context,
               raw: bytes) -> web.Response:
        return self.ack(request, services, ctx, raw) if self.ack else _ack_ok(ctx.transaction_id)


DRAFT = Dialect(action=lambda request: request.match_info["action"])


async def receive(request: web.Request, services: BecknServices,
                  dialect: Dialect = DRAFT) -> web.Response:
    action = dialect.action(request)
    handler = services.handlers.get(action)
    if handler is None:
        raise UnknownAction(f"no action {action!r}", {"action": action})
    header, sub, key = await authenticate(request, services)
    raw = await read_body(request, services.settings)
    body: Any = None
    parse_error: orjson.JSONDecodeError | None = None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        parse_error = exc
    request["beckn_raw"] = raw
    if isinstance(body, dict) and isinstance(body.get("context"), dict):
        request["beckn_txn"] = str(body["context"].get("transaction_id", ""))
    if header is not None:
        signing.verify(header, raw, key, time.time(), skew=services.settings.beckn_max_clock_skew)
    if parse_error is not None:
        raise InvalidJson(f"invalid JSON: {parse_error}") from parse_error
    if not isinstance(body, dict):
        raise InvalidJson()
    if dialect.inbound is not None:
        body = dialect.inbound(body, raw, action)
    env = validate(Envelope, body)
    ctx = env.context
    now = datetime.now(UTC)
    check_context(ctx, action, services.settings, now, domain_required=dialect.inbound is None)
    if header is not None and header.subscriber_id != ctx.bap_id:
        raise AuthError("signed by another subscriber than context.bap_id",
                        {"reason": "subscriber_mismatch"})
    refusal = bap_uri_refusal(ctx.bap_uri, sub, services.settings.beckn_callback_allow)
    if refusal:
        raise AuthError(refusal, {"field": "context.bap_uri", "reason": "unregistered_bap_uri"})
    await rate_limit(services, ctx.bap_id)  # after the signature: nobody spends another's
    structlog.contextvars.bind_contextvars(beckn_action=action, bap_id=ctx.bap_id,
                                           transaction_id=ctx.transaction_id,
                                           message_id=ctx.message_id)
    taken = Intake(ctx.bap_id, action, ctx.message_id, digest(body),
                   services.settings.beckn_dedupe_ttl, txn=ctx.transaction_id)
    got = await _check_script(services.redis)(keys=[taken.key, taken.lock],
                                              args=[taken.digest, LOCK_MS])
    if got[0] == b"dup" and action == "discover":
        taken.written = True  # read-only: searched again, a fresh answer to the same id
    elif got[0] != b"go":
        await _duplicate(services, taken, got, ctx)
        return dialect.answer(request, services, ctx, raw)
    crash_point("beckn.checked")
    token = CURRENT.set(taken)
    profile = dialect.profile or profile_for(services.settings, ctx.bap_id)
    ctx.in_profile(profile)
    try:
        await handler(BecknRequest(action=action, context=ctx, body=body, raw=raw,
                                   received_at=now, services=services, subscriber=sub,
                                   profile=profile))
        if not taken.written:  # nothing was queued: the record on its own
            async with redisconn.transaction(services.redis, taken.key) as pipe:
                pipe.hset(taken.key, mapping=taken.record())
                pipe.expire(taken.key, taken.ttl)
                pipe.delete(taken.lock)
                await pipe.execute()
            taken.written = True
        crash_point("beckn.handled")
    finally:
        CURRENT.reset(token)
        if not taken.written:
            # Refused (or failed): no record, so a corrected or retried request is
            # handled afresh; the lock goes. (Written, it went with the record.)
            await services.redis.delete(taken.lock)
    log.debug("beckn.ack", action=action)  # one line per request: not at info level
    return dialect.answer(request, services, ctx, raw)


# Is (bap_id, action, message_id) taken? KEYS record, lock; ARGV digest, lock ms.
# -> {'dup', cb id or ''} | {'conflict'} | {'busy'} | {'go'} (lock taken)
_CHECK = """
local d = redis.call('HGET', KEYS[1], 'd')
if d then
  if d ~= ARGV[1] then return {'conflict'} end
  return {'dup', redis.call('HGET', KEYS[1], 'cb') or ''}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'go'} end
if redis.call('GET', KEYS[2]) == ARGV[1] then return {'busy'} end
return {'conflict'}
"""
_CHECKS: weakref.WeakKeyDictionary[aioredis.Redis, Any] = weakref.WeakKeyDictionary()


def _check_script(redis: aioredis.Redis) -> Any:
    script = _CHECKS.get(redis)
    if script is None:
        script = _CHECKS[redis] = redis.register_script(_CHECK)
    return script


async def _duplicate(services: BecknServices, taken: Intake, got: list[bytes], ctx: Context
                     ) -> None:
    """The same (bap_id, action, message_id) again. The same body: its answer again (or
    nothing to do while that answer is still on its way: ACK). Another body: refused."""
    from bridge.beckn.callbacks import resend

    tag = got[0]
    if tag == b"conflict":
        raise MessageIdReused(f"message_id {ctx.message_id} was used for another {taken.action} "
                              "request: use a new message_id", {"field": "context.message_id"})
    if tag == b"busy":
        raise RequestInProgress(details={"field": "context.message_id"})
    cb_id = got[1].decode()
    outcome = await resend(services.redis, services.settings, cb_id) if cb_id else "pending"
    if outcome == "gone":
        raise AlreadyAnswered(details={"field": "context.message_id"})
    log.info("beckn.duplicate", action=taken.action, answer=outcome)


async def answered_or_error(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse | BecknError:
    """The handler's response, or the Beckn error its failure is answered with (one
    mapping for every profile's NACK middleware: the draft's here, the LTS's in
    lts_routes). Other HTTP exceptions (413, 408 from aiohttp) pass through."""
    try:
        return await handler(request)
    except BecknError as exc:
        return exc
    except web.HTTPNotFound:
        return UnknownAction(f"no Beckn endpoint at {request.path}")
    except web.HTTPMethodNotAllowed:
        return UnknownAction(f"{request.method} is not supported on {request.path}")
    except Exception:  # the NACK must go out even for our own bugs
        log.exception("beckn.server_error", path=request.path)
        return InternalError()


def make_middleware(prefix: str = PREFIX) -> Any:
    """The one place where Beckn errors become NACKs (only under `prefix`)."""

    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        if not request.path.startswith(prefix + "/") and request.path != prefix:
            return await handler(request)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(protocol="beckn")
        error = await answered_or_error(request, handler)
        if not isinstance(error, BecknError):
            return error
        log.info("beckn.nack", path=request.path, code=error.code, http_status=error.http_status,
                 reason=error.message)
        response = _json(ack(request.get("beckn_txn", ""), error), status=error.http_status)
        if isinstance(error, Refused) and error.retry_after:
            response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
        return response

    return middleware
