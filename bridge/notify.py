"""What the driver is told, queued for the driver: the notifier interface and the
development outbox.

Production plugs an SMS / WhatsApp / push provider in as a `Notifier`. The
development outbox keeps the messages in a Redis stream, so `bridge outbox
[--phone N]` shows the OTPs and messages a driver would have received.

    obb:outbox    STREAM phone, kind (otp | info | payment | bill), text, order
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis

OUTBOX = "obb:outbox"


@dataclass(frozen=True)
class Message:
    id: str
    phone: str
    kind: str
    text: str
    order: str


class Notifier(Protocol):
    async def send(self, phone: str, kind: str, text: str, order: str) -> None: ...


class Outbox:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def send(self, phone: str, kind: str, text: str, order: str) -> None:
        await self.redis.xadd(OUTBOX, {"phone": phone, "kind": kind, "text": text,
                                       "order": order}, maxlen=100_000, approximate=True)

    async def messages(self, phone: str | None = None, limit: int = 50) -> list[Message]:
        out = []
        for mid, f in await self.redis.xrevrange(OUTBOX, count=5000):
            m = Message(mid.decode(), f[b"phone"].decode(), f[b"kind"].decode(),
                        f[b"text"].decode(), f[b"order"].decode())
            if phone is None or m.phone == phone:
                out.append(m)
            if len(out) >= limit:
                break
        return list(reversed(out))
