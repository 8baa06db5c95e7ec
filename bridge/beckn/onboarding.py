"""Onboarding to a Beckn registry: `/subscribe`, and our `/on_subscribe` endpoint.

The registry protocol (beckn/protocol-specifications `api/registry/build/registry.yaml`,
the v1 registry API every Beckn registry implements; details in docs/protocol-notes.md,
"Registry onboarding"):

    bridge registry subscribe / keys rotate           registry                 bridge serve
      POST {registry_url}/subscribe  (signed) ------->
        a Subscription: subscriber_id, subscriber_url, type BPP, domain, key id,
        signing_public_key, encr_public_key, valid_from, valid_until, country, nonce
                                           <------- 200 {status: UNDER_SUBSCRIPTION | INITIATED}
                                                    POST {subscriber_url}/on_subscribe ---->
                                                    (signed by the registry)
                                                    {subscriber_id, pub_key_id?, challenge}
                                                    <---- 200 {"answer": decrypted challenge}
                                                    the answer matches: SUBSCRIBED
      (waits for serve's record of the challenge in Redis, then asks /lookup until the key
       is SUBSCRIBED)

The challenge is encrypted to the key's X25519 `encr_public_key` with the registry's own
encryption key (`bridge.beckn.encryption`); the registry's keys come from its record (a
`/lookup` of the signer of the on_subscribe, or `static_keys`). `/subscribe` is signed
with the key that signs now (the registry knows it already when this is a rotation; some
registries want the first key entered by their registrar before the first subscribe).

Every challenge is recorded in Redis (`obb:beckn:onboard:{key_id}`, answered or refused
and why), which is how the CLI learns what serve did, and what `bridge keys show` reports.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
import structlog
from aiohttp import web

from bridge import redisconn
from bridge.beckn import encryption, signing
from bridge.beckn.errors import AuthError, BecknError, InternalError, InvalidJson, SchemaError
from bridge.beckn.keyring import KeyEntry, KeyRing, OwnKeys, iso, load_ring
from bridge.beckn.registry import (
    KeyDirectory,
    RegistryUnavailable,
    lookup_records,
    record_key_id,
)
from bridge.config import Settings
from bridge.store import beckn_keys

log = structlog.get_logger("bridge.beckn.onboarding")

RECORD_TTL = 30 * 86400
SUBSCRIBED = "SUBSCRIBED"


class OnboardingError(Exception):
    """Subscribing did not work; the message is the CLI's one line."""


# --- the request (pure)


def _ts(dt: datetime) -> str:
    """2025-11-27T18:00:00.000Z: RFC 3339 with milliseconds, the form v1 registries write."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def subscription(settings: Settings, key_id: str, signing_public: str, encr_public: str,
                 valid_from: datetime, valid_until: datetime, nonce: str) -> dict[str, Any]:
    """The `/subscribe` body: the spec's Subscription (+ nonce), with the key id under the
    three names registries read (`unique_key_id`: Beckn-One / v1; `key_id`: the spec and
    beckn-onix; `pub_key_id`: beckn-onix's registry_entry.sh)."""
    body: dict[str, Any] = {
        "subscriber_id": settings.beckn_subscriber_id, "subscriber_url": settings.bpp_uri,
        "type": "BPP", "domain": settings.beckn_domain,
        "unique_key_id": key_id, "key_id": key_id, "pub_key_id": key_id,
        "signing_public_key": signing_public, "encr_public_key": encr_public,
        "valid_from": _ts(valid_from), "valid_until": _ts(valid_until),
        "country": settings.beckn_registry_country, "nonce": nonce,
    }
    if settings.beckn_registry_city:
        body["city"] = settings.beckn_registry_city
    return body


def registry_entry(settings: Settings, key_id: str, signing_public: str,
                   encr_public: str) -> dict[str, Any]:
    """What a registry (or a static key list) holds for us: to publish by hand where there
    is no `/subscribe` (a closed network's static_keys, the sandboxes' mock registry)."""
    return {"subscriber_id": settings.beckn_subscriber_id, "unique_key_id": key_id,
            "key_id": key_id, "type": "BPP", "domain": settings.beckn_domain,
            "subscriber_url": settings.bpp_uri, "signing_public_key": signing_public,
            "encr_public_key": encr_public}


def public_keys(entry: KeyEntry) -> tuple[str, str]:
    """(signing_public_key, encr_public_key) of one of our keys, base64 raw."""
    sign = signing.public_key_b64(signing.load_private_key(entry.signing_key).public_key())
    if not entry.encryption_key:
        raise signing.KeyFileError(f"key {entry.key_id} has no encryption key")
    enc = encryption.public_b64(encryption.load_encryption_key(entry.encryption_key)
                                .public_key())
    return sign, enc


# --- /on_subscribe (serve)


def _challenged_key(body: dict[str, Any], ring: KeyRing, now: datetime) -> str:
    """Which of our keys the challenge is for: the one the body names, else the newest
    pending key (a rotation being published), else the key that signs now."""
    named = record_key_id(body)
    if named:
        return named
    pending = sorted(ring.pending(), key=lambda e: e.created or datetime.min.replace(tzinfo=UTC))
    return pending[-1].key_id if pending else ring.signing_entry(now).key_id


async def _record(redis: aioredis.Redis, key_id: str, outcome: str, detail: str = "",
                  registry: str = "", status: str = "") -> None:
    key = beckn_keys.onboard(key_id)
    async with redisconn.transaction(redis, key) as pipe:  # a Cluster pipeline has no MULTI
        pipe.delete(key)
        pipe.hset(key, mapping={"at": repr(time.time()), "outcome": outcome, "detail": detail,
                                "registry": registry, "status": status})
        pipe.expire(key, RECORD_TTL)
        await pipe.execute()


async def on_subscribe(request: web.Request, settings: Settings, redis: aioredis.Redis,
                       keys: KeyDirectory, own: OwnKeys) -> web.Response:
    """`POST {bpp_uri}/on_subscribe`: check the registry's signature, decrypt the challenge
    with our key's X25519 key, answer `{"answer": ...}`. Refusals are Beckn NACKs (the
    middleware); each outcome is recorded for the CLI."""
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidJson()
    challenge = body.get("challenge")
    if not isinstance(challenge, str) or not challenge:
        raise SchemaError("challenge: a string is required", {"field": "challenge"})
    ring = own.ring()
    key_id = _challenged_key(body, ring, datetime.now(UTC))
    known = ring.get(key_id) is not None  # only our own keys get a record (no spam)
    status = str(body.get("status") or "")
    signer = ""
    try:
        header = signing.parse_header(request.headers.get("Authorization"))
        signer = header.subscriber_id
        expected = settings.beckn_registry_subscriber_id
        if expected and header.subscriber_id != expected:
            raise AuthError(f"on_subscribe must be signed by the registry {expected}",
                            {"reason": "not_registry"})
        sub, verifying = await keys.verifying_key(header.subscriber_id, header.key_id)
        signing.verify(header, raw, verifying, time.time(), skew=settings.beckn_max_clock_skew)
        if not known:
            raise SchemaError(f"{key_id} is not a key of {settings.beckn_subscriber_id}",
                              {"field": "pub_key_id"})
        if not sub.encr_public_key:
            raise InternalError(f"the registry's record ({sub.subscriber_id}|{sub.key_id}) has "
                                "no encr_public_key: add it to static_keys")
        try:
            registry_public = encryption.public_from_b64(sub.encr_public_key)
            answer = encryption.decrypt(challenge, own.encryption_key(key_id), registry_public)
        except encryption.ChallengeError as exc:
            raise SchemaError(f"the challenge does not decrypt with the encryption key of "
                              f"{key_id}: {exc}", {"field": "challenge"}) from exc
        except signing.KeyFileError as exc:
            raise InternalError(str(exc)) from exc
    except BecknError as exc:
        if known:
            await _record(redis, key_id, "refused", f"{exc.code} {exc.message}", signer, status)
        log.warning("beckn.on_subscribe.refused", key_id=key_id, registry=signer, code=exc.code,
                    reason=exc.message)
        raise
    await _record(redis, key_id, "answered", "", signer, status)
    log.info("beckn.on_subscribe.answered", key_id=key_id, registry=signer, status=status)
    return web.json_response({"answer": answer})


# --- /subscribe (CLI)


@dataclass(frozen=True)
class Subscribed:
    key_id: str
    status: str
    answered_at: float
    registry: str


async def subscribe(settings: Settings, redis: aioredis.Redis, http: aiohttp.ClientSession,
                    key_id: str, now: datetime | None = None) -> Subscribed:
    """Publish one of our keys: `/subscribe`, the registry's challenge answered by serve,
    then SUBSCRIBED at `/lookup`. OnboardingError (one line) otherwise."""
    if not settings.beckn_registry_url:
        raise OnboardingError("no registry: set beckn.registry_url (BRIDGE_BECKN_REGISTRY_URL)")
    now = now or datetime.now(UTC)
    try:
        ring = load_ring(settings)
        entry = ring.get(key_id)
        if entry is None:
            raise OnboardingError(f"no key {key_id!r} in the key ring (bridge keys show)")
        signing_public, encr_public = public_keys(entry)
        # signed with the key that signs now (for a rotation: the one the registry knows)
        current = ring.signing_entry(now)
        signer = signing.Signer(settings.beckn_subscriber_id, current.key_id,
                                signing.load_private_key(current.signing_key),
                                settings.beckn_signature_ttl)
    except signing.KeyFileError as exc:
        raise OnboardingError(f"{exc} (bridge keys generate)") from exc
    valid_from = entry.created or now
    valid_until = entry.valid_until or now + timedelta(days=settings.beckn_key_validity_days)
    body = subscription(settings, key_id, signing_public, encr_public, valid_from, valid_until,
                        str(uuid.uuid4()))
    raw = orjson.dumps(body)
    url = settings.beckn_registry_url.rstrip("/") + "/subscribe"
    started = time.time()
    await redis.delete(beckn_keys.onboard(key_id))
    headers = {"Content-Type": "application/json", "Authorization": signer.header(raw, started)}
    try:
        async with http.post(url, data=raw, headers=headers) as resp:
            text = await resp.text()
            answer = _json_or_none(text)
            refused = refusal(resp.status, answer, text)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise OnboardingError(f"cannot reach the registry at {url}: "
                              f"{str(exc) or type(exc).__name__}") from exc
    if refused:
        raise OnboardingError(f"the registry refused the subscription: {refused}")
    deadline = started + settings.beckn_subscribe_timeout
    challenge = await _wait_for_challenge(redis, key_id, started, deadline)
    if challenge.get("outcome") != "answered":
        raise OnboardingError(f"we refused the registry's on_subscribe for {key_id}: "
                              f"{challenge.get('detail') or 'no reason recorded'}")
    status = await _wait_for_status(settings, http, key_id, deadline)
    if status != SUBSCRIBED:
        raise OnboardingError(f"the registry did not confirm {key_id}: its status is {status} "
                              f"{settings.beckn_subscribe_timeout:g} s after our answer "
                              "(did it accept the answer to its challenge?)")
    return Subscribed(key_id, status, float(challenge.get("at", "0")),
                      challenge.get("registry", ""))


def _json_or_none(text: str) -> Any:
    try:
        return orjson.loads(text) if text.strip() else None
    except orjson.JSONDecodeError:
        return None


def refusal(status: int, answer: Any, text: str) -> str:
    """Why a registry's (or a CDS's) answer is a refusal ("" if it is not): an HTTP
    error, an `error` object, a NACK (the v1 `{"message": {"ack": {"status": "NACK"}}}`)."""
    error = answer.get("error") if isinstance(answer, dict) else None
    nack = isinstance(answer, dict) and (
        answer.get("ack_status") == "NACK"
        or (answer.get("message") or {}).get("ack", {}).get("status") == "NACK")
    if status < 300 and not error and not nack:
        return ""
    what = f"HTTP {status}"
    if isinstance(error, dict):
        code = error.get("code") or error.get("errorCode") or ""
        msg = error.get("message") or error.get("errorMessage") or ""
        return f"{what}: {code} {msg}".strip()
    if isinstance(error, str):
        return f"{what}: {error}"
    return f"{what}: {' '.join(text.split())[:200]}" if text.strip() else what


async def _wait_for_challenge(redis: aioredis.Redis, key_id: str, started: float,
                              deadline: float) -> dict[str, str]:
    key = beckn_keys.onboard(key_id)
    while True:
        rec = {k.decode(): v.decode() for k, v in (await redis.hgetall(key)).items()}
        if rec and float(rec.get("at", "0")) >= started - 1.0:
            return rec
        if time.time() > deadline:
            raise OnboardingError(
                f"no on_subscribe from the registry within {deadline - started:g} s: it calls "
                f"our subscriber_url + /on_subscribe; is bridge serve reachable there?")
        await asyncio.sleep(0.1)


async def _wait_for_status(settings: Settings, http: aiohttp.ClientSession, key_id: str,
                           deadline: float) -> str:
    status = "not listed"
    while True:
        try:
            records = await lookup_records(http, settings.beckn_registry_url,
                                           settings.beckn_subscriber_id, key_id)
        except RegistryUnavailable as exc:
            raise OnboardingError(str(exc)) from exc
        if records:
            status = str(records[0].get("status") or SUBSCRIBED).upper()
            if status == SUBSCRIBED:
                return status
        if time.time() > deadline:
            return status
        await asyncio.sleep(0.25)


async def challenge_record(redis: aioredis.Redis, key_id: str) -> dict[str, str]:
    """The last on_subscribe for one of our keys, as recorded ({} if none)."""
    return {k.decode(): v.decode()
            for k, v in (await redis.hgetall(beckn_keys.onboard(key_id))).items()}


def record_line(rec: dict[str, str]) -> str:
    if not rec:
        return "no challenge seen"
    at = iso(datetime.fromtimestamp(float(rec.get("at", "0")), UTC))
    if rec.get("outcome") == "answered":
        return f"challenge from {rec.get('registry') or '?'} answered at {at}"
    return f"challenge refused at {at}: {rec.get('detail', '')}"
