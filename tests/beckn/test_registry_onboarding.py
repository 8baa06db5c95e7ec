"""Onboarding to a registry: `bridge registry subscribe` against a stand-in registry (its
own keys, real HTTP on 127.0.0.1) that runs the on_subscribe challenge with a running
bridge, after which a BAP verifying every callback through the registry verifies them
all; every error path gives one line and exit 1; `bridge keys generate | show`."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from bridge.beckn import encryption, signing
from bridge.commands.keys import cmd_generate, cmd_rotate, cmd_show
from bridge.commands.registry import cmd_lookup, cmd_subscribe
from bridge.config import Settings
from tests.beckn.registry_double import REGISTRY_ID, REGISTRY_KEY, StandInRegistry, start_registry
from tests.conftest import free_port

BPP = "bpp.onboard.test"
KEY = "bpp-key-1"


def write_keys(keydir: Path) -> tuple[Any, Any]:
    keydir.mkdir(parents=True, exist_ok=True)
    sk, ek = signing.generate_private_key(), encryption.generate_encryption_key()
    (keydir / "bridge-ed25519.key").write_bytes(signing.private_key_pem(sk))
    (keydir / "bridge-x25519.key").write_bytes(encryption.encryption_key_pem(ek))
    return sk, ek


@pytest.fixture
async def registry() -> AsyncIterator[StandInRegistry]:
    async for reg in start_registry(StandInRegistry()):
        yield reg


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Any, Any]:
    return write_keys(tmp_path / "keys")


@pytest.fixture
def settings(redis_url: str, tmp_path: Path, registry: StandInRegistry,
             keys: tuple[Any, Any]) -> Settings:
    port = free_port()
    return Settings(redis_url=redis_url, port=port, public_url=f"http://127.0.0.1:{port}",
                    beckn_subscriber_id=BPP, beckn_key_id=KEY,
                    beckn_private_key=str(tmp_path / "keys" / "bridge-ed25519.key"),
                    beckn_registry_url=registry.url, beckn_registry_subscriber_id=REGISTRY_ID,
                    beckn_subscribe_timeout=4.0)


def admit(registry: StandInRegistry, keys: tuple[Any, Any], key_id: str = KEY) -> None:
    """The registrar's entry of our first key (what the registry's /register does)."""
    registry.admit(BPP, key_id, signing.public_key_b64(keys[0].public_key()),
                   encryption.public_b64(keys[1].public_key()))


async def serving(settings: Settings) -> AsyncIterator[TestServer]:
    from bridge.app import build_app
    from bridge.extensions import app_extensions

    server = TestServer(build_app(settings, extensions=app_extensions()), host="127.0.0.1",
                        port=settings.port)
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def serve(settings: Settings) -> AsyncIterator[TestServer]:
    async for server in serving(settings):
        yield server


async def run(cmd: Any, settings: Settings, **args: Any) -> int:
    code: int = await asyncio.to_thread(cmd, argparse.Namespace(**args), settings)
    return code


def one_line_error(capsys: Any, prefix: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith(prefix), err
    return err


async def test_subscribe_answers_the_challenge_end_to_end(
        settings: Settings, registry: StandInRegistry, keys: tuple[Any, Any],
        serve: TestServer, capsys: Any) -> None:
    admit(registry, keys)
    assert await run(cmd_subscribe, settings, key_id=None) == 0
    out = capsys.readouterr().out
    assert f"{BPP}|{KEY}: SUBSCRIBED" in out
    (sent,) = registry.subscribes
    # the shape we send: the spec's Subscription + nonce, the key id under three names
    assert sent["subscriber_url"] == f"{settings.public_url}/beckn"
    assert (sent["type"], sent["domain"], sent["country"]) == ("BPP", settings.beckn_domain, "IND")
    assert sent["unique_key_id"] == sent["key_id"] == sent["pub_key_id"] == KEY
    assert sent["signing_public_key"] == signing.public_key_b64(keys[0].public_key())
    assert sent["encr_public_key"] == encryption.public_b64(keys[1].public_key())
    assert sent["valid_from"].endswith("Z") and sent["valid_until"] > sent["valid_from"]
    assert len(sent["nonce"]) == 36
    (challenge,) = registry.challenges
    assert challenge["answer"] == challenge["otp"] and challenge["http"] == 200
    assert registry.status(BPP, KEY) == "SUBSCRIBED"

    # keys show now knows: it asked the registry, and saw the challenge
    assert await run(cmd_show, settings) == 0
    shown = capsys.readouterr().out
    assert "registry:              SUBSCRIBED" in shown
    assert f"challenge from {REGISTRY_ID} answered" in shown
    assert '"status"' not in shown  # no status made up in the printed entry

    # lookup through the CLI
    assert await run(cmd_lookup, settings, subscriber_id=BPP, key_id=KEY) == 0
    assert orjson.loads(capsys.readouterr().out)[0]["status"] == "SUBSCRIBED"


async def test_onboarded_bridge_fails_no_callback_at_a_network_bap(
        settings: Settings, registry: StandInRegistry, keys: tuple[Any, Any],
        capsys: Any) -> None:
    """Issue 14's "done when": once `bridge registry subscribe` has run, a BAP of the
    network that checks every callback against the registry (as beckn-onix does) verifies
    every one; before it, our key is not SUBSCRIBED there and it would verify none."""
    import uuid
    from datetime import UTC, datetime

    from tests.beckn.conftest import run_worker
    from tests.beckn.registry_double import VerifyingBap, start_bap

    admit(registry, keys)  # the registrar's entry: INITIATED until the challenge is answered
    bap_key = signing.generate_private_key()
    registry.admit("bap.network.test", "bap-key-1", signing.public_key_b64(
        bap_key.public_key()), status="SUBSCRIBED")
    live = settings.replace(ocpi_allow_loopback_urls=True,  # the BAP is on 127.0.0.1
                            beckn_callback_backoff=0.05, beckn_callback_max_attempts=2)
    async for bap in start_bap(VerifyingBap(registry.url)):
        assert await bap.key(BPP, KEY) is None  # not onboarded: no callback would verify
        async for _server in serving(live):
            assert await run(cmd_subscribe, live, key_id=None) == 0
            assert registry.status(BPP, KEY) == "SUBSCRIBED"
            capsys.readouterr()
            signer = signing.Signer("bap.network.test", "bap-key-1", bap_key, 60)
            async with aiohttp.ClientSession() as http:
                for _ in range(5):
                    ctx = {"domain": live.beckn_domain, "action": "discover",
                           "version": "2.0.0", "bap_id": "bap.network.test",
                           "bap_uri": f"{bap.url}/bap", "bpp_id": BPP,
                           "bpp_uri": f"{live.public_url}/beckn",
                           "transaction_id": str(uuid.uuid4()),
                           "message_id": str(uuid.uuid4()),
                           "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                           "ttl": "PT30S"}
                    raw = orjson.dumps({"context": ctx, "message": {"text_search": "charger"}})
                    async with http.post(f"{live.public_url}/beckn/discover", data=raw, headers={
                            "Content-Type": "application/json",
                            "Authorization": signer.header(raw, time.time())}) as r:
                        assert (r.status, (await r.json())["ack_status"]) == (200, "ACK")
            await run_worker(live)
        assert bap.failures == [] and bap.unsigned == []
        assert [(a, k) for a, k, _t in bap.verified] == [("on_discover", KEY)] * 5


async def test_registry_down(settings: Settings, keys: tuple[Any, Any], capsys: Any) -> None:
    down = settings.replace(beckn_registry_url=f"http://127.0.0.1:{free_port()}")
    assert await run(cmd_subscribe, down, key_id=None) == 1
    err = one_line_error(capsys, "bridge registry subscribe: cannot reach the registry at")
    assert "/subscribe" in err
    # keys show says it does not know, and why
    assert await run(cmd_show, down) == 0
    assert "registry:              unknown: cannot reach the registry" in capsys.readouterr().out


async def test_registry_error_answer(settings: Settings, registry: StandInRegistry,
                                     keys: tuple[Any, Any], capsys: Any) -> None:
    admit(registry, keys)
    registry.subscribe_status = 503
    assert await run(cmd_subscribe, settings, key_id=None) == 1
    one_line_error(capsys, "bridge registry subscribe: the registry refused the subscription: "
                   "HTTP 503: 50000 registry trouble")


async def test_challenge_encrypted_to_another_key(
        settings: Settings, registry: StandInRegistry, keys: tuple[Any, Any],
        serve: TestServer, redis_client: aioredis.Redis, capsys: Any) -> None:
    admit(registry, keys)
    registry.challenge_to_wrong_key = True
    assert await run(cmd_subscribe, settings, key_id=None) == 1
    err = one_line_error(capsys, "bridge registry subscribe: we refused the registry's "
                         "on_subscribe for bpp-key-1: 30000 the challenge does not decrypt")
    assert "encryption key of bpp-key-1" in err
    (challenge,) = registry.challenges
    assert challenge["http"] == 400 and challenge["answer"] is None
    assert registry.status(BPP, KEY) == "INITIATED"


async def test_wrong_answer_is_not_confirmed(
        settings: Settings, registry: StandInRegistry, keys: tuple[Any, Any],
        serve: TestServer, capsys: Any) -> None:
    admit(registry, keys)
    registry.expect_other_answer = True  # the registry holds another challenge than it sent
    t0 = time.monotonic()
    assert await run(cmd_subscribe, settings.replace(beckn_subscribe_timeout=1.5),
                     key_id=None) == 1
    assert time.monotonic() - t0 < 10
    one_line_error(capsys, "bridge registry subscribe: the registry did not confirm bpp-key-1: "
                   "its status is INITIATED")


async def test_our_key_unknown_to_the_registry(
        settings: Settings, registry: StandInRegistry, keys: tuple[Any, Any],
        serve: TestServer, capsys: Any) -> None:
    registry.admit(BPP, KEY, signing.public_key_b64(signing.generate_private_key().public_key()))
    assert await run(cmd_subscribe, settings, key_id=None) == 1
    one_line_error(capsys, "bridge registry subscribe: the registry refused the subscription: "
                   "HTTP 401: 10001 signature does not verify")
    assert registry.challenges == []


async def test_on_subscribe_with_a_bad_registry_signature(
        settings: Settings, registry: StandInRegistry, keys: tuple[Any, Any],
        serve: TestServer, redis_client: aioredis.Redis, capsys: Any) -> None:
    admit(registry, keys)
    registry.sign_on_subscribe_with = signing.generate_private_key()  # not its published key
    assert await run(cmd_subscribe, settings, key_id=None) == 1
    one_line_error(capsys, "bridge registry subscribe: we refused the registry's on_subscribe "
                   "for bpp-key-1: 10001 signature does not verify")
    (challenge,) = registry.challenges
    assert challenge["http"] == 401 and registry.status(BPP, KEY) == "INITIATED"


async def test_no_on_subscribe_comes(settings: Settings, registry: StandInRegistry,
                                     keys: tuple[Any, Any], serve: TestServer,
                                     capsys: Any) -> None:
    admit(registry, keys)
    registry.no_on_subscribe = True
    assert await run(cmd_subscribe, settings.replace(beckn_subscribe_timeout=1.0),
                     key_id=None) == 1
    one_line_error(capsys, "bridge registry subscribe: no on_subscribe from the registry "
                   "within 1 s")


async def test_missing_encryption_key(settings: Settings, registry: StandInRegistry,
                                      keys: tuple[Any, Any], capsys: Any) -> None:
    os.remove(settings.encryption_key_path)
    assert await run(cmd_subscribe, settings, key_id=None) == 1
    err = one_line_error(capsys, "bridge registry subscribe: cannot read encryption key")
    assert err.endswith("(bridge keys generate)")
    assert registry.subscribes == []


async def test_no_registry_configured(settings: Settings, capsys: Any) -> None:
    assert await run(cmd_subscribe, settings.replace(beckn_registry_url=""), key_id=None) == 1
    one_line_error(capsys, "bridge registry subscribe: no registry: set beckn.registry_url")
    assert await run(cmd_show, settings.replace(beckn_registry_url="")) == 0
    assert "registry:              unknown: no beckn.registry_url" in capsys.readouterr().out


async def test_adapter_mode_refuses_onboarding(settings: Settings, capsys: Any) -> None:
    adapter = settings.replace(beckn_mode="adapter", beckn_adapter_url="http://127.0.0.1:1/c")
    assert await run(cmd_subscribe, adapter, key_id=None) == 1
    one_line_error(capsys, "bridge registry subscribe: adapter mode: the adapter's keys")
    assert await run(cmd_rotate, adapter, key_id=None, overlap=None) == 1
    one_line_error(capsys, "bridge keys rotate: adapter mode: the adapter's keys")


# --- the on_subscribe endpoint itself: refusals change nothing


async def post_on_subscribe(settings: Settings, body: bytes, auth: str | None
                            ) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    async with aiohttp.ClientSession() as http, http.post(
            f"{settings.public_url}/beckn/on_subscribe", data=body, headers=headers) as r:
        return r.status, orjson.loads(await r.read())


async def test_on_subscribe_refusals(settings: Settings, registry: StandInRegistry,
                                     keys: tuple[Any, Any], serve: TestServer,
                                     redis_client: aioredis.Redis) -> None:
    reg_sign = signing.Signer(REGISTRY_ID, REGISTRY_KEY, registry.sign_key, 60)
    ok_challenge = encryption.encrypt("12345", registry.enc_key, keys[1].public_key())

    def body(**over: Any) -> bytes:
        return orjson.dumps({"subscriber_id": BPP, "pub_key_id": KEY, "challenge": ok_challenge,
                             **over})

    cases = [
        (b"{not json", reg_sign.header(b"{not json", time.time()), 400, "30000"),
        (body(challenge=None), None, 400, "30000"),
        (body(), None, 401, "10001"),  # unsigned
        (body(pub_key_id="someone-else"), "sign", 400, "30000"),  # not our key
        (body(challenge="not base64!"), "sign", 400, "30000"),
    ]
    for raw, auth, status, code in cases:
        header = reg_sign.header(raw, time.time()) if auth == "sign" else auth
        got_status, got = await post_on_subscribe(settings, raw, header)
        assert (got_status, got["ack_status"], got["error"]["code"]) == (status, "NACK", code), (
            raw, got)
    assert await redis_client.exists("obb:beckn:onboard:someone-else") == 0

    # signed by another participant than the registry (beckn.registry_subscriber_id)
    other = signing.generate_private_key()
    registry.admit("bap.other", "k", signing.public_key_b64(other.public_key()),
                   encryption.public_b64(encryption.generate_encryption_key().public_key()),
                   status="SUBSCRIBED")
    raw = body()
    got_status, got = await post_on_subscribe(
        settings, raw, signing.Signer("bap.other", "k", other, 60).header(raw, time.time()))
    assert (got_status, got["error"]["details"]["reason"]) == (401, "not_registry")

    # and the right one is answered
    got_status, got = await post_on_subscribe(settings, raw, reg_sign.header(raw, time.time()))
    assert (got_status, got) == (200, {"answer": "12345"})


async def test_registry_keys_from_static_keys(settings: Settings, registry: StandInRegistry,
                                              keys: tuple[Any, Any], tmp_path: Path) -> None:
    """A registry that publishes its keys out of band: its record in static_keys is enough
    (the registry's /lookup is not asked for them)."""
    static = tmp_path / "static.json"
    static.write_bytes(orjson.dumps([registry.static_record()]))
    closed = settings.replace(beckn_static_keys=str(static))
    async for _server in serving(closed):
        raw = orjson.dumps({"challenge": encryption.encrypt("67890", registry.enc_key,
                                                            keys[1].public_key())})
        header = signing.Signer(REGISTRY_ID, REGISTRY_KEY, registry.sign_key, 60).header(
            raw, time.time())
        lookups = registry.lookups
        assert await post_on_subscribe(closed, raw, header) == (200, {"answer": "67890"})
        assert registry.lookups == lookups


# --- keys generate


def test_keys_generate_makes_both_and_only_what_is_missing(tmp_path: Path,
                                                           capsys: Any) -> None:
    s = Settings(beckn_private_key=str(tmp_path / "k" / "bridge-ed25519.key"))
    ns: dict[str, Any] = {"out": None, "encryption_out": None, "force": False}
    assert cmd_generate(argparse.Namespace(**ns), s) == 0
    sign_path, enc_path = Path(s.beckn_private_key), Path(s.encryption_key_path)
    assert enc_path == tmp_path / "k" / "bridge-x25519.key"
    for p in (sign_path, enc_path):
        assert p.stat().st_mode & 0o777 == 0o600
    out = capsys.readouterr().out
    pub = encryption.public_b64(encryption.load_encryption_key(enc_path).public_key())
    assert pub in out and '"encr_public_key"' in out and '"status"' not in out

    assert cmd_generate(argparse.Namespace(**ns), s) == 1
    one_line_error(capsys, "bridge keys generate:")

    # an older install with the signing key only: the encryption key is added, nothing else
    enc_path.unlink()
    before = sign_path.read_bytes()
    assert cmd_generate(argparse.Namespace(**ns), s) == 0
    assert sign_path.read_bytes() == before and enc_path.exists()
