"""Rate limits: token buckets in Redis, shared by every serve process.

One bucket per caller and kind (`obb:rl:{kind}:{who}`): a CPO platform's token
(OCPI), a BAP (Beckn, after its signature is verified, so nobody can spend
someone else's bucket), registry lookups per claimed subscriber (so a flood of
made-up key ids cannot turn into a flood of lookups). A bucket holds `burst`
tokens and refills at `rate` per second; a request takes one or is refused with
the time after which one will be there (`Retry-After`). One Lua call, one round
trip; the key expires once the bucket would be full again, so idle callers cost
nothing.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

PREFIX = "obb:rl:"

# KEYS[1] bucket; ARGV rate (tokens/s), burst, now (ms), cost.
# -> {1, 0} taken | {0, ms until enough tokens}
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
if now > at then tokens = math.min(burst, tokens + (now - at) * rate / 1000) end
local ok = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  ok = 1
else
  wait = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(math.max(now, at)))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return {ok, wait}
"""
_SCRIPTS: weakref.WeakKeyDictionary[aioredis.Redis, Any] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second; 0 = no limit
    burst: int

    @property
    def off(self) -> bool:
        return self.rate <= 0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: float  # seconds (0 when allowed)

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))


ALLOWED = Verdict(True, 0.0)


def parse_limit(text: str) -> Limit:
    """"50/s" or "50/s burst 100" or "600/min" or "off" -> Limit."""
    t = text.strip().lower()
    if t in ("", "0", "off", "none"):
        return Limit(0.0, 0)
    head, _, burst_text = t.partition("burst")
    number, _, unit = head.strip().partition("/")
    per = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0, "h": 3600.0,
           "hour": 3600.0}.get(unit.strip() or "s")
    try:
        count = float(number)
        burst = int(burst_text) if burst_text.strip() else max(1, math.ceil(count))
    except ValueError:
        per = None
    if per is None or count < 0 or burst < 1:
        raise ValueError(f"not a rate limit: {text!r} (say e.g. '50/s burst 100', '600/min', 'off')")
    return Limit(count / per, burst)


class RateLimiter:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        script = _SCRIPTS.get(redis)
        if script is None:
            script = _SCRIPTS[redis] = redis.register_script(_TAKE)
        self._take = script

    async def take(self, kind: str, who: str, limit: Limit, now_ms: int, cost: int = 1) -> Verdict:
        if limit.off:
            return ALLOWED
        ok, wait = await self._take(keys=[f"{PREFIX}{kind}:{who}"],
                                    args=[repr(limit.rate), limit.burst, now_ms, cost])
        return ALLOWED if int(ok) else Verdict(False, int(wait) / 1000)
