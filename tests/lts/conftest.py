"""A stand-in Beckn 2.0 LTS BAP on the journey harness (tests/journey/conftest.py).

It speaks the LTS as its OpenAPI writes it: POST {bridge}/{action} with a camelCase
context (version 2.0.0, uuids), `message.contract` / `message.intent`, signed like any
Beckn request; it checks the counter-signature of every Ack the bridge answers and
answers the bridge's callbacks (at {bap}/lts/on_*) with Acks it counter-signs itself.

The counter-signature is written and checked here from the LTS text
(`components.schemas.CounterSignature`), not with the bridge's own module: the
signing string is built line by line below.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from aiohttp import web
from cryptography.exceptions import InvalidSignature

from bridge.beckn import signing
from bridge.mapping.catalog import item_id
from bridge.payments import PREFIX as PAY_PREFIX
from bridge.payments import SandboxGateway
from tests.journey.conftest import (  # noqa: F401  (the journey harness's fixtures)
    BAP_ID,
    BAP_KEY,
    LTS_BAP,
    World,
    bridge_overrides,
    money,
    profile,
    speed,
    wire_txn,
    world,
)

Inspect = Callable[[str, Any], None]


def b64digest(data: bytes) -> str:
    return "BLAKE-512=" + base64.b64encode(hashlib.blake2b(data, digest_size=64).digest()).decode()


def ack_bytes(ack: dict[str, Any]) -> bytes:
    """What the Ack's digest covers: the Ack without its signature, canonical JSON."""
    return json.dumps({k: v for k, v in ack.items() if k != "signature"}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False).encode()


def counter_string(created: str, expires: str, ack: dict[str, Any], request_body: bytes,
                   message_id: str) -> bytes:
    return (f"(created): {created}\n(expires): {expires}\n"
            f"digest: {b64digest(ack_bytes(ack))}\n"
            f"(request-digest): {b64digest(request_body)}\n"
            f"(message-id): {message_id}").encode()


def params(signature: str) -> dict[str, str]:
    assert signature.startswith("Signature "), signature
    out = {}
    for part in signature[len("Signature "):].split('",'):
        k, _, v = part.partition('="')
        out[k.strip()] = v.rstrip('"')
    return out


def check_counter(ack: dict[str, Any], request_body: bytes, message_id: str, public: Any,
                  signer: str) -> None:
    """The Ack's counter-signature, checked as the LTS describes it."""
    p = params(ack["signature"])
    assert p["headers"] == "(created) (expires) digest (request-digest) (message-id)", p
    assert p["keyId"].split("|")[0] == signer and p["algorithm"] == "ed25519", p
    assert int(p["created"]) <= time.time() + 5 < int(p["expires"]) + 5, p
    try:
        public.verify(base64.b64decode(p["signature"]),
                      counter_string(p["created"], p["expires"], ack, request_body, message_id))
    except InvalidSignature as exc:
        raise AssertionError(f"the Ack's counter-signature does not verify: {ack}") from exc


def counter_sign(key: Any, ack: dict[str, Any], request_body: bytes, message_id: str,
                 subscriber: str = LTS_BAP) -> str:
    created = int(time.time())
    sig = key.sign(counter_string(str(created), str(created + 300), ack, request_body,
                                  message_id))
    return (f'Signature keyId="{subscriber}|{BAP_KEY}|ed25519",algorithm="ed25519",'
            f'created="{created}",expires="{created + 300}",'
            f'headers="(created) (expires) digest (request-digest) (message-id)",'
            f'signature="{base64.b64encode(sig).decode()}"')


@dataclass
class LtsBap:
    """The LTS BAP: requests, the Acks it got, the callbacks it received."""

    world: World
    bap_id: str = LTS_BAP
    key: Any = None  # its signing key (default: the harness's LTS_BAP key)
    uri: str | None = None  # its bapUri (default: {bap}/lts, answered by `handle`)
    received: list[dict[str, Any]] = field(default_factory=list)
    acks: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    acked: list[tuple[str, str]] = field(default_factory=list)  # (action, messageId) ACKed
    unverified: int = 0
    # the body of every request ACKed, by messageId: each answer's `requestDigest` must be
    # that body's digest, and a callback answering nothing (unsolicited) carries none
    sent: dict[str, bytes] = field(default_factory=dict)
    unbound: list[str] = field(default_factory=list)  # callbacks failing that
    inspect: Inspect | None = None
    # how it answers callbacks: "ack" (counter-signed), "unsigned", "forged" (another
    # key under its name), "other" (another BAP's valid counter-signature), "nack"
    # (counter-signed, status NACK), "down" (HTTP 503)
    answer: str = "ack"
    event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return self.uri or f"{self.world.bap.url}/lts"

    def context(self, action: str, txn: str, **extra: Any) -> dict[str, Any]:
        s = self.world.settings
        return {"action": action, "version": "2.0.0", "bapId": self.bap_id, "bapUri": self.url,
                "bppId": s.beckn_subscriber_id, "bppUri": s.public_url,
                "transactionId": wire_txn(txn), "messageId": str(uuid.uuid4()),
                "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "ttl": "PT30S", "networkId": "deg.example/ev-charging", **extra}

    async def post(self, action: str, txn: str, message: dict[str, Any], *,
                   context: dict[str, Any] | None = None, sign: bool = True,
                   raw: bytes | None = None, bad: bool = False) -> tuple[int, dict[str, Any]]:
        """Send a request (`bad`: deliberately not a valid LTS request, for the refusal
        tests: the conformance suite does not hold it against the BAP)."""
        ctx = self.context(action, txn)
        ctx.update(context or {})
        body = raw if raw is not None else orjson.dumps({"context": ctx, "message": message})
        if self.inspect is not None and raw is None and not bad:
            self.inspect(f"request:{action}", orjson.loads(body))
        headers = {"Content-Type": "application/json"}
        if sign:
            headers["Authorization"] = signing.Signer(
                self.bap_id, BAP_KEY, self.key or self.world.bap.lts_key, 300).header(
                body, time.time())
        async with self.world.http.post(f"{self.world.bridge_url}/{action}", data=body,
                                        headers=headers) as r:
            ack = orjson.loads(await r.read())
        if self.inspect is not None:
            self.inspect(f"ack:{r.status}", ack)
        check_counter(ack, body, ctx["messageId"] if raw is None else _mid(body),
                      self.world.bap.bridge_public, self.world.settings.beckn_subscriber_id)
        self.acks.append((r.status, ack))
        if r.status == 200 and ack.get("status") == "ACK" and raw is None:
            self.acked.append((action, ctx["messageId"]))
            self.sent[ctx["messageId"]] = body
        return r.status, ack

    def unanswered(self) -> list[tuple[str, str]]:
        answered = {(m["context"]["action"], m["context"]["messageId"]) for m in self.received}
        return [(a, mid) for a, mid in self.acked if (f"on_{a}", mid) not in answered]

    async def every_ack_answered(self, timeout: float = 20) -> None:
        """No LTS request is ACKed without its answer (`on_{action}` with its messageId),
        as the journey harness checks for the draft's BAPs."""
        deadline = time.monotonic() + timeout
        while missing := self.unanswered():
            if time.monotonic() > deadline:
                raise AssertionError(f"ACKed and never answered: {missing}")
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), 0.2)
            except TimeoutError:
                pass

    async def call(self, action: str, txn: str, message: dict[str, Any]) -> dict[str, Any]:
        cb = f"on_{action}"
        seen = len(self.of(cb, txn))
        status, ack = await self.post(action, txn, message)
        assert (status, ack["status"]) == (200, "ACK"), (status, ack)
        return await self.wait_for(cb, txn, count=seen + 1)

    def of(self, action: str, txn: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m["context"]["action"] == action
                and m["context"]["transactionId"] == wire_txn(txn)]

    async def wait_for(self, action: str, txn: str, count: int = 1, timeout: float = 20,
                       where: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.of(action, txn) if where is None or where(m)]
            if len(found) >= count:
                return found[count - 1]
            if time.monotonic() > deadline:
                seen = [(m["context"]["action"], contract_state(m)) for m in self.received
                        if m["context"]["transactionId"] == wire_txn(txn)]
                raise AssertionError(f"no {action} #{count} for {txn} (seen: {seen})")
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), 0.2)
            except TimeoutError:
                pass

    def check_digest(self, body: dict[str, Any]) -> None:
        """An answer's `requestDigest` is the BLAKE-512 of the request it answers, as this
        BAP sent it; an unsolicited callback (no request of ours with its messageId, or
        another action's) has none."""
        ctx = body["context"]
        request = self.sent.get(ctx["messageId"])
        answers = request is not None and orjson.loads(request)["context"][
            "action"] == ctx["action"].removeprefix("on_")
        got = (ctx.get("requestDigest") or {}).get("digest")
        if got != (b64digest(request) if answers and request is not None else None):
            self.unbound.append(f"{ctx['action']} {ctx['messageId']}: requestDigest {got}")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """A callback from the bridge: check its signature, keep it, answer an Ack."""
        if self.answer == "down":
            return web.Response(status=503)
        raw = await request.read()
        try:
            header = signing.parse_header(request.headers.get("Authorization"))
            signing.verify(header, raw, self.world.bap.bridge_public, time.time())
        except Exception:
            self.unverified += 1
        body = orjson.loads(raw)
        action = request.match_info["action"]
        if self.inspect is not None:
            self.inspect(action, body)
        if body["context"]["action"] != action:
            self.unverified += 1
        self.check_digest(body)
        self.received.append(body)
        self.event.set()
        ack: dict[str, Any] = {"status": "NACK" if self.answer == "nack" else "ACK"}
        mid = body["context"]["messageId"]
        if self.answer in ("ack", "nack"):
            ack["signature"] = counter_sign(self.world.bap.lts_key, ack, raw, mid)
        elif self.answer == "forged":
            ack["signature"] = counter_sign(self.world.bap.key, ack, raw, mid)
        elif self.answer == "other":
            ack["signature"] = counter_sign(self.world.bap.key, ack, raw, mid, BAP_ID)
        return web.json_response(ack)


def _mid(body: bytes) -> str:
    try:
        return str(orjson.loads(body)["context"]["messageId"])
    except Exception:
        return ""


def contract(m: dict[str, Any]) -> dict[str, Any]:
    msg = m.get("message") or {}
    c = msg.get("contract") or (msg.get("tracking") or {}).get("contract") or {}
    return c if isinstance(c, dict) else {}


def contract_state(m: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(contract status, performance status, error code) of an LTS message."""
    c = contract(m)
    perf = (c.get("performance") or [{}])[0]
    return ((c.get("status") or {}).get("code"), (perf.get("status") or {}).get("code"),
            (m.get("error") or {}).get("errorCode"))


# ----------------------------------------------------------------- request messages

SESSION_CTX = ("https://raw.githubusercontent.com/beckn/protocol-specifications-v2/refs/heads/"
               "core-v2.0.0-rc2/schema/EvChargingSession/v1/context.jsonld")
CORE_CTX = ("https://raw.githubusercontent.com/beckn/protocol-specifications-new/refs/heads/main/"
            "schema/core/v2/context.jsonld")
OTP_CTX = "https://example.org/schema/ChargeAuthorization/v1/context.jsonld"


def select_contract(item: tuple[str, str, str, str, str], *, kwh: float | None = None,
                    budget: float | None = None, start: datetime | None = None,
                    end: datetime | None = None) -> dict[str, Any]:
    rid = item_id(*item)
    quantity = ({"unitCode": "KWH", "unitQuantity": kwh} if kwh is not None
                else {"unitCode": "INR", "unitQuantity": budget})
    session: dict[str, Any] = {"@context": SESSION_CTX, "@type": "ChargingSession",
                               "vehicleMake": "Tata", "vehicleModel": "Nexon EV"}
    if start:
        session["preferences"] = {"startTime": start.isoformat(),
                                  **({"endTime": end.isoformat()} if end else {})}
    return {"contract": {
        "commitments": [{"id": "commitment-001",
                         "status": {"descriptor": {"code": "DRAFT"}},
                         "resources": [{"id": rid, "quantity": quantity}],
                         "offer": {"id": f"offer:{rid}", "resourceIds": [rid]}}],
        "performance": [{"id": "performance-1", "performanceAttributes": session}]}}


def with_contract(on_x: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The contract the BPP sent, to send back (as LTS BAPs do), with changes."""
    c = dict(contract(on_x))
    c.update(changes)
    return {"contract": c}


def init_contract(on_select: dict[str, Any], phone: str, hold: bool = False) -> dict[str, Any]:
    c = contract(on_select)
    buyer = {"id": "driver-lts-1", "descriptor": {"code": "BUYER", "name": "Ananya"},
             "participantAttributes": {"@context": CORE_CTX, "@type": "beckn:Buyer",
                                       "beckn:id": "driver-lts-1", "beckn:role": "BUYER",
                                       "beckn:displayName": "Ananya",
                                       "beckn:telephone": phone,
                                       "beckn:email": "ananya@example.org"}}
    out: dict[str, Any] = {"id": c["id"], "commitments": c["commitments"],
                           "participants": [buyer]}
    if hold:
        out["settlements"] = [{"id": "pay-1", "status": "DRAFT", "settlementAttributes": {
            "@context": CORE_CTX, "@type": "beckn:Payment",
            "beckn:paymentStatus": "AUTHORIZED"}}]
    return {"contract": out}


def update_contract(on_x: dict[str, Any], status: str, otp: str | None = None
                    ) -> dict[str, Any]:
    c = contract(on_x)
    out: dict[str, Any] = {"id": c["id"], "commitments": c["commitments"],
                           "performance": [{"id": c["performance"][0]["id"],
                                            "performanceAttributes": {
                                                "@context": SESSION_CTX,
                                                "@type": "ChargingSession",
                                                "sessionStatus": status}}]}
    if otp is not None:
        out["contractAttributes"] = {"@context": OTP_CTX, "@type": "ChargeAuthorization",
                                     "authorization": {"type": "OTP", "token": otp}}
    return {"contract": out}


@pytest.fixture
async def lts(world: World) -> AsyncIterator[LtsBap]:  # noqa: F811
    bap = LtsBap(world)
    world.bap.lts_handler = bap.handle
    yield bap
    if bap.answer == "ack":  # a test that refuses the callbacks checks what it expects
        await bap.every_ack_answered()
    assert not bap.unbound, bap.unbound


# ----------------------------------------------------------------- the three ledgers

async def ledgers_agree(world: World, txn: str) -> dict[str, Decimal]:  # noqa: F811
    """The order's books, the payment gateway and the CPO's CDR, to the paisa:

    - the CDR the mock CPO wrote for the order's session (its `total_cost.incl_vat`) is
      what the final bill's CPO lines (`charge`) add up to, and the settlement was made
      on that CDR (not provisionally on the Session);
    - the bill is the sum of its lines; what was collected plus the top-up is the bill
      plus the refund (or, for a hold, capture + release = held, capture + top-up = bill);
    - the gateway moved exactly that: paid, refunded, captured, released, and one
      top-up link of the top-up's amount (none when there is none).

    Returns the order's figures (`paid`, `bill`, `refund`, `top_up`, `cdr`)."""
    order = await world.order(txn)
    s, p = order.settlement, order.payment
    assert s is not None, "the order was never settled"
    assert not s["provisional"] and s["key"].startswith("CDR:"), s["key"]
    # the CPO's CDR (from the mock CPO itself, not the bridge's copy)
    got = await world.mock("GET", f"/admin/sessions/{order.session['id']}")
    cdr = got["cdr"]
    assert cdr is not None, got
    cdr_total = money(cdr["total_cost"]["incl_vat"])
    lines = s["lines"]
    bill = money(s["final_amount"])
    assert sum((money(ln["amount"]) for ln in lines), Decimal(0)) == bill, lines
    assert sum((money(ln["amount"]) for ln in lines if ln["kind"] == "charge"),
               Decimal(0)) == cdr_total, (lines, cdr["total_cost"])
    # the books balance
    refund, top_up = money(s["refund"]), money(s["top_up"])
    capture, release = money(s["capture"]), money(s["release"])
    collected = money(p["amount"]) if p.get("status") in ("PAID", "HELD") else Decimal(0)
    if p.get("status") == "HELD":
        assert capture + release == collected and bill == capture + top_up, s
    else:
        assert collected + top_up == bill + refund, s
    # the gateway moved exactly that
    gw = SandboxGateway(world.redis, world.bridge_url)
    state = await gw.get(p["id"])
    assert state is not None
    assert (state.refunded, state.captured, state.released) == (refund, capture, release), (
        state, s)
    if p.get("status") == "HELD":
        assert state.held == collected, state
    else:
        assert state.paid == collected, state
    links = []
    async for key in world.redis.scan_iter(f"{PAY_PREFIX}pay_*"):
        other = await gw.get(key.decode()[len(PAY_PREFIX):])
        if other and other.order_id == order.id and other.payment_id != p["id"]:
            links.append(other.amount)
    assert links == ([top_up] if top_up else []), (links, s)
    return {"paid": collected, "bill": bill, "refund": refund, "top_up": top_up,
            "cdr": cdr_total}
