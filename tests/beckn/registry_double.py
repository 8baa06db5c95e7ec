"""A stand-in Beckn registry and a BAP that verifies what it receives through it.

The registry is the v1 registry API (beckn/protocol-specifications
`api/registry/build/registry.yaml`) as the Beckn-One registry implements it
(beckn-on-succinct/beckn-registry: `SubscribersController.subscribe`,
`AfterSaveParticipantKey.OnSubscribe`):

- its own ed25519 signing key and X25519 encryption key, and its own record in its list
  (type LREG), so a subscriber can look its keys up;
- `POST /subscribe` must be signed with a key it holds as verified (the registrar's first
  entry: `admit()`, like its `/register`); the body's key, if new, is stored INITIATED and
  challenged: `POST {subscriber_url}/on_subscribe` with `{subscriber_id, pub_key_id,
  challenge}`, signed by the registry, the challenge a 32-digit number encrypted with
  AES-256-ECB under X25519(registry, key's encr_public_key); the right answer makes the
  key verified and SUBSCRIBED;
- `POST /lookup` by subscriber_id and `unique_key_id` / `key_id`.

Faults for the error paths: `challenge_to_wrong_key`, `expect_other_answer`,
`sign_on_subscribe_with` (another key), `no_on_subscribe`, `subscribe_status`.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bridge.beckn import encryption, signing
from bridge.beckn.errors import AuthError

REGISTRY_ID = "registry.test"
REGISTRY_KEY = "reg-key-1"


def key_of(rec: dict[str, Any]) -> str:
    return str(rec.get("unique_key_id") or rec.get("key_id") or rec.get("pub_key_id") or "")


@dataclass
class StandInRegistry:
    sign_key: Any = field(default_factory=signing.generate_private_key)
    enc_key: X25519PrivateKey = field(default_factory=encryption.generate_encryption_key)
    url: str = ""
    # (subscriber_id, key id) -> record (with "verified": bool, not sent)
    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    subscribes: list[dict[str, Any]] = field(default_factory=list)
    challenges: list[dict[str, Any]] = field(default_factory=list)  # what was sent, answered
    lookups: int = 0
    # faults
    challenge_to_wrong_key: bool = False
    expect_other_answer: bool = False
    sign_on_subscribe_with: Any = None
    no_on_subscribe: bool = False
    subscribe_status: int = 200
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.records[(REGISTRY_ID, REGISTRY_KEY)] = {
            "subscriber_id": REGISTRY_ID, "unique_key_id": REGISTRY_KEY, "type": "LREG",
            "signing_public_key": signing.public_key_b64(self.sign_key.public_key()),
            "encr_public_key": encryption.public_b64(self.enc_key.public_key()),
            "status": "SUBSCRIBED", "verified": True}

    def admit(self, subscriber_id: str, key_id: str, signing_public: str,
              encr_public: str = "", status: str = "INITIATED") -> None:
        """The registrar's first entry for a participant (a verified key)."""
        self.records[(subscriber_id, key_id)] = {
            "subscriber_id": subscriber_id, "unique_key_id": key_id, "type": "BPP",
            "signing_public_key": signing_public, "encr_public_key": encr_public,
            "status": status, "verified": True, "valid_from": "2025-01-01T00:00:00.000Z",
            "valid_until": "2099-01-01T00:00:00.000Z"}

    def status(self, subscriber_id: str, key_id: str) -> str | None:
        rec = self.records.get((subscriber_id, key_id))
        return None if rec is None else str(rec["status"])

    # --- HTTP

    async def subscribe(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            header = signing.parse_header(request.headers.get("Authorization"))
            signer = self.records.get((header.subscriber_id, header.key_id))
            if signer is None or not signer["verified"]:
                raise AuthError("signing key not verified by the registrar")
            signing.verify(header, raw, signing.public_key_from_b64(
                signer["signing_public_key"]), time.time())
        except AuthError as exc:
            return web.json_response({"error": {"code": "10001", "message": exc.message}},
                                     status=401)
        body = orjson.loads(raw)
        self.subscribes.append(body)
        if body.get("subscriber_id") != header.subscriber_id:
            return web.json_response({"error": {"code": "10001", "message":
                                                "cannot sign for a different subscriber"}},
                                     status=401)
        if self.subscribe_status != 200:
            return web.json_response({"error": {"code": "50000", "message": "registry trouble"}},
                                     status=self.subscribe_status)
        ref = (body["subscriber_id"], key_of(body))
        rec = self.records.get(ref)
        if rec is not None and rec["verified"] and rec["status"] == "SUBSCRIBED" and (
                rec["signing_public_key"] != body["signing_public_key"]):
            return web.json_response({"error": {"code": "40000", "message": "Cannot modify a "
                                                "verified registered key. Please create a new "
                                                "key."}}, status=400)
        fresh = {k: body[k] for k in ("subscriber_id", "subscriber_url", "type", "domain",
                                      "signing_public_key", "encr_public_key", "valid_from",
                                      "valid_until") if k in body}
        fresh.update(unique_key_id=key_of(body), status=rec["status"] if rec else "INITIATED",
                     verified=bool(rec and rec["verified"]
                                   and rec["signing_public_key"] == body["signing_public_key"]))
        if rec is not None and rec["status"] != "SUBSCRIBED":
            fresh["status"] = "INITIATED"
        self.records[ref] = fresh
        if not self.no_on_subscribe:
            task = asyncio.create_task(self._challenge(ref))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response({"status": "UNDER_SUBSCRIPTION"})

    async def _challenge(self, ref: tuple[str, str]) -> None:
        rec = self.records[ref]
        otp = str(secrets.randbelow(9) + 1) + "".join(secrets.choice("0123456789")
                                                       for _ in range(31))
        target = (encryption.public_from_b64(rec["encr_public_key"])
                  if not self.challenge_to_wrong_key else
                  X25519PrivateKey.from_private_bytes(bytes(range(32))).public_key())
        body = {"subscriber_id": ref[0], "pub_key_id": ref[1], "status": rec["status"],
                "challenge": encryption.encrypt(otp, self.enc_key, target)}
        raw = orjson.dumps(body)
        key = self.sign_on_subscribe_with or self.sign_key
        auth = signing.Signer(REGISTRY_ID, REGISTRY_KEY, key, 60).header(raw, time.time())
        seen: dict[str, Any] = {"ref": ref, "otp": otp, "answer": None, "http": None}
        self.challenges.append(seen)
        try:
            async with aiohttp.ClientSession() as http, http.post(
                    rec["subscriber_url"].rstrip("/") + "/on_subscribe", data=raw,
                    headers={"Authorization": auth, "Content-Type": "application/json"}) as r:
                seen["http"] = r.status
                got = await r.json(content_type=None)
        except (aiohttp.ClientError, ValueError) as exc:
            seen["http"] = type(exc).__name__
            return
        seen["answer"] = got.get("answer") if isinstance(got, dict) else None
        expected = otp + "0" if self.expect_other_answer else otp
        if seen["answer"] == expected:
            rec["verified"] = True
            rec["status"] = "SUBSCRIBED"

    async def lookup(self, request: web.Request) -> web.Response:
        self.lookups += 1
        q = await request.json()
        key_id = q.get("unique_key_id") or q.get("key_id")
        out = []
        for (sub, kid), rec in self.records.items():
            if q.get("subscriber_id") and sub != q["subscriber_id"]:
                continue
            if key_id and kid != key_id:
                continue
            out.append({k: v for k, v in rec.items() if k != "verified"})
        return web.json_response(out)

    def static_record(self) -> dict[str, Any]:
        """The registry's own record, as a closed network's static_keys would hold it."""
        return {k: v for k, v in self.records[(REGISTRY_ID, REGISTRY_KEY)].items()
                if k != "verified"}


async def start_registry(reg: StandInRegistry) -> AsyncIterator[StandInRegistry]:
    app = web.Application()
    app.router.add_post("/subscribe", reg.subscribe)
    app.router.add_post("/lookup", reg.lookup)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    reg.url = str(server.make_url("")).rstrip("/")
    yield reg
    for task in list(reg._tasks):
        task.cancel()
    await server.close()


@dataclass
class VerifyingBap:
    """A BAP that checks every callback's signature against the registry, as a network BAP
    does: the keyId's key looked up at `/lookup` (found keys cached, like beckn-onix)."""

    registry_url: str
    url: str = ""
    verified: list[tuple[str, str, float]] = field(default_factory=list)  # action, key id, at
    failures: list[tuple[str, str]] = field(default_factory=list)  # (action, reason)
    unsigned: list[str] = field(default_factory=list)
    cache: dict[tuple[str, str], Any] = field(default_factory=dict)

    async def key(self, sub: str, kid: str) -> Any:
        found = self.cache.get((sub, kid))
        if found is not None:
            return found
        async with aiohttp.ClientSession() as http, http.post(
                f"{self.registry_url}/lookup",
                json={"subscriber_id": sub, "unique_key_id": kid}) as r:
            recs = await r.json()
        recs = [x for x in recs if x.get("status") == "SUBSCRIBED"]
        if not recs:
            return None
        key = signing.public_key_from_b64(recs[0]["signing_public_key"])
        self.cache[(sub, kid)] = key
        return key

    async def receive(self, request: web.Request) -> web.Response:
        raw = await request.read()
        action = request.match_info["action"]
        auth = request.headers.get("Authorization")
        if not auth:
            self.unsigned.append(action)
            return web.json_response({"error": "unsigned"}, status=401)
        try:
            header = signing.parse_header(auth)
            key = await self.key(header.subscriber_id, header.key_id)
            if key is None:
                raise AuthError(f"{header.key_ref} not SUBSCRIBED at the registry")
            signing.verify(header, raw, key, time.time())
        except AuthError as exc:
            self.failures.append((action, exc.message))
            return web.json_response({"error": exc.message}, status=401)
        self.verified.append((action, header.key_id, time.time()))
        return web.json_response({"message": {"ack": {"status": "ACK"}}})


async def start_bap(bap: VerifyingBap) -> AsyncIterator[VerifyingBap]:
    app = web.Application()
    app.router.add_post("/bap/{action}", bap.receive)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    bap.url = str(server.make_url("")).rstrip("/")
    yield bap
    await server.close()


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
