"""Behind beckn-onix (`beckn.mode = "adapter"`): the adapter's receiver verifies the BAP's
signature and forwards the request (its headers too) from a trusted address; the bridge
answers its callbacks unsigned to the adapter's caller, which signs them with its own key.
A stand-in adapter (the two onix modules' behaviour, real HTTP) and a BAP that verifies
every callback through the registry show that nothing is signed twice or left unsigned."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.beckn import signing
from bridge.beckn.errors import AuthError
from bridge.config import ConfigError, Settings, load_settings
from bridge.mapping.catalog import item_id
from tests.beckn.conftest import load_sample, run_worker
from tests.beckn.registry_double import (
    StandInRegistry,
    VerifyingBap,
    start_bap,
    start_registry,
)

BPP = "bpp.adapter.test"
BAP = "bap.adapter.test"
ADAPTER_KEY = "onix-key-1"
DOMAIN = "beckn.one:deg:ev-charging"
FORWARDED = ("Authorization", "Content-Type", "X-Forwarded-For")


@dataclass
class StandInAdapter:
    """beckn-onix's BPP adapter, the two modules the bridge meets:

    - `/bpp/receiver/{action}`: validateSign (the keyId's key from the registry), then the
      router sends it to `{bridge}/beckn/{action}` as a reverse proxy would: same body,
      same headers (the BAP's Authorization included), X-Forwarded-For added;
    - `/bpp/caller/{action}`: the bridge's on_*; the sign step sets Authorization with the
      adapter's key (replacing any), the router sends it to `context.bap_uri/{action}`.
    """

    registry_url: str
    key: Any
    bridge_url: str = ""
    url: str = ""
    signed_by_bridge: list[str] = field(default_factory=list)  # would be signed twice
    relayed: list[tuple[str, int]] = field(default_factory=list)  # on_* sent on, BAP status
    contexts: list[dict[str, Any]] = field(default_factory=list)

    async def receiver(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            header = signing.parse_header(request.headers.get("Authorization"))
            async with aiohttp.ClientSession() as http, http.post(
                    f"{self.registry_url}/lookup",
                    json={"subscriber_id": header.subscriber_id,
                          "key_id": header.key_id}) as r:
                recs = await r.json()
            if not recs:
                raise AuthError("unknown key")
            signing.verify(header, raw, signing.public_key_from_b64(
                recs[0]["signing_public_key"]), time.time())
        except AuthError as exc:
            return web.json_response({"ack_status": "NACK", "error": {
                "code": "AUT_SIGNATURE_INVALID", "message": exc.message}}, status=401)
        headers = {k: v for k, v in request.headers.items() if k in FORWARDED}
        headers["X-Forwarded-For"] = request.remote or ""
        async with aiohttp.ClientSession() as http, http.post(
                f"{self.bridge_url}/beckn/{request.match_info['action']}", data=raw,
                headers=headers) as r:
            return web.Response(body=await r.read(), status=r.status,
                                content_type="application/json")

    async def caller(self, request: web.Request) -> web.Response:
        raw = await request.read()
        action = request.match_info["action"]
        if "Authorization" in request.headers:
            self.signed_by_bridge.append(action)
        body = orjson.loads(raw)
        self.contexts.append(body["context"])
        auth = signing.Signer(BPP, ADAPTER_KEY, self.key, 300).header(raw, time.time())
        async with aiohttp.ClientSession() as http, http.post(
                f"{body['context']['bap_uri'].rstrip('/')}/{action}", data=raw,
                headers={"Authorization": auth, "Content-Type": "application/json"}) as r:
            self.relayed.append((action, r.status))
            return web.Response(body=await r.read(), status=r.status,
                                content_type="application/json")


@pytest.fixture
async def registry() -> AsyncIterator[StandInRegistry]:
    async for reg in start_registry(StandInRegistry()):
        yield reg


@pytest.fixture
async def bap(registry: StandInRegistry) -> AsyncIterator[VerifyingBap]:
    async for b in start_bap(VerifyingBap(registry.url)):
        yield b


@pytest.fixture
def bap_key(registry: StandInRegistry) -> Any:
    key = signing.generate_private_key()
    registry.admit(BAP, "bap-key-1", signing.public_key_b64(key.public_key()),
                   status="SUBSCRIBED")
    return key


@pytest.fixture
async def adapter(registry: StandInRegistry) -> AsyncIterator[StandInAdapter]:
    key = signing.generate_private_key()  # the adapter's key: the one on the network
    registry.admit(BPP, ADAPTER_KEY, signing.public_key_b64(key.public_key()),
                   status="SUBSCRIBED")
    ad = StandInAdapter(registry.url, key)
    app = web.Application()
    app.router.add_post("/bpp/receiver/{action}", ad.receiver)
    app.router.add_post("/bpp/caller/{action}", ad.caller)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    ad.url = str(server.make_url("")).rstrip("/")
    yield ad
    await server.close()


def adapter_settings(redis_url: str, adapter: StandInAdapter, tmp_path: Path,
                     **over: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": redis_url, "public_url": "http://127.0.0.1:9", "beckn_subscriber_id": BPP,
        "beckn_mode": "adapter", "beckn_adapter_url": f"{adapter.url}/bpp/caller",
        "beckn_bpp_uri": f"{adapter.url}/bpp/receiver",
        # no key of its own: the adapter signs
        "beckn_private_key": str(tmp_path / "no-key" / "bridge-ed25519.key"),
        "beckn_callback_backoff": 0.05, "beckn_callback_max_attempts": 3,
        "beckn_callback_timeout": 2.0}
    return Settings(**{**values, **over})


async def start_bridge(settings: Settings) -> TestServer:
    from bridge.app import build_app
    from bridge.extensions import app_extensions

    server = TestServer(build_app(settings, extensions=app_extensions()), host="127.0.0.1")
    await server.start_server()
    return server


def request(action: str, bap_uri: str, bpp_uri: str, message: dict[str, Any],
            txn: str | None = None) -> bytes:
    ctx = {"domain": DOMAIN, "action": action, "version": "2.0.0", "bap_id": BAP,
           "bap_uri": bap_uri, "bpp_id": BPP, "bpp_uri": bpp_uri,
           "transaction_id": txn or str(uuid.uuid4()), "message_id": str(uuid.uuid4()),
           "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "ttl": "PT30S"}
    return orjson.dumps({"context": ctx, "message": message})


async def test_every_callback_is_signed_once_by_the_adapter(
        redis_url: str, redis_client: aioredis.Redis, tmp_path: Path, adapter: StandInAdapter,
        bap: VerifyingBap, bap_key: Any) -> None:
    settings = adapter_settings(redis_url, adapter, tmp_path)
    await load_sample(redis_client, settings)
    server = await start_bridge(settings)
    adapter.bridge_url = str(server.make_url("")).rstrip("/")
    receiver = f"{adapter.url}/bpp/receiver"
    sign = signing.Signer(BAP, "bap-key-1", bap_key, 60)
    select = {"order": {"@type": "beckn:Order", "beckn:orderItems": [{
        "beckn:lineId": "line-001", "beckn:quantity": 1,
        "beckn:orderedItem": item_id("IN", "TPC", "LOC-MG", "E1", "1"),
        "beckn:price": {"currency": "INR", "value": 300}}]}}
    try:
        async with aiohttp.ClientSession() as http:
            for action, message in (("discover", {"text_search": "MG Road"}),
                                    ("select", select)):
                raw = request(action, f"{bap.url}/bap", receiver, message)
                async with http.post(f"{receiver}/{action}", data=raw, headers={
                        "Authorization": sign.header(raw, time.time()),
                        "Content-Type": "application/json"}) as r:
                    assert (r.status, (await r.json())["ack_status"]) == (200, "ACK"), action
            # a request the adapter refuses never reaches the bridge
            raw = request("discover", f"{bap.url}/bap", receiver, {"text_search": "x"})
            bad = signing.Signer(BAP, "bap-key-1", signing.generate_private_key(), 60)
            async with http.post(f"{receiver}/discover", data=raw, headers={
                    "Authorization": bad.header(raw, time.time())}) as r:
                assert r.status == 401
        await run_worker(settings)
    finally:
        await server.close()
    assert adapter.signed_by_bridge == []  # nothing signed twice
    assert bap.unsigned == [] and bap.failures == []  # nothing left unsigned
    assert sorted((a, k) for a, k, _t in bap.verified) == [("on_discover", ADAPTER_KEY),
                                                           ("on_select", ADAPTER_KEY)]
    assert sorted(adapter.relayed) == [("on_discover", 200), ("on_select", 200)]
    # the callbacks name the adapter's receiver as our bpp_uri (where the BAP writes next)
    assert {c["bpp_uri"] for c in adapter.contexts} == {receiver}
    on_discover = next(c for c in adapter.contexts if c["action"] == "on_discover")
    assert on_discover["bpp_id"] == BPP


async def test_only_the_adapters_addresses_are_trusted(
        redis_url: str, tmp_path: Path, adapter: StandInAdapter, bap: VerifyingBap) -> None:
    """The allow-list decides, not loopback: 127.0.0.2 (another loopback address) is
    trusted when listed, 127.0.0.1 is refused when it is not. A forwarded Authorization
    is not checked again (the adapter did it), whatever it says."""
    settings = adapter_settings(redis_url, adapter, tmp_path,
                                beckn_adapter_allow_from="10.1.0.0/16, 127.0.0.2")
    server = await start_bridge(settings)
    url = str(server.make_url("/beckn/discover"))
    try:
        def raw() -> bytes:
            return request("discover", f"{bap.url}/bap", "http://adapter/bpp/receiver",
                           {"text_search": "x"})

        headers = {"Content-Type": "application/json",
                   "Authorization": 'Signature keyId="x|y|ed25519",signature="forwarded"',
                   "X-Forwarded-For": "127.0.0.2"}  # says nothing: the TCP peer counts
        async with aiohttp.ClientSession() as http, http.post(url, data=raw(),
                                                               headers=headers) as r:
            got = await r.json()
            assert (r.status, got["error"]["code"]) == (401, "10001")
            assert got["error"]["details"]["reason"] == "not_adapter"
        conn = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=conn) as http, http.post(
                url, data=raw(), headers=headers) as r:
            assert (r.status, (await r.json())["ack_status"]) == (200, "ACK")
    finally:
        await server.close()


def test_adapter_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="adapter_url"):
        load_settings({"BRIDGE_BECKN_MODE": "adapter"})
    with pytest.raises(ConfigError, match=re.escape("network: '10.0.0.0/33'")):
        load_settings({"BRIDGE_BECKN_ADAPTER_ALLOW_FROM": "127.0.0.1, 10.0.0.0/33"})
    s = Settings(beckn_adapter_allow_from="10.1.2.3, 192.168.0.0/16,::1")
    assert [str(n) for n in s.adapter_networks] == ["10.1.2.3/32", "192.168.0.0/16", "::1/128"]
    assert Settings(public_url="https://emsp.example.org").bpp_uri == \
        "https://emsp.example.org/beckn"
    assert Settings(beckn_bpp_uri="https://bpp.example.org/bpp/receiver/").bpp_uri == \
        "https://bpp.example.org/bpp/receiver"


async def test_tracking_patches_behind_the_adapter(
        redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
        adapter: StandInAdapter, bap: VerifyingBap) -> None:
    """The live-tracking PATCH is not a Beckn action the adapter's caller can route: the
    bridge sends it itself, signed with the key it is given (the adapter's, so the BAP
    finds it under our subscriber id), exactly once."""
    from bridge.journey.common import JourneyDeps
    from bridge.journey.events import journey_track_push
    from bridge.ocpi.models import Session
    from bridge.store.ocpi_store import OcpiStore
    from bridge.store.orders import Order, OrderItem

    patches: list[tuple[str | None, bytes]] = []

    async def patch(request: web.Request) -> web.Response:
        patches.append((request.headers.get("Authorization"), await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_patch("/track/{order}", patch)
    track = TestServer(app, host="127.0.0.1")
    await track.start_server()
    keydir = tmp_path / "keys"
    keydir.mkdir()
    (keydir / "bridge-ed25519.key").write_bytes(signing.private_key_pem(adapter.key))
    session = orjson.loads((Path(__file__).parents[1] / "fixtures" / "pricing" /
                            "session_active.json").read_bytes())
    await OcpiStore(redis_client).put("sessions", Session.model_validate(session))
    now = datetime.now(UTC)
    order = Order(id="o-1", transaction_id="txn-track", bap_id=BAP, bap_uri=f"{bap.url}/bap",
                  created=now, updated=now,
                  item=OrderItem(item_id="x", cc="IN", pid="TST", location_id="LOC-BLR-1",
                                 evse_uid="EVSE-1", connector_id="1"),
                  session={"id": session["id"], "kwh": 0},
                  track={"callback": str(track.make_url("/track/o-1"))})
    try:
        for name, key_path in (("with key", keydir / "bridge-ed25519.key"),
                               ("without", tmp_path / "none" / "bridge-ed25519.key")):
            settings = adapter_settings(redis_url, adapter, tmp_path,
                                        beckn_private_key=str(key_path),
                                        beckn_key_id=ADAPTER_KEY, ocpi_allow_loopback_urls=True)
            deps = JourneyDeps.build(settings, redis_client)
            await deps.orders.create(order.model_copy(update={"transaction_id": name}))
            try:
                assert await journey_track_push({"journey": deps}, name) == "HTTP 204"
            finally:
                await deps.close()
    finally:
        await track.close()
    (signed, body), (unsigned, _body) = patches
    header = signing.parse_header(signed)
    assert header.key_ref == f"{BPP}|{ADAPTER_KEY}"
    signing.verify(header, body, adapter.key.public_key(), time.time())
    assert unsigned is None  # no key given: said at start (beckn.TRACKING_PATCHES_UNSIGNED)
