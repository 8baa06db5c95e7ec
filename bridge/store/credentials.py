"""Redis repository of credentials: invites (token A), registered platforms and their parties.

Our own tokens (A and C, the ones other platforms present to us) are stored
only as SHA-256 hashes: a copy of Redis does not let anyone call the bridge.
The other platform's token (the one we present to it) has to be stored as is.
Key layout: `bridge.store.keys`.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis

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

    @property
    def parties(self) -> frozenset[tuple[str, str]]:
        return frozenset((r["country_code"].upper(), r["party_id"].upper()) for r in self.roles)

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
        }

    @classmethod
    def from_redis(cls, conn_id: str, h: dict[bytes, bytes]) -> Connection:
        def s(k: str) -> str:
            return h.get(k.encode(), b"").decode()

        return cls(id=conn_id, their_token=s("token"), versions_url=s("versions_url"),
                   version_url=s("version_url"), endpoints=orjson.loads(s("endpoints") or "[]"),
                   roles=orjson.loads(s("roles") or "[]"), our_token_hash=s("token_hash"),
                   created=s("created"))


class PartyTaken(Exception):
    """A party in the credentials is already served by another registered platform."""


class CredentialsStore:
    """`cache_seconds`: how long a process may reuse a token C it has resolved.

    Every push is authenticated; without the cache that is one more Redis
    round trip per request (a third of the cost of an EVSE status PATCH). The
    price is bounded: a token rotated or deleted through another replica keeps
    working on this one for at most `cache_seconds` (0 turns the cache off).
    Changes made through this process drop its cache entry at once.
    """

    def __init__(self, redis: aioredis.Redis, cache_seconds: float = 2.0) -> None:
        self.redis = redis
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def create_invite(self, country_code: str, party_id: str) -> str:
        """A one-time token A for a CPO party to register with (§7.2.1)."""
        token = new_token()
        await self.redis.hset(keys.token(token_hash(token)), mapping={
            "kind": "A", "party": f"{country_code.upper()}:{party_id.upper()}",
            "created": datetime.now(UTC).isoformat()})
        return token

    async def authenticate(self, token: str) -> Principal | None:
        th = token_hash(token)
        hit = self._cache.get(th)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        principal = await self._lookup(th)
        if principal is not None and principal.kind == "C" and self.cache_seconds > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[th] = (now + self.cache_seconds, principal)
        return principal

    async def _lookup(self, th: str) -> Principal | None:
        h = await self.redis.hgetall(keys.token(th))
        if not h:
            return None
        kind = h[b"kind"].decode()
        if kind == "A":
            cc, pid = h[b"party"].decode().split(":")
            return Principal(id=f"invite:{cc}-{pid}", kind="A", invited=frozenset({(cc, pid)}))
        # The token record carries the parties (written with the connection), so
        # authenticating a push costs one round trip.
        parties = frozenset((p[:2], p[3:]) for p in h.get(b"parties", b"").decode().split(",") if p)
        return Principal(id=h[b"conn"].decode(), kind="C", parties=parties)

    async def get_connection(self, conn_id: str) -> Connection | None:
        h = await self.redis.hgetall(keys.conn(conn_id))
        return Connection.from_redis(conn_id, h) if h else None

    async def connection_for_party(self, country_code: str, party_id: str) -> Connection | None:
        conn_id = await self.redis.get(keys.party(country_code, party_id))
        return await self.get_connection(conn_id.decode()) if conn_id else None

    async def connections(self) -> list[Connection]:
        ids = sorted(m.decode() for m in await self.redis.smembers(keys.CONNS))
        out = []
        for conn_id in ids:
            conn = await self.get_connection(conn_id)
            if conn is not None:
                out.append(conn)
        return out

    async def save_connection(self, conn: Connection, our_token: str | None,
                              consume_invite: str | None = None,
                              previous_token_hash: str | None = None) -> None:
        """Store a registration atomically: the connection, its parties, our new
        token (if any), and the invite token A consumed / the old token C dropped."""
        if not conn.id:
            conn.id = uuid.uuid4().hex
        if not conn.created:
            conn.created = datetime.now(UTC).isoformat()
        await self.check_parties(conn)
        if our_token is not None:
            conn.our_token_hash = token_hash(our_token)
        self._cache.clear()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.conn(conn.id))
            pipe.hset(keys.conn(conn.id), mapping=conn.to_redis())
            pipe.sadd(keys.CONNS, conn.id)
            for cc, pid in conn.parties:
                pipe.set(keys.party(cc, pid), conn.id)
            parties = ",".join(f"{cc}:{pid}" for cc, pid in sorted(conn.parties))
            if conn.our_token_hash:
                pipe.hset(keys.token(conn.our_token_hash),
                          mapping={"kind": "C", "conn": conn.id, "parties": parties})
            if consume_invite is not None:
                pipe.delete(keys.token(token_hash(consume_invite)))
            if previous_token_hash and previous_token_hash != conn.our_token_hash:
                pipe.delete(keys.token(previous_token_hash))
            await pipe.execute()

    async def check_parties(self, conn: Connection) -> None:
        for cc, pid in sorted(conn.parties):
            owner = await self.redis.get(keys.party(cc, pid))
            if owner is not None and owner.decode() != conn.id:
                raise PartyTaken(f"party {cc}-{pid} is already registered by another platform")

    async def consume_invite(self, token: str) -> bool:
        """Atomically take token A out of use; False if someone else already did."""
        return bool(await self.redis.delete(keys.token(token_hash(token))))

    async def delete_connection(self, conn: Connection) -> None:
        self._cache.clear()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.conn(conn.id))
            pipe.srem(keys.CONNS, conn.id)
            for cc, pid in conn.parties:
                pipe.delete(keys.party(cc, pid))
            if conn.our_token_hash:
                pipe.delete(keys.token(conn.our_token_hash))
            await pipe.execute()
