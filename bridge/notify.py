"""What the driver is told, queued for the driver: the notifier interface and the
development outbox.

Every message is first an entry of the outbox stream, written in the same
atomic step as the order change that causes it (`message_effect`), so a
message is queued exactly once however processes die. Production plugs an SMS /
WhatsApp / push provider in as a `Notifier` fed from that stream (a consumer
group: a message is acknowledged once the provider took it, and carries its
stream entry id as the provider's idempotency key). The development outbox
keeps the messages in the stream, so `bridge outbox [--phone N]` shows the
OTPs and messages a driver would have received.

    obb:outbox    STREAM phone, kind (otp | info | payment | bill), text, order

Shards (docs/scaling.md): one stream per shard ("obb:{tag}:outbox"), a message in its
order's transaction's shard (written with the order's change); `messages` merges them in
the order they were written (stream ids are times).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis

from bridge.store import shards
from bridge.store.effects import Effects

OUTBOX = "obb:outbox"  # one Redis, one shard; code: outbox(shard)


def outbox(shard: int = 0) -> str:
    return shards.current().key(shard, "outbox")


@dataclass(frozen=True)
class Message:
    id: str
    phone: str
    kind: str
    text: str
    order: str


class Notifier(Protocol):
    async def send(self, phone: str, kind: str, text: str, order: str) -> None: ...


MAXLEN = 100_000


def message_effect(fx: Effects, phone: str, kind: str, text: str, order: str,
                   shard: int = 0) -> Effects:
    """The outbox entry of one message, as a write of an order's change (in `shard`, the
    order's): a message is queued in the same atomic step as the change that causes it,
    exactly once."""
    return fx.xadd(outbox(shard), {"phone": phone, "kind": kind, "text": text, "order": order},
                   maxlen=MAXLEN)


class Outbox:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def send(self, phone: str, kind: str, text: str, order: str) -> None:
        await self.redis.xadd(outbox(shards.current().of(f"order:{order}")),
                              {"phone": phone, "kind": kind, "text": text, "order": order},
                              maxlen=MAXLEN, approximate=True)

    async def messages(self, phone: str | None = None, limit: int = 50) -> list[Message]:
        out = []
        entries = [e for s in shards.current().shards
                   for e in await self.redis.xrevrange(outbox(s), count=5000)]
        entries.sort(key=lambda e: tuple(int(x) for x in e[0].split(b"-")), reverse=True)
        for mid, f in entries:
            m = Message(mid.decode(), f[b"phone"].decode(), f[b"kind"].decode(),
                        f[b"text"].decode(), f[b"order"].decode())
            if phone is None or m.phone == phone:
                out.append(m)
            if len(out) >= limit:
                break
        return list(reversed(out))
