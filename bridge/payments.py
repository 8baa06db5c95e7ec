"""Payments: the gateway interface, and the sandbox gateway built into the bridge.

A real gateway (a UPI PSP, a card acquirer) plugs in by implementing
`PaymentGateway`: four calls, each idempotent under its `key` (the bridge
retries; a refund keyed by a CDR id must happen once however often it is
asked, and a top-up link keyed by a CDR is one link). Pass the key on as the
PSP's own idempotency key (e.g. the `Idempotency-Key` header). Amounts are
`Decimal` in the currency's major unit.

The sandbox keeps everything in Redis and serves a payment page:

    GET  /pay/{payment_id}           an HTML page with the amount and a Pay button
    POST /pay/{payment_id}           pays (PREPAID) or places the hold (HOLD)

A payment event is appended to `obb:pay:events` (payment id, order id, status),
which the worker turns into the unsolicited `on_status` PAID.

    obb:pay:{payment_id}   HASH order, currency, mode (PREPAID | HOLD | POSTPAID),
                                amount, status, paid, held, captured, refunded, released
    obb:pay:op:{key}       STRING result of an idempotent operation (JSON), 30 days,
                                  written in the same MULTI as the operation
    obb:pay:link:{key}     STRING the payment link made under `key` (JSON), 30 days
    obb:pay:events         STREAM payment events
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from bridge import redisconn
from bridge.crashpoints import crash_point
from bridge.store import shards

PREFIX = "obb:pay:"
EVENTS = "obb:pay:events"  # one Redis, one shard

# Shards (docs/scaling.md): a payment, its link and its operations' keys and its event
# are in its order's shard (the payment id carries it: "pay_{shard}_{hex}"), so each
# WATCH/MULTI touches one slot.


def _order_shard(order_id: str) -> int:
    return shards.current().of(f"order:{order_id}")


def _shard(payment_id: str) -> int:
    parts = payment_id.split("_")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else 0


def _key(payment_id: str) -> str:
    return shards.current().key(_shard(payment_id), f"pay:{payment_id}")


def _events(shard: int) -> str:
    return shards.current().key(shard, "pay:events")
OP_TTL = 30 * 86400


class PaymentError(Exception):
    """The gateway refused an operation (amount over what is available, unknown payment)."""


@dataclass(frozen=True)
class PaymentLink:
    payment_id: str
    url: str


@dataclass(frozen=True)
class PaymentOp:
    payment_id: str
    kind: str  # capture | refund | release
    amount: Decimal
    reference: str


@dataclass(frozen=True)
class PaymentState:
    payment_id: str
    order_id: str
    mode: str
    currency: str
    amount: Decimal
    status: str  # CREATED | PAID | HELD | CLOSED
    paid: Decimal
    held: Decimal
    captured: Decimal
    refunded: Decimal
    released: Decimal
    payer_vpa: str | None = None  # the buyer's UPI id, when the BAP gave one


class PaymentGateway(Protocol):
    """Every call that creates or moves money takes the caller's idempotency `key`
    (what the money is for: an order's step, a CDR): asked again under the same key
    it answers the first result and does nothing more. A key reused for another
    amount or payment is refused (PaymentError), as real PSPs do."""

    async def create_link(self, order_id: str, amount: Decimal, currency: str,
                          mode: str, *, key: str, payer_vpa: str | None = None
                          ) -> PaymentLink: ...

    async def capture(self, payment_id: str, amount: Decimal, key: str) -> PaymentOp: ...

    async def refund(self, payment_id: str, amount: Decimal, key: str) -> PaymentOp: ...

    async def release(self, payment_id: str, amount: Decimal, key: str) -> PaymentOp: ...

    async def get(self, payment_id: str) -> PaymentState | None: ...


def _d(v: bytes | None) -> Decimal:
    return Decimal(v.decode()) if v else Decimal(0)


def _state(payment_id: str, h: dict[bytes, bytes]) -> PaymentState:
    return PaymentState(
        payment_id=payment_id, order_id=h[b"order"].decode(), mode=h[b"mode"].decode(),
        currency=h[b"currency"].decode(), amount=_d(h[b"amount"]),
        status=h[b"status"].decode(), paid=_d(h.get(b"paid")), held=_d(h.get(b"held")),
        captured=_d(h.get(b"captured")), refunded=_d(h.get(b"refunded")),
        released=_d(h.get(b"released")),
        payer_vpa=h[b"payer_vpa"].decode() if h.get(b"payer_vpa") else None)


FIELD = {"capture": "captured", "refund": "refunded", "release": "released"}


class SandboxGateway:
    """Development gateway: payments succeed when the page's button is pressed.

    Each operation and its idempotency key are written in one MULTI/EXEC (WATCHing
    both): a process killed at any instant leaves either both or neither, so the
    retry under the same key applies the operation exactly once (issue 12, 1)."""

    def __init__(self, redis: aioredis.Redis, public_url: str) -> None:
        self.redis = redis
        self.public_url = public_url.rstrip("/")

    async def create_link(self, order_id: str, amount: Decimal, currency: str,
                          mode: str, *, key: str, payer_vpa: str | None = None
                          ) -> PaymentLink:
        """A payment link for `amount`, one per `key` (a top-up asked twice is one link).
        `payer_vpa`: the buyer's UPI id when the BAP gave one (a UPI PSP sends its collect
        request there); the sandbox keeps it with the payment and shows it."""
        shard = _order_shard(order_id)
        link_key = shards.current().key(shard, f"pay:link:{key}")
        while True:
            async with redisconn.transaction(self.redis, link_key) as pipe:
                try:
                    await pipe.watch(link_key)
                    done = await pipe.get(link_key)
                    if done is not None:
                        d = orjson.loads(done)
                        if (d["order"], Decimal(d["amount"]), d["mode"]) != (order_id, amount, mode):
                            raise PaymentError(f"link key {key!r} was used for another payment")
                        return PaymentLink(d["payment_id"], self._url(d["payment_id"]))
                    payment_id = (f"pay_{shard}_" if shards.current().tagged
                                  else "pay_") + secrets.token_hex(8)
                    pipe.multi()
                    pipe.hset(_key(payment_id), mapping={
                        "order": order_id, "currency": currency, "mode": mode,
                        "amount": str(amount), "status": "CREATED", "paid": "0", "held": "0",
                        "captured": "0", "refunded": "0", "released": "0", "key": key,
                        **({"payer_vpa": payer_vpa} if payer_vpa else {})})
                    pipe.set(link_key, orjson.dumps({"payment_id": payment_id, "order": order_id,
                                                     "amount": str(amount), "mode": mode}),
                             ex=OP_TTL)
                    await pipe.execute()
                except WatchError:
                    continue
            crash_point("payments.link_created")
            return PaymentLink(payment_id, self._url(payment_id))

    def _url(self, payment_id: str) -> str:
        return f"{self.public_url}/pay/{payment_id}"

    async def get(self, payment_id: str) -> PaymentState | None:
        h = await self.redis.hgetall(_key(payment_id))
        return _state(payment_id, h) if h else None

    async def pay(self, payment_id: str) -> PaymentState:
        """The driver pressed Pay: money taken (PREPAID) or held (HOLD). Idempotent."""
        state = await self.get(payment_id)
        if state is None:
            raise PaymentError(f"unknown payment {payment_id}")
        if state.status != "CREATED":
            return state
        field, status = ("held", "HELD") if state.mode == "HOLD" else ("paid", "PAID")
        async with redisconn.transaction(self.redis, _key(payment_id)) as pipe:
            pipe.hset(_key(payment_id), mapping={field: str(state.amount), "status": status})
            pipe.xadd(_events(_shard(payment_id)),
                      {"payment": payment_id, "order": state.order_id, "status": status,
                       "amount": str(state.amount)}, maxlen=100_000, approximate=True)
            await pipe.execute()
        new = await self.get(payment_id)
        assert new is not None
        return new

    async def _op(self, payment_id: str, kind: str, amount: Decimal, key: str) -> PaymentOp:
        if amount < 0:
            raise PaymentError("amount must not be negative")
        op_key = shards.current().key(_shard(payment_id), f"pay:op:{key}")
        key_p = _key(payment_id)
        field = FIELD[kind]
        while True:
            async with redisconn.transaction(self.redis, key_p) as pipe:
                try:
                    await pipe.watch(op_key, key_p)
                    done = await pipe.get(op_key)
                    if done is not None:
                        d = orjson.loads(done)
                        op = PaymentOp(d["payment_id"], d["kind"], Decimal(d["amount"]),
                                       d["reference"])
                        if (op.payment_id, op.kind, op.amount) != (payment_id, kind, amount):
                            raise PaymentError(
                                f"idempotency key {key!r} was used for {op.kind} {op.amount} "
                                f"on {op.payment_id}, not {kind} {amount} on {payment_id}")
                        return op
                    h = await pipe.hgetall(key_p)
                    if not h:
                        raise PaymentError(f"unknown payment {payment_id}")
                    state = _state(payment_id, h)
                    if kind == "refund" and amount > state.paid + state.captured - state.refunded:
                        raise PaymentError(f"refund {amount} exceeds what was paid")
                    if kind in ("capture", "release") and (
                            amount > state.held - state.captured - state.released):
                        raise PaymentError(f"{kind} {amount} exceeds what is held")
                    current = getattr(state, field)
                    op = PaymentOp(payment_id, kind, amount, f"{kind}_{secrets.token_hex(6)}")
                    crash_point("payments.before_apply")
                    pipe.multi()
                    # the operation and its key in one step: never one without the other
                    pipe.hset(key_p, field, str(current + amount))
                    pipe.set(op_key, orjson.dumps({
                        "payment_id": payment_id, "kind": kind, "amount": str(amount),
                        "reference": op.reference}), ex=OP_TTL)
                    await pipe.execute()
                except WatchError:
                    continue
            crash_point("payments.applied")
            return op

    async def capture(self, payment_id: str, amount: Decimal, key: str) -> PaymentOp:
        return await self._op(payment_id, "capture", amount, key)

    async def refund(self, payment_id: str, amount: Decimal, key: str) -> PaymentOp:
        return await self._op(payment_id, "refund", amount, key)

    async def release(self, payment_id: str, amount: Decimal, key: str) -> PaymentOp:
        return await self._op(payment_id, "release", amount, key)
