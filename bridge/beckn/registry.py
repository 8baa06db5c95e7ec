"""Public keys of network participants: the Beckn registry, cached in Redis, or
a static list for closed networks.

Registry lookup: `POST {registry_url}/lookup` with `{"subscriber_id", "unique_key_id",
"key_id"}`: the key id under both names, `unique_key_id` for v1 / Beckn-One registries,
`key_id` for the spec's Subscription and beckn-onix's registry client (and the mock
registry of the UEI sandboxes). The answer is a list of subscriber records with
`signing_public_key` (base64 raw ed25519, or DER), `encr_public_key` and
`subscriber_url` (`url`, `subscriber_uri`). A record past its `valid_until`, or whose
status says the key is not usable, is not a key. Found records are cached for
`beckn_registry_cache_ttl` seconds; "not found" for 60 seconds, so a flood of unknown
keys does not hammer the registry.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bridge.beckn.errors import InternalError, UnknownSubscriber
from bridge.beckn.signing import public_key_from_b64
from bridge.config import Settings
from bridge.ratelimit import RateLimiter, parse_limit
from bridge.store import beckn_keys

log = structlog.get_logger("bridge.beckn.registry")

NEGATIVE_TTL = 60
LOCAL_TTL = 60.0  # seconds a found key stays in the process (at most the registry cache ttl)
LOCAL_MAX = 4096  # keys kept in the process at most


# Statuses of a registry record whose key verifies (beckn-onix refuses only EXPIRED,
# UNSUBSCRIBED and INVALID_SSL; a record without a status is taken as subscribed).
USABLE = ("SUBSCRIBED", "INITIATED", "UNDER_SUBSCRIPTION")


@dataclass(frozen=True)
class Subscriber:
    subscriber_id: str
    key_id: str
    signing_public_key: str
    subscriber_url: str = ""
    encr_public_key: str = ""  # the registry's own record: what on_subscribe is encrypted with
    status: str = ""


def record_key_id(data: dict[str, Any]) -> str | None:
    found = data.get("unique_key_id") or data.get("key_id") or data.get("ukId") or data.get(
        "pub_key_id")
    return None if found is None else str(found)


def _record(data: dict[str, Any], key_id: str) -> Subscriber:
    return Subscriber(subscriber_id=str(data["subscriber_id"]),
                      key_id=record_key_id(data) or key_id,
                      signing_public_key=str(data["signing_public_key"]),
                      subscriber_url=str(data.get("subscriber_url") or data.get("url")
                                         or data.get("subscriber_uri") or ""),
                      encr_public_key=str(data.get("encr_public_key") or ""),
                      status=str(data.get("status") or ""))


def _expired(data: dict[str, Any], now: datetime) -> bool:
    value = data.get("valid_until")
    if not value:
        return False
    try:
        until = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return False  # a form we cannot read: the registry answered, trust it
    return (until if until.tzinfo else until.replace(tzinfo=UTC)) < now


def lookup_body(subscriber_id: str, key_id: str | None = None) -> dict[str, str]:
    body = {"subscriber_id": subscriber_id}
    if key_id:
        body.update(unique_key_id=key_id, key_id=key_id)
    return body


def records_of(data: Any) -> list[dict[str, Any]]:
    """The subscriber records in a lookup answer (a list, or `{"subscribers": [...]}`)."""
    records = data if isinstance(data, list) else data.get("subscribers", []) if isinstance(
        data, dict) else []
    return [r for r in records if isinstance(r, dict)]


def matching_record(records: list[dict[str, Any]], subscriber_id: str, key_id: str,
                    now: datetime) -> Subscriber | None:
    """The usable record of (subscriber, key id) among a lookup's answer."""
    for rec in records:
        if "signing_public_key" not in rec or str(rec.get("subscriber_id")) != subscriber_id:
            continue
        if record_key_id(rec) not in (None, key_id):
            continue
        if str(rec.get("status") or "SUBSCRIBED").upper() not in USABLE or _expired(rec, now):
            continue
        return _record(rec, key_id)
    return None


def load_static_keys(path: str) -> dict[tuple[str, str], Subscriber]:
    """A JSON list of records like the registry's (subscriber_id, unique_key_id,
    signing_public_key, subscriber_url)."""
    if not path:
        return {}
    records = json.loads(Path(path).read_text())
    out: dict[tuple[str, str], Subscriber] = {}
    for rec in records:
        sub = _record(rec, str(rec.get("unique_key_id", "")))
        out[(sub.subscriber_id, sub.key_id)] = sub
    return out


class KeyDirectory:
    """Finds the public key of (subscriber_id, unique_key_id)."""

    def __init__(self, settings: Settings, redis: aioredis.Redis,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.static = load_static_keys(settings.beckn_static_keys)
        self._session = session
        # (subscriber, key id) -> (monotonic expiry, record, key object): verifying a
        # request then needs neither Redis nor decoding the key again
        self._local: dict[tuple[str, str], tuple[float, Subscriber, Ed25519PublicKey]] = {}
        self.local_ttl = min(LOCAL_TTL, float(settings.beckn_registry_cache_ttl))
        # (subscriber, key id) -> the lookup under way: requests that arrive together
        # wait for one lookup instead of each spending the registry lookup budget
        self._inflight: dict[tuple[str, str], asyncio.Task[Subscriber]] = {}

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def verifying_key(self, subscriber_id: str, key_id: str
                            ) -> tuple[Subscriber, Ed25519PublicKey]:
        """The record and the public key object of (subscriber, key id); found keys are
        kept in the process for `local_ttl` seconds (static keys for good)."""
        ref = (subscriber_id, key_id)
        now = time.monotonic()
        hit = self._local.get(ref)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        task = self._inflight.get(ref)
        if task is None:
            task = asyncio.ensure_future(self.lookup(subscriber_id, key_id))
            self._inflight[ref] = task
            task.add_done_callback(lambda t: self._lookup_done(ref, t))
        # shielded: a caller that goes away does not cancel the others' lookup
        sub = await asyncio.shield(task)
        key = public_key_from_b64(sub.signing_public_key)
        ttl = math.inf if ref in self.static else self.local_ttl
        if ttl > 0:
            self._local.pop(ref, None)
            while len(self._local) >= LOCAL_MAX:  # drop the oldest
                self._local.pop(next(iter(self._local)))
            self._local[ref] = (now + ttl, sub, key)
        return sub, key

    def _lookup_done(self, ref: tuple[str, str], task: asyncio.Task[Subscriber]) -> None:
        if self._inflight.get(ref) is task:
            del self._inflight[ref]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone

    async def lookup(self, subscriber_id: str, key_id: str) -> Subscriber:
        static = self.static.get((subscriber_id, key_id))
        if static is not None:
            return static
        if not self.settings.beckn_registry_url:
            raise UnknownSubscriber(details={"subscriber_id": subscriber_id, "key_id": key_id})
        cache_key = beckn_keys.registry(subscriber_id, key_id)
        cached = await self.redis.get(cache_key)
        if cached is not None:
            if cached == b"":
                raise UnknownSubscriber(details={"subscriber_id": subscriber_id, "key_id": key_id})
            return Subscriber(**orjson.loads(cached))
        verdict = await RateLimiter(self.redis).take(
            "registry", subscriber_id, parse_limit(self.settings.beckn_registry_lookup_limit),
            int(time.time() * 1000))
        if not verdict.allowed:  # made-up key ids: the registry is not asked for each
            raise UnknownSubscriber("too many lookups of unknown keys of this subscriber; "
                                    "try again later",
                                    {"subscriber_id": subscriber_id, "key_id": key_id})
        found = await self._ask_registry(subscriber_id, key_id)
        if found is None:
            await self.redis.set(cache_key, b"", ex=NEGATIVE_TTL)
            raise UnknownSubscriber(details={"subscriber_id": subscriber_id, "key_id": key_id})
        if self.settings.beckn_registry_cache_ttl:
            await self.redis.set(cache_key, orjson.dumps(found.__dict__),
                                 ex=self.settings.beckn_registry_cache_ttl)
        return found

    async def _ask_registry(self, subscriber_id: str, key_id: str) -> Subscriber | None:
        url = self.settings.beckn_registry_url.rstrip("/") + "/lookup"
        body = lookup_body(subscriber_id, key_id)
        try:
            session = await self._http()
            async with session.post(url, json=body) as resp:
                if resp.status >= 500:
                    raise InternalError("registry unavailable", {"registry_status": resp.status})
                if resp.status >= 400:
                    return None
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("beckn.registry.unreachable", url=url, error=type(exc).__name__)
            raise InternalError("registry unreachable") from exc
        return matching_record(records_of(data), subscriber_id, key_id, datetime.now(UTC))


async def lookup_records(session: aiohttp.ClientSession, registry_url: str, subscriber_id: str,
                         key_id: str | None = None) -> list[dict[str, Any]]:
    """The registry's records of a subscriber (and key), uncached: what `bridge keys show`
    and `bridge registry subscribe` report. RegistryUnavailable when it cannot answer."""
    url = registry_url.rstrip("/") + "/lookup"
    try:
        async with session.post(url, json=lookup_body(subscriber_id, key_id)) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise RegistryUnavailable(f"the registry's lookup answered HTTP {resp.status}")
            data = orjson.loads(text) if text.strip() else []
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise RegistryUnavailable(f"cannot reach the registry at {url}: "
                                  f"{str(exc) or type(exc).__name__}") from exc
    except orjson.JSONDecodeError as exc:
        raise RegistryUnavailable("the registry's lookup answer is not JSON") from exc
    return [r for r in records_of(data) if str(r.get("subscriber_id")) == subscriber_id
            and (key_id is None or record_key_id(r) in (None, key_id))]


class RegistryUnavailable(Exception):
    """The registry cannot be asked (down, refusing, or answering nonsense)."""
