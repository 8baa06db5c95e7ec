"""What the demo BAP sends, and how it waits for the answers.

Signed Beckn requests to the bridge, the driver's clicks on the bridge's payment page,
the "SMS" (the bridge's development outbox), and the mock CPO's admin API (to read its
OCPI side and to cause faults). Waiting for a callback also prints the live tracking
PATCHes of the order being watched, so the output stays in arrival order.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis

from bridge.demo import view
from bridge.demo.bap import DemoBap, Inbound
from bridge.demo.render import Printer, inr, kwh
from bridge.notify import Message, Outbox


class DemoFailure(Exception):
    """A step did not happen as the journey expects; the message says what was seen."""


@dataclass(frozen=True)
class Endpoints:
    bridge_url: str
    mock_url: str
    bpp_id: str
    domain: str = "beckn.one:deg:ev-charging"
    version: str = "2.0.0"


@dataclass
class Live:
    """The order whose tracking PATCHes are printed while waiting, and its last reading."""

    order_id: str
    kwh: Decimal = Decimal(0)
    cost: Decimal | None = None
    printed_at: float = 0.0
    count: int = 0


# Tracking PATCHes can come several times a second; print at most one line per this long.
PRINT_EVERY = 0.8


class Client:
    def __init__(self, http: aiohttp.ClientSession, bap: DemoBap, ends: Endpoints,
                 out: Printer, redis: aioredis.Redis) -> None:
        self.http = http
        self.bap = bap
        self.ends = ends
        self.out = out
        self.outbox = Outbox(redis)
        self.live: Live | None = None
        self.bad_acks: list[str] = []  # LTS Acks whose counter-signature did not hold

    # ------------------------------------------------------------------ Beckn

    @property
    def lts(self) -> bool:
        return self.bap.profile == "lts"

    def ack_note(self) -> str:
        """What the LTS adds to an Ack line: whether its counter-signature held."""
        if not self.lts:
            return ""
        return " (counter-signed ✓)" if not self.bad_acks else (
            f" (counter-signature ✗: {self.bad_acks[-1]})")

    def path(self, action: str) -> str:
        if self.lts:
            from bridge.demo import lts

            return lts.path(action)
        return f"/beckn/{action}"

    def context(self, action: str, txn: str) -> dict[str, Any]:
        if self.lts:
            from bridge.demo import lts

            return lts.context(action, txn, self.bap.identity.subscriber_id, self.bap.bap_uri,
                               self.ends.bpp_id, self.ends.bridge_url)
        return {"domain": self.ends.domain, "action": action, "version": self.ends.version,
                "bap_id": self.bap.identity.subscriber_id, "bap_uri": self.bap.bap_uri,
                "bpp_id": self.ends.bpp_id, "bpp_uri": f"{self.ends.bridge_url}/beckn",
                "transaction_id": txn, "message_id": str(uuid.uuid4()),
                "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "ttl": "PT30S"}

    async def post(self, action: str, txn: str, message: dict[str, Any]
                   ) -> tuple[int, dict[str, Any]]:
        ctx = self.context(action, txn)
        if self.lts:
            from bridge.demo import lts

            message = lts.request(action, message, self.bap.contracts.get(txn))
            if self.bap.inspect is not None:  # an LTS BAP's request must be one too
                self.bap.inspect(f"request:{action}", {"context": ctx, "message": message})
        body = orjson.dumps({"context": ctx, "message": message})
        headers = {"Content-Type": "application/json",
                   "Authorization": self.bap.identity.sign(body)}
        async with self.http.post(f"{self.ends.bridge_url}{self.path(action)}", data=body,
                                  headers=headers) as r:
            raw = await r.read()
        if self.lts:
            from bridge.demo import lts

            if self.bap.inspect is not None:
                self.bap.inspect(f"ack:{r.status}", orjson.loads(raw))
            ack, why = lts.read_ack(r.status, raw, body, ctx["messageId"], self.bap.bridge_key,
                                    self.ends.bpp_id)
            if why:
                self.bad_acks.append(f"{action}: {why}")
            return r.status, ack
        try:
            ack = orjson.loads(raw)
        except orjson.JSONDecodeError:
            ack = {"ack_status": "NACK", "error": {"code": str(r.status),
                                                  "message": raw[:200].decode(errors="replace")}}
        else:
            if self.bap.inspect is not None:
                self.bap.inspect("ack", ack)
        return r.status, ack if isinstance(ack, dict) else {}

    async def send(self, action: str, txn: str, message: dict[str, Any]) -> None:
        status, ack = await self.post(action, txn, message)
        if ack.get("ack_status") != "ACK":
            err = ack.get("error") or {}
            self.out.wire(f"→ POST {self.path(action)} (signed)  ← HTTP {status} NACK "
                          f"{err.get('code')}: {err.get('message')}")
            hint = ""
            if str(err.get("code")) == "10001" and "registry" in str(err.get("message", "")):
                # The bridge looks BAP keys up in its registry; the demo BAP serves its own.
                hint = (f" (the bridge cannot find the demo BAP's key: run `bridge serve` with "
                        f"BRIDGE_BECKN_REGISTRY_URL={self.bap.url})")
            raise DemoFailure(f"{action} was refused: {err.get('code')} {err.get('message')}"
                              f"{hint}")
        self.out.wire(f"→ POST {self.path(action)} (signed)  ← ACK{self.ack_note()}")

    async def call(self, action: str, txn: str, message: dict[str, Any],
                   within: float = 20, note: str = "") -> dict[str, Any]:
        """Send `action` and wait for its on_action; an error callback is a failure."""
        await self.send(action, txn, message)
        return await self.expect(f"on_{action}", txn, within=within, note=note)

    async def expect(self, kind: str, txn: str, *, where: Callable[[dict[str, Any]], bool]
                     | None = None, within: float = 20, note: str = "",
                     unless: Callable[[], str | None] | None = None) -> dict[str, Any]:
        """Wait for a callback, print its arrival; an error callback is a failure."""
        got = await self.wait(kind, txn, where=where, within=within, unless=unless)
        err = view.error(got.body)
        self.out.wire(f"⇐ {kind}{f' ({note})' if note else ''}  {got.signed_text}"
                      + (f"  error {err}" if err else ""))
        if err:
            raise DemoFailure(f"{kind}: {err}")
        return got.body

    async def wait(self, kind: str, ref: str, *, where: Callable[[dict[str, Any]], bool]
                   | None = None, within: float = 20,
                   unless: Callable[[], str | None] | None = None) -> Inbound:
        """The first message not yet taken that matches; `unless` gives up early when it
        says why the message can no longer come."""
        deadline = time.monotonic() + within
        while True:
            self.pump()
            for m in self.bap.received:
                if not m.taken and m.kind == kind and m.ref == ref and (
                        where is None or view.error(m.body) or where(m.body)):
                    m.taken = True
                    return m
            why = unless() if unless is not None else None
            if why:
                raise DemoFailure(f"no {kind}: {why}")
            if time.monotonic() > deadline:
                seen = [(m.kind, view.state(m.body), view.fulfillment(m.body)[0])
                        for m in self.bap.received if m.ref == ref and m.kind != "track"]
                raise DemoFailure(f"no {kind} within {within:g} s (seen: {seen})")
            await asyncio.sleep(0.05)

    def seen(self, kind: str, ref: str, where: Callable[[dict[str, Any]], bool]) -> bool:
        """Whether such a message arrived (taken or not)."""
        return any(m.kind == kind and m.ref == ref and where(m.body) for m in self.bap.received)

    async def idle(self, seconds: float) -> None:
        """Let time pass, still printing live tracking."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pump()
            await asyncio.sleep(0.05)

    def pump(self) -> None:
        """Print the new tracking PATCHes of the watched order (at most one line per
        PRINT_EVERY seconds; the reading is kept from every PATCH)."""
        live = self.live
        if live is None:
            return
        for m in self.bap.received:
            if m.taken or m.kind != "track" or m.ref != live.order_id:
                continue
            m.taken = True
            live.count += 1
            live.kwh, cost, status = view.patch_reading(m.body)
            live.cost = cost if cost is not None else live.cost
            now = time.monotonic()
            if now - live.printed_at >= PRINT_EVERY:
                live.printed_at = now
                so_far = f" · {inr(live.cost)} so far" if live.cost is not None else ""
                self.out.driver("⚡", f"{kwh(live.kwh)}{so_far}  [{status}]")
                self.out.wire(f"⇐ PATCH /track/{live.order_id[:8]}…  {m.signed_text}")

    # ------------------------------------------------------------------ the driver's side

    async def pay(self, url: str) -> dict[str, Any]:
        """The driver presses Pay on the bridge's (sandbox) payment page."""
        async with self.http.post(url, headers={"Accept": "application/json"}) as r:
            if r.status != 200:
                raise DemoFailure(f"payment page answered HTTP {r.status}: {await r.text()}")
            data: dict[str, Any] = await r.json()
        return data

    async def sms(self, phone: str, order_id: str, kind: str | None = None,
                  within: float = 5) -> list[Message]:
        deadline = time.monotonic() + within
        while True:
            msgs = [m for m in await self.outbox.messages(phone)
                    if m.order == order_id and (kind is None or m.kind == kind)]
            if msgs or time.monotonic() > deadline:
                return msgs
            await asyncio.sleep(0.1)

    async def tracking(self, order_id: str) -> dict[str, Any]:
        """The bridge's tracking URL, as JSON (the order as the bridge renders it)."""
        async with self.http.get(f"{self.ends.bridge_url}/track/{order_id}",
                                 headers={"Accept": "application/json"}) as r:
            if r.status != 200:
                raise DemoFailure(f"GET /track/{order_id} answered HTTP {r.status}")
            data: dict[str, Any] = await r.json(content_type=None)
        return data

    # ------------------------------------------------------------------ the mock CPO

    async def mock(self, method: str, path: str, body: Any = None) -> Any:
        data = orjson.dumps(body) if body is not None else None
        async with self.http.request(method, f"{self.ends.mock_url}{path}", data=data) as r:
            payload = await r.json(content_type=None)
            if r.status >= 300:
                raise DemoFailure(f"mock {method} {path}: HTTP {r.status} {payload}")
        return payload
