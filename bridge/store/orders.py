"""Redis repository of orders, and the slot calendar of each EVSE.

    obb:order:{transaction_id}          HASH   d = Order JSON, v = its version
                                               (one order per Beckn transaction)
    obb:order:id:{order_id}             STRING transaction id
    obb:order:session:{CC}:{PID}:{sid}  STRING transaction id of the OCPI session's order
    obb:order:active                    ZSET   transaction id -> last session update ms
                                               (the interruption watchdog scans it)
    obb:order:inflight                  ZSET   transaction id -> next reconciliation ms,
                                               from START requested until the order ends
                                               (bridge/journey/reconcile.py)
    obb:slots:{CC}:{PID}:{evse_uid}     ZSET   "{order_id}|{end_ms}" -> start ms

Updates are optimistic: `update()` reads the order, applies the change, and
writes it with a Lua compare-and-set on the version (two round trips); when
another process wrote the same order in between it re-reads and re-applies
the change, so two workers handling two events of one order never lose one of
them. A change function that raises leaves the order as it was. The same Lua
step writes the change's effects (the outbox: callback records, SMS, jobs;
`bridge/store/effects.py`), so a change and what it causes happen together.

Shards (docs/scaling.md): an order is in its transaction's shard, with its effects and
the active and in-flight sets (one per shard; the watchdog and the reconciler read
them all). The order-id and session lookups are in their own shards: then they are
written just before the step (idempotent; a lookup that points at an order which does
not say so finds nothing), not inside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from bridge.crashpoints import crash_point
from bridge.orders import State
from bridge.store import shards
from bridge.store.beckn_keys import txn_shard
from bridge.store.effects import LUA_RUN, Effects

P = "obb:"
ACTIVE = f"{P}order:active"  # one Redis, one shard; code: active_key(txn), active_keys()
INFLIGHT = f"{P}order:inflight"


def order_key(txn: str) -> str:
    return shards.current().key(txn_shard(txn), f"order:{txn}")


def order_id_key(order_id: str) -> str:
    return shards.current().entity_key(f"oid:{order_id}", f"order:id:{order_id}")


def session_key(cc: str, pid: str, sid: str) -> str:
    ref = f"{cc.upper()}:{pid.upper()}:{sid.lower()}"
    return shards.current().entity_key(f"sid:{ref}", f"order:session:{ref}")


def active_key(txn: str) -> str:
    return shards.current().key(txn_shard(txn), "order:active")


def inflight_key(txn: str) -> str:
    return shards.current().key(txn_shard(txn), "order:inflight")


def active_keys() -> list[str]:
    layout = shards.current()
    return [layout.key(s, "order:active") for s in layout.shards]


def inflight_keys() -> list[str]:
    layout = shards.current()
    return [layout.key(s, "order:inflight") for s in layout.shards]


def _lookups_apart() -> bool:
    """The lookups are not in the order's slot (see the module docstring)."""
    return shards.current().tagged


def slots_key(cc: str, pid: str, evse_uid: str) -> str:
    return f"{P}slots:{cc.upper()}:{pid.upper()}:{evse_uid.lower()}"


class OrderItem(BaseModel):
    item_id: str
    cc: str
    pid: str
    location_id: str
    evse_uid: str
    evse_id: str | None = None
    connector_id: str
    tariff_id: str | None = None
    time_zone: str = "Asia/Kolkata"
    max_power_kw: float | None = None
    connector_type: str | None = None
    location_name: str | None = None
    address: str | None = None
    latitude: str | None = None
    longitude: str | None = None
    provider_name: str | None = None
    standard: str | None = None  # OCPI ConnectorType, exact
    power_type: str | None = None  # OCPI PowerType
    offer: dict[str, Any] | None = None  # the catalog offer accepted at select (beckn:Offer)
    provider_logo: str | None = None
    city: str | None = None
    status: str | None = None  # the EVSE's OCPI status at select


class Order(BaseModel):
    """Everything the bridge knows about one Beckn order. Money as strings of Decimals."""

    id: str
    transaction_id: str
    bap_id: str
    bap_uri: str
    profile: str | None = None  # wire profile (bridge/beckn/profiles.py); None: the BAP's now
    state: State = State.DRAFT
    created: datetime
    updated: datetime
    version: int = 0
    item: OrderItem | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    quote: dict[str, Any] | None = None
    customer: dict[str, Any] = Field(default_factory=dict)
    buyer_finder_fee: dict[str, Any] | None = None
    payment: dict[str, Any] = Field(default_factory=dict)
    otp_hash: str | None = None
    otp_attempts: int = 0
    token_uid: str | None = None
    reservation_id: str | None = None
    slot: dict[str, str] | None = None
    commands: dict[str, Any] = Field(default_factory=dict)
    session: dict[str, Any] = Field(default_factory=dict)
    track: dict[str, Any] = Field(default_factory=dict)
    interrupted_since: datetime | None = None
    cdr_id: str | None = None
    settlement: dict[str, Any] | None = None
    rating: dict[str, Any] | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)


# Reserve a slot if no other order's slot on that EVSE overlaps it.
# KEYS[1] slots zset; ARGV: member, start ms, end ms, order id. Returns 1 taken, 0 conflict.
_RESERVE = """
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])) do
  local sep = string.find(m, '|', 1, true)
  if tonumber(string.sub(m, sep + 1)) > tonumber(ARGV[2]) and string.sub(m, 1, sep - 1) ~= ARGV[4] then
    return 0
  end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""


# Compare-and-set of an order, with its effects (the outbox, bridge/store/effects.py).
# KEYS[1] order hash, KEYS[2] session index key or KEYS[1] again (none to write here: a
# key of another slot is refused on a Cluster, even an empty name), KEYS[3..] effects;
# ARGV: expected version, new version, JSON, transaction id, then the effects.
# Returns 1 written (and the effects with it), 0 conflict (nothing written).
_CAS = LUA_RUN + """
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
if KEYS[2] ~= KEYS[1] then redis.call('SET', KEYS[2], ARGV[4]) end
run_effects(2, 5)
return 1
"""
# A new order: KEYS[1] order hash, KEYS[2] order id key or KEYS[1] again (written before),
# KEYS[3..] effects; ARGV: version, JSON, transaction id, then the effects. 1 created, 0
# the transaction has an order.
_CREATE = LUA_RUN + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
if KEYS[2] ~= KEYS[1] then redis.call('SET', KEYS[2], ARGV[3]) end
run_effects(2, 4)
return 1
"""

Change = Callable[[Order], Awaitable[Order] | Order]
EffectsOf = Callable[[Order, Order], Effects | None]


class OrderNotFound(Exception):
    pass


class OrderStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._reserve = redis.register_script(_RESERVE)
        self._cas = redis.register_script(_CAS)
        self._create = redis.register_script(_CREATE)

    async def get(self, txn: str) -> Order | None:
        raw = await self.redis.hget(order_key(txn), "d")
        return Order.model_validate_json(raw) if raw else None

    async def by_order_id(self, order_id: str) -> Order | None:
        txn = await self.redis.get(order_id_key(order_id))
        order = await self.get(txn.decode()) if txn else None
        return order if order is not None and order.id == order_id else None

    async def by_session(self, cc: str, pid: str, sid: str) -> Order | None:
        txn = await self.redis.get(session_key(cc, pid, sid))
        order = await self.get(txn.decode()) if txn else None
        if order is None or order.item is None or str(order.session.get("id", "")).lower() != \
                sid.lower() or (order.item.cc, order.item.pid) != (cc.upper(), pid.upper()):
            return None
        return order

    async def create(self, order: Order, effects: Effects | None = None) -> bool:
        """Store a new order (and its effects) in one step; False if the transaction
        already has one."""
        fx = effects or Effects()
        keys, argv = fx.encode(2, txn_shard(order.transaction_id))
        key = order_key(order.transaction_id)
        id_key = order_id_key(order.id)
        if _lookups_apart():
            await self.redis.set(id_key, order.transaction_id)
            id_key = key
        created = bool(await self._create(
            keys=[key, id_key, *keys],
            args=[str(order.version), order.model_dump_json(), order.transaction_id, *argv]))
        if created:
            fx.committed()
        return created

    async def update(self, txn: str, change: Change, effects: EffectsOf | None = None,
                     ) -> tuple[Order, Order]:
        """Apply `change` atomically; returns (before, after). Raises OrderNotFound.

        `effects(before, after)` gives the writes that go with this change (callbacks,
        SMS, jobs: bridge/store/effects.py); they are written in the same Lua step as
        the order, or not at all. Both are computed again when another process wrote
        the order in between."""
        key = order_key(txn)
        while True:
            raw = await self.redis.hget(key, "d")
            if raw is None:
                raise OrderNotFound(txn)
            before = Order.model_validate_json(raw)
            # A second parse is the cheapest deep copy the change may mutate.
            result = change(Order.model_validate_json(raw))
            after = await result if isinstance(result, Awaitable) else result
            after.version = before.version + 1
            index = (session_key(after.item.cc, after.item.pid, after.session["id"])
                     if after.session.get("id") and after.item else key)
            if index != key and _lookups_apart():
                if before.session.get("id") != after.session.get("id"):
                    await self.redis.set(index, txn)
                index = key
            fx = (effects(before, after) if effects else None) or Effects()
            keys, argv = fx.encode(2, txn_shard(txn))
            if await self._cas(keys=[key, index, *keys],
                               args=[str(before.version), str(after.version),
                                     after.model_dump_json(), txn, *argv]):
                fx.committed()
                crash_point("order.changed")
                return before, after

    async def reserve_slot(self, item: OrderItem, order_id: str, start: datetime,
                           end: datetime) -> bool:
        member = f"{order_id}|{int(end.timestamp() * 1000)}"
        return bool(await self._reserve(keys=[slots_key(item.cc, item.pid, item.evse_uid)],
                                        args=[member, int(start.timestamp() * 1000),
                                              int(end.timestamp() * 1000), order_id]))

    async def slot_free(self, item: OrderItem, start: datetime, end: datetime,
                        order_id: str = "") -> bool:
        lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        for m in await self.redis.zrangebyscore(slots_key(item.cc, item.pid, item.evse_uid),
                                                "-inf", f"({hi}"):
            oid, _, other_end = m.decode().partition("|")
            if int(other_end) > lo and oid != order_id:
                return False
        return True

    async def release_slot(self, item: OrderItem, order_id: str) -> None:
        key = slots_key(item.cc, item.pid, item.evse_uid)
        for m in await self.redis.zrange(key, 0, -1):
            if m.decode().startswith(order_id + "|"):
                await self.redis.zrem(key, m)

    async def mark_active(self, txn: str, at: datetime) -> None:
        await self.redis.zadd(active_key(txn), {txn: int(at.timestamp() * 1000)})

    async def unmark_active(self, txn: str) -> None:
        await self.redis.zrem(active_key(txn), txn)

    async def silent_since(self, before: datetime) -> list[str]:
        """Active orders whose session has not been updated since `before` (watchdog)."""
        return [m.decode() for key in active_keys()
                for m in await self.redis.zrangebyscore(key, "-inf",
                                                        int(before.timestamp() * 1000))]
