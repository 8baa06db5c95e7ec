"""The demo BAP's HTTP side, on 127.0.0.1:

    POST  /lookup          the registry lookup the bridge asks for our public key
                           (`beckn.registry_url` points here in `make run`)
    POST  /bap/{action}    the bridge's on_* callbacks, signature checked with its key
    POST  /lts/{action}    the same in Beckn 2.0 LTS (`--profile lts`), answered with an Ack
                           counter-signed by the demo BAP
    PATCH /track/{order}   live tracking (guide example 14), signed the same way

Everything received is kept in arrival order; the journeys take what they wait for.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bridge.beckn import signing

# The bridge's signature may be made a moment "in the future" by our clock's reckoning.
CLOCK_SKEW = 5.0

# An optional look at every body the BAP receives: (kind, body) with kind an on_* action,
# "ack" (the answer to a request) or "track" (a live-tracking PATCH). The conformance
# tests check each against the published schema.
Inspect = Callable[[str, Any], None]


@dataclass(frozen=True)
class Identity:
    """Who the demo BAP is on the network, and its signing key."""

    subscriber_id: str
    key_id: str
    key: Ed25519PrivateKey

    @classmethod
    def fresh(cls, subscriber_id: str = "demo-bap.example.org") -> Identity:
        # A new key id per run: the bridge caches looked-up keys by (subscriber, key id),
        # so reusing the id with a new key would be refused until the cache expires.
        return cls(subscriber_id, f"demo-{uuid.uuid4().hex[:8]}", signing.generate_private_key())

    def sign(self, body: bytes) -> str:
        return signing.Signer(self.subscriber_id, self.key_id, self.key, 300).header(
            body, time.time())

    def record(self) -> dict[str, Any]:
        return {"subscriber_id": self.subscriber_id, "unique_key_id": self.key_id,
                "type": "BAP", "status": "SUBSCRIBED",
                "signing_public_key": signing.public_key_b64(self.key.public_key())}


@dataclass
class Inbound:
    """One message from the bridge: an on_* callback (kind = its action, ref = the
    transaction id) or a tracking PATCH (kind "track", ref = the order id)."""

    kind: str
    ref: str
    body: dict[str, Any]
    verified: bool
    why: str = ""
    taken: bool = False

    @property
    def signed_text(self) -> str:
        return "✓ signed" if self.verified else f"✗ NOT VERIFIED ({self.why})"


@dataclass
class DemoBap:
    identity: Identity
    bpp_id: str
    bridge_key: Ed25519PublicKey | None
    port: int
    host: str = "127.0.0.1"
    received: list[Inbound] = field(default_factory=list)
    lookups: int = 0
    inspect: Inspect | None = None
    profile: str = "draft"  # or "lts": Beckn 2.0 LTS (bridge/demo/lts.py)
    # the LTS contract of each transaction as last received (sent back with requests)
    contracts: dict[str, dict[str, Any]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def bap_uri(self) -> str:
        return f"{self.url}/lts" if self.profile == "lts" else f"{self.url}/bap"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/lookup", self._lookup)
        app.router.add_post("/bap/{action}", self._callback)
        app.router.add_post("/lts/{action}", self._lts_callback)
        app.router.add_patch("/track/{order}", self._track)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def unverified(self) -> list[Inbound]:
        return [m for m in self.received if not m.verified]

    def check(self, header: str, raw: bytes) -> tuple[bool, str]:
        if self.bridge_key is None:
            return False, "the bridge's public key is unknown"
        try:
            parsed = signing.parse_header(header)
            if parsed.subscriber_id != self.bpp_id:
                return False, f"signed by {parsed.subscriber_id}, not {self.bpp_id}"
            signing.verify(parsed, raw, self.bridge_key, time.time(), skew=CLOCK_SKEW)
        except Exception as exc:  # any failure is a verdict to show, not a crash
            return False, str(exc) or type(exc).__name__
        return True, ""

    async def _lookup(self, request: web.Request) -> web.Response:
        self.lookups += 1
        try:
            q = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.json_response([], status=400)
        mine = (q.get("subscriber_id"), q.get("unique_key_id")) == (
            self.identity.subscriber_id, self.identity.key_id)
        return web.json_response([self.identity.record()] if mine else [])

    async def _callback(self, request: web.Request) -> web.Response:
        raw = await request.read()
        ok, why = self.check(request.headers.get("Authorization", ""), raw)
        body = orjson.loads(raw)
        if self.inspect is not None:
            self.inspect(request.match_info["action"], body)
        ctx = body.get("context") or {}
        self.received.append(Inbound(request.match_info["action"],
                                     str(ctx.get("transaction_id", "")), body, ok, why))
        return web.json_response({"transaction_id": ctx.get("transaction_id"),
                                  "timestamp": datetime.now(UTC).isoformat(),
                                  "ack_status": "ACK"})

    async def _lts_callback(self, request: web.Request) -> web.Response:
        """An LTS callback: kept like any, and answered with a counter-signed Ack."""
        from bridge.demo import lts

        raw = await request.read()
        ok, why = self.check(request.headers.get("Authorization", ""), raw)
        body = orjson.loads(raw)
        if self.inspect is not None:
            self.inspect(request.match_info["action"], body)
        ctx = body.get("context") or {}
        txn = str(ctx.get("transactionId", ""))
        contract = lts.contract_of(body)
        if contract is not None:
            self.contracts[txn] = contract
        self.received.append(Inbound(request.match_info["action"], txn, body, ok, why))
        return web.json_response(lts.callback_ack(self.identity, raw,
                                                  str(ctx.get("messageId", ""))))

    async def _track(self, request: web.Request) -> web.Response:
        raw = await request.read()
        ok, why = self.check(request.headers.get("Authorization", ""), raw)
        body = orjson.loads(raw)
        if self.inspect is not None:
            self.inspect("track", body)
        self.received.append(Inbound("track", request.match_info["order"], body, ok, why))
        return web.Response(status=204)
