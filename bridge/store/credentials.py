"""Redis repository of credentials: invites (token A), registered platforms and their parties.

Our own tokens (A and C, the ones other platforms present to us) are stored
only as SHA-256 hashes: a copy of Redis does not let anyone call the bridge.
The other platform's token (the one we present to it) has to be stored as is.
Key layout: `bridge.store.keys`.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis

from bridge import redisconn
from bridge.ocpi.transport import Principal
from bridge.store import keys


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh credentials token: 256 bits, URL-safe, 43 characters (<= CiString(64))."""
    return secrets.token_urlsafe(32)


@dataclass
class Connection:
    """A platform registered with the bridge by a credentials exchange."""

    id: str
    their_token: str
    versions_url: str
    version_url: str = ""
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    roles: list[dict[str, Any]] = field(default_factory=list)
    our_token_hash: str = ""
    created: str = ""
    # "registering": the bridge's own registration with this CPO is under way (token B
    # handed out, roles not known yet); "" once registered.
    state: str = ""

    @property
    def parties(self) -> frozenset[tuple[str, str]]:
        return frozenset((r["country_code"].upper(), r["party_id"].upper()) for r in self.roles)

    @property
    def versions(self) -> str:
        """The version in use, from its details URL (`.../2.2.1`)."""
        tail = self.version_url.rstrip("/").rsplit("/", 1)[-1]
        return tail if tail[:1].isdigit() else "2.2.1"

    def endpoint(self, module: str, role: str) -> str | None:
        for ep in self.endpoints:
            if ep.get("identifier") == module and ep.get("role") == role:
                return str(ep["url"])
        # 2.2.1 allows an endpoint without matching role in older platforms: take any.
        for ep in self.endpoints:
            if ep.get("identifier") == module:
                return str(ep["url"])
        return None

    def to_redis(self) -> dict[str, str]:
        return {
            "token": self.their_token,
            "versions_url": self.versions_url,
            "version_url": self.version_url,
            "endpoints": orjson.dumps(self.endpoints).decode(),
            "roles": orjson.dumps(self.roles).decode(),
            "token_hash": self.our_token_hash,
            "created": self.created,
            "state": self.state,
        }

    @classmethod
    def from_redis(cls, conn_id: str, h: dict[bytes, bytes]) -> Connection:
        def s(k: str) -> str:
            return h.get(k.encode(), b"").decode()

        return cls(id=conn_id, their_token=s("token"), versions_url=s("versions_url"),
                   version_url=s("version_url"), endpoints=orjson.loads(s("endpoints") or "[]"),
                   roles=orjson.loads(s("roles") or "[]"), our_token_hash=s("token_hash"),
                   created=s("created"), state=s("state"))


class PartyTaken(Exception):
    """A party in the credentials is already served by another registered platform."""


class InviteSpent(Exception):
    """Token A was used up by a concurrent registration."""


def _parties(text: str) -> frozenset[tuple[str, str]]:
    return frozenset((p[:2], p[3:]) for p in text.split(",") if len(p) == 6)


class CredentialsStore:
    """`cache_seconds`: how long a process may reuse a token C it has resolved.

    Every push is authenticated; without the cache that is one more Redis
    round trip per request (a third of the cost of an EVSE status PATCH).
    Only complete answers are cached: a registered platform's token with its
    parties, never a registration in progress nor an unknown token. A refusal
    is never taken from the cache: when a cached principal lacks the party a
    request is for, the OCPI middleware asks `authenticate_fresh` (Redis, and a
    wait while a registration is completing) before it refuses.

    Across processes: every change of a registration is published on
    `keys.CRED_CHANGED` after it is committed, and a serving process runs
    `follow_changes`, which drops its cache on each message. The cache is used
    only while that subscription is up (`_live`), so a token rotated or deleted
    by another process (the CLI, another replica) stops working here as soon as
    the message arrives, not `cache_seconds` later. A process that does not
    follow changes (the CLI) does not cache at all.
    """

    def __init__(self, redis: aioredis.Redis, cache_seconds: float = 2.0,
                 pending_wait: float = 5.0) -> None:
        self.redis = redis
        self.cache_seconds = cache_seconds
        self.pending_wait = pending_wait
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._seen: dict[str, float] = {}
        self._live = False  # subscribed to CRED_CHANGED: caching is safe

    async def follow_changes(self, stop: asyncio.Event) -> None:
        """Drop the token cache whenever any process changes a registration. Runs for
        the life of a serving process; while unsubscribed (Redis away) nothing is cached."""
        backoff = 0.1
        while not stop.is_set():
            pubsub = None
            try:
                pubsub = await redisconn.pubsub(self.redis)
                await pubsub.subscribe(keys.CRED_CHANGED)
                self._cache.clear()
                self._live = True
                backoff = 0.1
                while not stop.is_set():
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=1.0)
                    if message is not None:
                        self._cache.clear()
            except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
                pass
            finally:
                self._live = False
                self._cache.clear()
                try:
                    if pubsub is not None:
                        await pubsub.aclose()
                except Exception:  # the connection may already be gone
                    pass
            if not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                except TimeoutError:
                    backoff = min(backoff * 2, 5.0)

    async def _changed(self, conn_id: str) -> None:
        self._cache.clear()
        await redisconn.publish(self.redis, keys.CRED_CHANGED, conn_id)

    async def create_invite(self, country_code: str, party_id: str,
                            *more: tuple[str, str]) -> str:
        """A one-time token A for one CPO platform to register with (§7.2.1). It may
        register exactly the parties named here (one, or several on one platform)."""
        token = new_token()
        parties = sorted({(country_code.upper(), party_id.upper()),
                          *((c.upper(), p.upper()) for c, p in more)})
        await self.redis.hset(keys.token(token_hash(token)), mapping={
            "kind": "A", "party": ",".join(f"{c}:{p}" for c, p in parties),
            "created": datetime.now(UTC).isoformat()})
        return token

    async def authenticate(self, token: str) -> Principal | None:
        th = token_hash(token)
        hit = self._cache.get(th)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        principal = await self._lookup(th)
        if (principal is not None and principal.kind == "C" and principal.parties
                and not principal.pending and self.cache_seconds > 0 and self._live):
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[th] = (now + self.cache_seconds, principal)
        return principal

    async def authenticate_fresh(self, token: str) -> Principal | None:
        """The token as Redis has it now, past the cache; while its registration is
        completing (our `bridge register`: the CPO may push before we have stored the
        roles it answered), wait up to `pending_wait` seconds for it to complete."""
        th = token_hash(token)
        self._cache.pop(th, None)
        deadline = time.monotonic() + self.pending_wait
        principal = await self._lookup(th)
        while principal is not None and principal.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            principal = await self._lookup(th)
        return principal

    async def _lookup(self, th: str) -> Principal | None:
        h = await self.redis.hgetall(keys.token(th))
        if not h:
            return None
        kind = h[b"kind"].decode()
        if kind == "A":
            invited = _parties(h[b"party"].decode())
            names = ",".join(f"{c}-{p}" for c, p in sorted(invited))
            return Principal(id=f"invite:{names}", kind="A", invited=invited)
        # The token record carries the parties (written with the connection), so
        # authenticating a push costs one round trip.
        return Principal(id=h[b"conn"].decode(), kind="C",
                         parties=_parties(h.get(b"parties", b"").decode()),
                         pending=h.get(b"pending") == b"1")

    async def note(self, parties: frozenset[tuple[str, str]] | set[tuple[str, str]],
                   *, error: str | None = None, what: str = "") -> None:
        """Remember the last push (at most once a second per party and process: this
        is on the push path) or the last error answered, for `bridge cpo list`."""
        now = time.monotonic()
        if error is None and all(self._seen.get(keys.party_stats(cc, pid), 0.0) > now
                                 for cc, pid in parties):
            return  # noted less than a second ago: nothing to write (the common case)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        async with self.redis.pipeline(transaction=False) as pipe:
            for cc, pid in parties:
                key = keys.party_stats(cc, pid)
                if error is not None:
                    pipe.hset(key, mapping={"last_error": error[:300], "last_error_at": stamp})
                elif self._seen.get(key, 0.0) <= now:
                    self._seen[key] = now + 1.0
                    pipe.hset(key, mapping={"last_push": stamp, "last_push_what": what[:100]})
            if len(pipe):
                await pipe.execute()

    async def stats(self, cc: str, pid: str) -> dict[str, str]:
        h = await self.redis.hgetall(keys.party_stats(cc, pid))
        return {k.decode(): v.decode() for k, v in h.items()}

    async def get_connection(self, conn_id: str) -> Connection | None:
        h = await self.redis.hgetall(keys.conn(conn_id))
        return Connection.from_redis(conn_id, h) if h else None

    async def connection_for_party(self, country_code: str, party_id: str) -> Connection | None:
        conn_id = await self.redis.get(keys.party(country_code, party_id))
        return await self.get_connection(conn_id.decode()) if conn_id else None

    async def connections(self) -> list[Connection]:
        ids = sorted(m.decode() for m in await self.redis.smembers(keys.conns()))
        out = []
        for conn_id in ids:
            conn = await self.get_connection(conn_id)
            if conn is not None:
                out.append(conn)
        return out

    async def save_connection(self, conn: Connection, our_token: str | None,
                              consume_invite: str | None = None,
                              previous_token_hash: str | None = None) -> list[Connection]:
        """Store a registration atomically: the connection, its parties, our new
        token (if any), and the invite token A consumed / the old token C dropped.

        A party held by another connection of the *same platform* (same versions
        URL: the platform registering again, e.g. after losing its state) moves to
        this one, and that connection is dropped in the same transaction (a clean
        replace); held by another platform, it is `PartyTaken`. Returns the
        connections replaced."""
        if not conn.id:
            conn.id = uuid.uuid4().hex
        if not conn.created:
            conn.created = datetime.now(UTC).isoformat()
        if our_token is not None:
            conn.our_token_hash = token_hash(our_token)
        self._cache.clear()
        party_keys = [keys.party(cc, pid) for cc, pid in sorted(conn.parties)]
        async with redisconn.transaction(self.redis, keys.conns()) as pipe:
            try:
                invite_key = keys.token(token_hash(consume_invite)) if consume_invite else None
                await pipe.watch(*party_keys, keys.conn(conn.id), *filter(None, [invite_key]))
                if invite_key is not None and not await pipe.exists(invite_key):
                    raise InviteSpent("token A was used by a concurrent registration")
                replaced = await self._replaced(pipe, conn)
                pipe.multi()
                for old in replaced:
                    self._drop(pipe, old, keep_parties=conn.parties)
                pipe.delete(keys.conn(conn.id))
                pipe.hset(keys.conn(conn.id), mapping=conn.to_redis())
                pipe.sadd(keys.conns(), conn.id)
                for cc, pid in conn.parties:
                    pipe.set(keys.party(cc, pid), conn.id)
                parties = ",".join(f"{cc}:{pid}" for cc, pid in sorted(conn.parties))
                if conn.our_token_hash:
                    record = {"kind": "C", "conn": conn.id, "parties": parties,
                              "pending": "1" if conn.state == "registering" else "0"}
                    pipe.hset(keys.token(conn.our_token_hash), mapping=record)
                if consume_invite is not None:
                    pipe.delete(keys.token(token_hash(consume_invite)))
                if previous_token_hash and previous_token_hash != conn.our_token_hash:
                    pipe.delete(keys.token(previous_token_hash))
                await pipe.execute()
            except aioredis.WatchError as exc:
                raise PartyTaken("another registration of the same parties happened at "
                                 "the same time; try again") from exc
        await self._changed(conn.id)
        return replaced

    async def _replaced(self, reader: Any, conn: Connection) -> list[Connection]:
        owners = set()
        for cc, pid in sorted(conn.parties):
            owner = await reader.get(keys.party(cc, pid))
            if owner is not None and owner.decode() != conn.id:
                owners.add(owner.decode())
        replaced = []
        for owner_id in sorted(owners):
            h = await reader.hgetall(keys.conn(owner_id))
            old = Connection.from_redis(owner_id, h) if h else None
            if old is None:
                continue  # a dangling party key: taken over
            if old.versions_url.rstrip("/") != conn.versions_url.rstrip("/"):
                taken = sorted(old.parties & conn.parties)
                names = ", ".join(f"{c}-{p}" for c, p in taken)
                raise PartyTaken(f"party {names} is already registered by another platform "
                                 f"({old.versions_url}); remove it first "
                                 f"(bridge cpo remove {names.split(',')[0]})")
            replaced.append(old)
        return replaced

    async def check_parties(self, conn: Connection) -> list[Connection]:
        """PartyTaken if a party is held by another platform; else the connections of the
        same platform that saving `conn` would replace."""
        return await self._replaced(self.redis, conn)

    def _drop(self, pipe: Any, conn: Connection,
              keep_parties: frozenset[tuple[str, str]] = frozenset()) -> None:
        pipe.delete(keys.conn(conn.id))
        pipe.srem(keys.conns(), conn.id)
        for cc, pid in conn.parties - keep_parties:
            pipe.delete(keys.party(cc, pid))
        if conn.our_token_hash:
            pipe.delete(keys.token(conn.our_token_hash))

    async def add_token(self, conn: Connection, token: str) -> None:
        """A second token of ours for `conn` (a rotation under way)."""
        parties = ",".join(f"{cc}:{pid}" for cc, pid in sorted(conn.parties))
        await self.redis.hset(keys.token(token_hash(token)), mapping={
            "kind": "C", "conn": conn.id, "parties": parties, "pending": "0"})
        await self._changed(conn.id)

    async def drop_token(self, token: str) -> None:
        await self.redis.delete(keys.token(token_hash(token)))
        await self._changed("")

    async def consume_invite(self, token: str) -> bool:
        """Atomically take token A out of use; False if someone else already did."""
        return bool(await self.redis.delete(keys.token(token_hash(token))))

    async def delete_connection(self, conn: Connection) -> None:
        """Drop a registration: the connection, its tokens and party records (only the
        party records that still point at it). The objects it pushed stay."""
        self._cache.clear()
        owned = []
        for cc, pid in sorted(conn.parties):
            owner = await self.redis.get(keys.party(cc, pid))
            if owner is None or owner.decode() == conn.id:
                owned.append((cc, pid))
        async with redisconn.transaction(self.redis, keys.conns()) as pipe:
            self._drop(pipe, conn, keep_parties=conn.parties - frozenset(owned))
            for cc, pid in owned:
                pipe.delete(keys.party_stats(cc, pid))
            await pipe.execute()
        await self._changed(conn.id)
