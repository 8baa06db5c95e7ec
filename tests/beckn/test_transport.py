"""Every NACK path of the BPP transport, ACK of a signed request, dedupe."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from bridge.beckn import signing
from bridge.beckn.errors import AuthError
from tests.beckn.conftest import Bridge, LoopbackBap


def discover_body(bap: LoopbackBap, **ctx: Any) -> dict[str, Any]:
    return {"context": bap.context("discover", **ctx),
            "message": {"text_search": "MG Road"}}


async def test_signed_discover_is_acked(bridge: Bridge, bap: LoopbackBap) -> None:
    body = discover_body(bap)
    status, ack = await bridge.post("discover", body, bap)
    assert status == 200, ack
    assert ack["ack_status"] == "ACK"
    assert ack["transaction_id"] == body["context"]["transaction_id"]
    assert "error" not in ack


def nack(status: int, ack: dict[str, Any], http: int, code: str) -> None:
    assert status == http, ack
    assert ack["ack_status"] == "NACK"
    assert ack["error"]["code"] == code
    assert set(ack) == {"transaction_id", "timestamp", "ack_status", "error"}


async def test_missing_signature(bridge: Bridge, bap: LoopbackBap) -> None:
    nack(*await bridge.post("discover", discover_body(bap), bap, sign=False), 401, "10001")


async def test_malformed_signature(bridge: Bridge, bap: LoopbackBap) -> None:
    nack(*await bridge.post("discover", discover_body(bap), bap, auth="Signature nonsense"),
         401, "10001")
    nack(*await bridge.post("discover", discover_body(bap), bap, auth="Bearer abc"), 401, "10001")


async def test_wrong_key_signature(bridge: Bridge, bap: LoopbackBap) -> None:
    raw = orjson.dumps(discover_body(bap))
    other = signing.generate_private_key()
    status, ack = await bridge.post("discover", raw, auth=bap.sign(raw, key=other))
    nack(status, ack, 401, "10001")
    assert ack["error"]["details"]["reason"] == "bad_signature"


async def test_tampered_body(bridge: Bridge, bap: LoopbackBap) -> None:
    raw = orjson.dumps(discover_body(bap))
    auth = bap.sign(raw)
    tampered = raw.replace(b"MG Road", b"MG Roaf")
    nack(*await bridge.post("discover", tampered, auth=auth), 401, "10001")


async def test_expired_signature(bridge: Bridge, bap: LoopbackBap) -> None:
    raw = orjson.dumps(discover_body(bap))
    auth = bap.sign(raw, created=time.time() - 3600, expires_in=60)
    status, ack = await bridge.post("discover", raw, auth=auth)
    nack(status, ack, 401, "10001")
    assert ack["error"]["details"]["reason"] == "expired"


async def test_unknown_subscriber(bridge: Bridge, bap: LoopbackBap) -> None:
    body = discover_body(bap, bap_id="stranger.example")
    raw = orjson.dumps(body)
    status, ack = await bridge.post("discover", raw, auth=bap.sign(raw, sub="stranger.example"))
    nack(status, ack, 401, "10001")
    assert "registry" in ack["error"]["message"]


async def test_signed_by_other_subscriber_than_bap_id(bridge: Bridge, bap: LoopbackBap) -> None:
    body = discover_body(bap, bap_id="someone.else")
    nack(*await bridge.post("discover", body, bap), 401, "10001")


async def test_bad_json(bridge: Bridge, bap: LoopbackBap) -> None:
    status, ack = await bridge.post("discover", b'{"context": ', bap)
    nack(status, ack, 400, "30000")
    nack(*await bridge.post("discover", b"[1, 2]", bap), 400, "30000")


async def test_schema_error_names_the_field(bridge: Bridge, bap: LoopbackBap) -> None:
    body = discover_body(bap)
    del body["context"]["transaction_id"]
    status, ack = await bridge.post("discover", body, bap)
    nack(status, ack, 400, "30000")
    assert ack["error"]["details"]["field"] == "context.transaction_id"
    body = discover_body(bap)
    body["message"] = {"spatial": [{"op": "s_dwithin", "targets": "$", "geometry": {
        "type": "Point", "coordinates": [77.5, 12.9]}}]}  # no distanceMeters
    status, ack = await bridge.post("discover", body, bap)
    nack(status, ack, 400, "30000")
    assert ack["error"]["details"]["field"].startswith("message.spatial")


async def test_empty_discover_is_a_schema_error(bridge: Bridge, bap: LoopbackBap) -> None:
    body = {"context": bap.context("discover"), "message": {}}
    nack(*await bridge.post("discover", body, bap), 400, "30000")


@pytest.mark.parametrize("field,value", [("domain", "mobility:taxi"), ("version", "1.1.0")])
async def test_wrong_domain_or_version(bridge: Bridge, bap: LoopbackBap, field: str, value: str
                                       ) -> None:
    status, ack = await bridge.post("discover", discover_body(bap, **{field: value}), bap)
    nack(status, ack, 400, "30000")
    assert ack["error"]["details"]["field"] == f"context.{field}"


async def test_wrong_bpp_id(bridge: Bridge, bap: LoopbackBap) -> None:
    status, ack = await bridge.post("discover", discover_body(bap, bpp_id="other.bpp"), bap)
    nack(status, ack, 400, "30000")
    assert ack["error"]["details"]["field"] == "context.bpp_id"


async def test_action_mismatch(bridge: Bridge, bap: LoopbackBap) -> None:
    body = {"context": bap.context("select"), "message": {}}
    nack(*await bridge.post("discover", body, bap), 400, "30000")


async def test_stale_timestamp_and_expired_ttl(bridge: Bridge, bap: LoopbackBap) -> None:
    old = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    status, ack = await bridge.post("discover", discover_body(bap, timestamp=old, ttl=None), bap)
    nack(status, ack, 400, "30000")
    assert ack["error"]["details"]["field"] == "context.timestamp"
    status, ack = await bridge.post("discover", discover_body(bap, timestamp=old, ttl="PT1M"), bap)
    nack(status, ack, 400, "30000")
    assert ack["error"]["details"]["field"] == "context.ttl"
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    nack(*await bridge.post("discover", discover_body(bap, timestamp=future), bap), 400, "30000")


async def test_unknown_action_is_404(bridge: Bridge, bap: LoopbackBap) -> None:
    nack(*await bridge.post("teleport", discover_body(bap), bap), 404, "40001")
    async with bridge.http.get(f"{bridge.url}/beckn/discover") as r:
        assert r.status == 404
        assert (await r.json())["ack_status"] == "NACK"


@pytest.mark.parametrize("action", ["select", "init", "confirm", "status", "track", "update",
                                    "cancel", "rating", "support"])
async def test_order_actions_refuse_an_empty_message(bridge: Bridge, bap: LoopbackBap, action: str
                                                     ) -> None:
    body = {"context": bap.context(action), "message": {}}
    status, ack = await bridge.post(action, body, bap)
    if action == "support":  # support needs no order: the contacts are always given
        assert (status, ack["ack_status"]) == (200, "ACK")
        return
    # schema error (no message.order), or no order in this transaction yet
    assert status == 400 and ack["ack_status"] == "NACK", ack
    assert ack["error"]["code"] in {"30000", "40001", "50001", "50002"}, ack
    # ... but they authenticate first
    nack(*await bridge.post(action, body, bap, sign=False), 401, "10001")


async def test_registry_lookup_is_cached(bridge: Bridge, bap: LoopbackBap) -> None:
    for _ in range(3):
        assert (await bridge.post("discover", discover_body(bap), bap))[0] == 200
    assert bap.lookups == 1


async def test_verify_off_accepts_unsigned(settings: Any, bap: LoopbackBap) -> None:
    from aiohttp.test_utils import TestServer

    from bridge.app import build_app
    from bridge.extensions import app_extensions

    app = build_app(settings.replace(beckn_verify=False), extensions=app_extensions())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            b = Bridge(str(server.make_url("")).rstrip("/"), http, settings)
            status, ack = await b.post("discover", discover_body(bap), sign=False)
            assert (status, ack["ack_status"]) == (200, "ACK")
    finally:
        await server.close()


def test_signature_header_roundtrip() -> None:
    key = signing.generate_private_key()
    s = signing.Signer("sub.example", "k1", key)
    body = b'{"a":1}'
    now = time.time()
    header = signing.parse_header(s.header(body, now))
    assert (header.subscriber_id, header.key_id, header.algorithm) == ("sub.example", "k1", "ed25519")
    signing.verify(header, body, key.public_key(), now)
    with pytest.raises(AuthError):
        signing.verify(header, body + b" ", key.public_key(), now)
    with pytest.raises(AuthError):
        signing.verify(header, body, key.public_key(), now + 10_000)
