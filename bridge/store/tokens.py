"""Redis repository of the eMSP's own OCPI Tokens and of the commands it sends.

Tokens are issued by the bridge (one per Beckn order, or configured RFID
cards); the orders layer decides what the CPO's real-time authorization
answers by setting `allowed`, the location restriction and the
authorization reference here, so the OCPI package never imports the orders.

    obb:emsp:token:{TYPE}:{uid}  HASH d = Token JSON, allowed = AllowedType,
                                      loc = LocationReferences JSON (optional),
                                      ref = authorization_reference, order = order id
    obb:emsp:tokens              ZSET "{TYPE}:{uid}" -> last_updated ms (GET list)
    obb:emsp:cmd:{uid}           HASH a command we sent: command, cc, pid, order,
                                      response (CommandResponse JSON), result
                                      (CommandResult JSON), sent, answered
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from bridge import redisconn
from bridge.ocpi.models import AllowedType, LocationReferences, Token, format_datetime
from bridge.store import keys, shards
from bridge.store.keys import PREFIX

TOKENS = f"{PREFIX}emsp:tokens"  # one Redis, one shard; code: tokens_index(shard)

# Shards (docs/scaling.md): a token's hash and its list entry are in the token's shard
# (one list per shard; GET /tokens merges them by last_updated); a command's record and
# its change event are in the command uid's shard.


def _token_ref(token_type: str, uid: str) -> str:
    return f"{token_type.upper()}:{keys.norm_id(uid)}"


def token_key(token_type: str, uid: str) -> str:
    ref = _token_ref(token_type, uid)
    return shards.current().entity_key(ref, f"emsp:token:{ref}")


def tokens_index(shard: int = 0) -> str:
    return shards.current().key(shard, "emsp:tokens")


def command_shard(uid: str) -> int:
    return shards.current().of(f"cmd:{uid}")


def command_key(uid: str) -> str:
    return shards.current().key(command_shard(uid), f"emsp:cmd:{uid}")


@dataclass(frozen=True)
class TokenRecord:
    token: Token
    allowed: AllowedType
    location: LocationReferences | None
    authorization_reference: str | None
    order_id: str | None


class TokenStore:
    def __init__(self, redis: aioredis.Redis, events_maxlen: int = 200_000) -> None:
        self.redis = redis
        self.events_maxlen = events_maxlen

    async def put(self, token: Token, *, allowed: AllowedType = AllowedType.ALLOWED,
                  location: LocationReferences | None = None,
                  authorization_reference: str | None = None,
                  order_id: str | None = None) -> None:
        member = f"{token.type.value}:{keys.norm_id(token.uid)}"
        mapping: dict[str, Any] = {
            "d": orjson.dumps(token.model_dump(mode="json", exclude_none=True)),
            "allowed": allowed.value,
            "loc": orjson.dumps(location.model_dump(mode="json", exclude_none=True))
            if location else b"",
            "ref": authorization_reference or "",
            "order": order_id or "",
        }
        key = token_key(token.type.value, token.uid)
        index = tokens_index(shards.current().of(_token_ref(token.type.value, token.uid)))
        async with redisconn.transaction(self.redis, key) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=mapping)
            pipe.zadd(index, {member: int(token.last_updated.timestamp() * 1000)})
            await pipe.execute()

    async def set_allowed(self, token_type: str, uid: str, allowed: AllowedType,
                          now: datetime) -> bool:
        """Change what authorization answers (e.g. the order ended); bumps last_updated."""
        rec = await self.get(token_type, uid)
        if rec is None:
            return False
        token = rec.token.model_copy(update={"last_updated": now,
                                             "valid": allowed is not AllowedType.BLOCKED})
        await self.put(token, allowed=allowed, location=rec.location,
                       authorization_reference=rec.authorization_reference,
                       order_id=rec.order_id)
        return True

    async def get(self, token_type: str, uid: str) -> TokenRecord | None:
        h = await self.redis.hgetall(token_key(token_type, uid))
        if not h:
            return None
        return TokenRecord(
            token=Token.model_validate_json(h[b"d"]),
            allowed=AllowedType(h[b"allowed"].decode()),
            location=LocationReferences.model_validate_json(h[b"loc"]) if h.get(b"loc") else None,
            authorization_reference=h.get(b"ref", b"").decode() or None,
            order_id=h.get(b"order", b"").decode() or None,
        )

    async def list_page(self, offset: int, limit: int, date_from: datetime | None,
                        date_to: datetime | None) -> tuple[int, list[bytes]]:
        lo = int(date_from.timestamp() * 1000) if date_from else "-inf"
        hi = f"({int(date_to.timestamp() * 1000)}" if date_to else "+inf"
        layout = shards.current()
        total = sum([int(await self.redis.zcount(tokens_index(s), lo, hi)) for s in layout.shards])
        if limit == 0:
            return total, []
        if layout.count == 1:
            members = await self.redis.zrangebyscore(tokens_index(0), lo, hi, start=offset,
                                                     num=limit)
        else:  # each shard's first offset + limit, merged in (last_updated, member) order
            found: list[tuple[float, bytes]] = []
            for s in layout.shards:
                rows = await self.redis.zrangebyscore(tokens_index(s), lo, hi, start=0,
                                                      num=offset + limit, withscores=True)
                found += [(float(score), m) for m, score in rows]
            members = [m for _, m in sorted(found)[offset:offset + limit]]
        async with self.redis.pipeline(transaction=False) as pipe:
            for m in members:
                ttype, uid = m.decode().split(":", 1)
                pipe.hget(token_key(ttype, uid), "d")
            raws = await pipe.execute()
        return total, [r for r in raws if r is not None]

    # ---------------------------------------------------------------- commands

    async def record_command(self, uid: str, command: str, party: tuple[str, str],
                             order_id: str | None, response: dict[str, Any] | None,
                             now: datetime) -> None:
        await self.redis.hset(command_key(uid), mapping={
            "command": command, "cc": party[0], "pid": party[1], "order": order_id or "",
            "response": orjson.dumps(response) if response is not None else b"",
            "sent": format_datetime(now)})
        await self.redis.expire(command_key(uid), 7 * 86400)

    async def get_command(self, uid: str) -> dict[str, str] | None:
        h = await self.redis.hgetall(command_key(uid))
        return {k.decode(): v.decode() for k, v in h.items()} if h else None

    async def record_result(self, uid: str, result: dict[str, Any], now: datetime) -> bool:
        """Store a CommandResult and announce it on the change stream, once, in one
        MULTI: a process killed between the two would otherwise keep a result that
        nothing ever acts on (the CPO's retry is then a duplicate). The first result
        of a uid is the one that counts; False for any later one (a CPO retrying its
        POST, or the result of the same command sent again)."""
        key = command_key(uid)
        async with redisconn.transaction(self.redis, key) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    if await pipe.hexists(key, "result"):
                        return False
                    h = await pipe.hmget(key, "command", "cc", "pid", "order")
                    command, cc, pid, order = (v.decode() if v else "" for v in h)
                    pipe.multi()
                    pipe.hset(key, mapping={"result": orjson.dumps(result),
                                            "answered": format_datetime(now)})
                    pipe.xadd(keys.events(command_shard(uid)),
                              {"module": "commands", "op": "result", "id": uid,
                               "command": command, "cc": cc, "pid": pid, "order": order,
                               "result": str(result.get("result", ""))},
                              maxlen=self.events_maxlen, approximate=True)
                    await pipe.execute()
                    return True
                except WatchError:
                    continue
