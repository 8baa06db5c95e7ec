"""Key rotation without downtime: `bridge keys rotate` publishes a new key (the stand-in
registry's challenge answered by serve with the new key's encryption key), the old key
keeps signing through the overlap, then every process signs with the new one. Real
processes: `bridge serve`, two `bridge worker`s and the `bridge keys rotate` CLI; a BAP
that verifies every callback through the registry sees no failure, before, during or
after. Also: a BAP rotating its own key, and the key ring's pure rules."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from bridge.beckn import encryption, signing
from bridge.beckn.keyring import (
    EPOCH,
    KeyEntry,
    KeyRing,
    OwnKeys,
    default_ring,
    load_ring,
    next_key_id,
    parse_ring,
    ring_json,
    save_ring,
)
from bridge.config import Settings
from tests.beckn.registry_double import (
    REGISTRY_ID,
    StandInRegistry,
    VerifyingBap,
    start_bap,
    start_registry,
)
from tests.conftest import ROOT, free_port

BPP = "bpp.rotate.test"
BAP = "bap.rotate.test"
DOMAIN = "beckn.one:deg:ev-charging"


@pytest.fixture
async def registry() -> AsyncIterator[StandInRegistry]:
    async for reg in start_registry(StandInRegistry()):
        yield reg


@pytest.fixture
async def bap(registry: StandInRegistry) -> AsyncIterator[VerifyingBap]:
    async for b in start_bap(VerifyingBap(registry.url)):
        yield b


class Procs:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp_path / f"{name}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", *args], env=env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.stop_all()


async def until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_rotation_with_serve_and_two_workers_fails_no_callback(
        redis_url: str, tmp_path: Path, registry: StandInRegistry, bap: VerifyingBap,
        procs: Procs) -> None:
    keydir = tmp_path / "keys"
    keydir.mkdir()
    sk, ek = signing.generate_private_key(), encryption.generate_encryption_key()
    (keydir / "bridge-ed25519.key").write_bytes(signing.private_key_pem(sk))
    (keydir / "bridge-x25519.key").write_bytes(encryption.encryption_key_pem(ek))
    registry.admit(BPP, "bpp-key-1", signing.public_key_b64(sk.public_key()),
                   encryption.public_b64(ek.public_key()), status="SUBSCRIBED")
    bap_key = signing.generate_private_key()
    registry.admit(BAP, "bap-key-1", signing.public_key_b64(bap_key.public_key()),
                   status="SUBSCRIBED")
    port = free_port()
    bridge_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "BRIDGE_CONFIG": str(ROOT / "config" / "bridge.toml"),
           "REDIS_URL": redis_url, "BRIDGE_REDIS_URL": redis_url, "BRIDGE_PORT": str(port),
           "BRIDGE_PUBLIC_URL": bridge_url, "BRIDGE_LOG_FORMAT": "json",
           "BRIDGE_BECKN_SUBSCRIBER_ID": BPP, "BRIDGE_BECKN_KEY_ID": "bpp-key-1",
           "BRIDGE_BECKN_PRIVATE_KEY": str(keydir / "bridge-ed25519.key"),
           "BRIDGE_BECKN_REGISTRY_URL": registry.url,
           "BRIDGE_BECKN_REGISTRY_SUBSCRIBER_ID": REGISTRY_ID,
           "BRIDGE_BECKN_SUBSCRIBE_TIMEOUT": "20", "BRIDGE_WORKER_METRICS_PORT": "0",
           "BRIDGE_OCPI_SYNC_INTERVAL": "0",
           "BRIDGE_JOURNEY_PRICING_POLICY": str(ROOT / "config" / "pricing.toml")}
    serve = procs.start("serve", env=env, name="serve")
    workers = [procs.start("worker", env=env, name=f"worker-{n}") for n in (1, 2)]

    acks: list[tuple[float, int, str]] = []
    signer = signing.Signer(BAP, "bap-key-1", bap_key, 60)

    async with aiohttp.ClientSession() as http:
        async def ready() -> bool:
            try:
                async with http.get(f"{bridge_url}/readyz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                assert serve.poll() is None, procs.log("serve")[-3000:]
                return False

        await until(ready, 60, "bridge serve")

        async def discover() -> None:
            ctx = {"domain": DOMAIN, "action": "discover", "version": "2.0.0", "bap_id": BAP,
                   "bap_uri": f"{bap.url}/bap", "bpp_id": BPP, "bpp_uri": f"{bridge_url}/beckn",
                   "transaction_id": str(uuid.uuid4()), "message_id": str(uuid.uuid4()),
                   "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                   "ttl": "PT30S"}
            raw = orjson.dumps({"context": ctx, "message": {"text_search": "charger"}})
            async with http.post(f"{bridge_url}/beckn/discover", data=raw, headers={
                    "Content-Type": "application/json",
                    "Authorization": signer.header(raw, time.time())}) as r:
                acks.append((time.time(), r.status, orjson.loads(await r.read())["ack_status"]))

        stop = asyncio.Event()

        async def load() -> None:
            while not stop.is_set():
                await discover()
                await asyncio.sleep(0.05)

        loader = asyncio.create_task(load())
        try:
            await asyncio.sleep(2)  # callbacks under the old key
            rotate = procs.start("keys", "rotate", "--overlap", "4", env=env, name="rotate")
            code = await asyncio.to_thread(rotate.wait, 60)
            assert code == 0, procs.log("rotate")
            rotated_at = time.time()
            ring = load_ring(Settings(beckn_private_key=str(keydir / "bridge-ed25519.key")))
            new = ring.get("bpp-key-2")
            assert new is not None and new.sign_from is not None
            switch = new.sign_from.timestamp()
            assert 2 < switch - rotated_at <= 5.5  # the overlap, counted from the publication
            assert registry.status(BPP, "bpp-key-2") == "SUBSCRIBED"
            assert registry.status(BPP, "bpp-key-1") == "SUBSCRIBED"  # still registered
            await asyncio.sleep(max(switch - time.time(), 0) + 3)  # through and past the switch
        finally:
            stop.set()
            await loader
        sent = len(acks)

        async def all_delivered() -> bool:
            return len(bap.verified) + len(bap.failures) + len(bap.unsigned) >= sent

        await until(all_delivered, 30, "every on_discover")
    for w in workers:
        assert w.poll() is None, procs.log("worker-1")[-3000:]
    assert all(status == 200 and ack == "ACK" for _t, status, ack in acks), acks
    assert bap.failures == [] and bap.unsigned == []
    assert len(bap.verified) == sent > 60
    used = [kid for _action, kid, _t in sorted(bap.verified, key=lambda v: v[2])]
    assert used[0] == "bpp-key-1" and used[-1] == "bpp-key-2"
    assert sum(kid == "bpp-key-1" for kid in used) > 20 and sum(
        kid == "bpp-key-2" for kid in used) > 20
    # every process switched at the same instant: after it, the old key signs nothing more
    # (the BAP gets each on_discover some ms after it is signed: 0.5 s of margin)
    late = [t - switch for _a, kid, t in bap.verified if kid == "bpp-key-1" and t > switch + 0.5]
    assert late == [], late
    early = [switch - t for _a, kid, t in bap.verified if kid == "bpp-key-2" and t < switch]
    assert early == [], early
    assert "signs until" in procs.log("rotate")


async def test_a_failed_publication_changes_nothing(
        redis_url: str, tmp_path: Path, registry: StandInRegistry, capsys: Any) -> None:
    """The registry refuses the new key: the ring is as it was, no key file is left,
    the old key still signs."""
    import argparse

    from bridge.commands.keys import cmd_rotate

    keydir = tmp_path / "keys"
    keydir.mkdir()
    sk, ek = signing.generate_private_key(), encryption.generate_encryption_key()
    (keydir / "bridge-ed25519.key").write_bytes(signing.private_key_pem(sk))
    (keydir / "bridge-x25519.key").write_bytes(encryption.encryption_key_pem(ek))
    registry.admit(BPP, "bpp-key-1", signing.public_key_b64(sk.public_key()),
                   encryption.public_b64(ek.public_key()), status="SUBSCRIBED")
    registry.subscribe_status = 500
    settings = Settings(redis_url=redis_url, beckn_subscriber_id=BPP, beckn_key_id="bpp-key-1",
                        beckn_private_key=str(keydir / "bridge-ed25519.key"),
                        beckn_registry_url=registry.url)
    before = sorted(p.name for p in keydir.iterdir())
    code = await asyncio.to_thread(cmd_rotate, argparse.Namespace(key_id=None, overlap=5),
                                   settings)
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("bridge keys rotate: the registry refused")
    assert err.endswith("nothing changed, bpp-key-1 still signs")
    ring = load_ring(settings)
    assert [e.key_id for e in ring.entries] == ["bpp-key-1"]
    assert ring.signing_entry(datetime.now(UTC) + timedelta(days=1)).key_id == "bpp-key-1"
    assert sorted(p.name for p in keydir.iterdir() if not p.name.startswith("keyring")) == before

    # without a registry (a closed network): the entry to hand out, and the switch scheduled
    closed = settings.replace(beckn_registry_url="")
    code = await asyncio.to_thread(cmd_rotate, argparse.Namespace(key_id="k-new", overlap=5),
                                   closed)
    assert code == 0
    out = capsys.readouterr()
    assert '"unique_key_id": "k-new"' in out.out and "publish this entry" in out.err
    ring = load_ring(settings)
    assert ring.signing_entry(datetime.now(UTC)).key_id == "bpp-key-1"
    assert ring.signing_entry(datetime.now(UTC) + timedelta(seconds=6)).key_id == "k-new"
    # a second rotation while one is under way is refused
    code = await asyncio.to_thread(cmd_rotate, argparse.Namespace(key_id=None, overlap=5),
                                   closed)
    assert code == 1
    assert "a rotation is under way: k-new signs from" in capsys.readouterr().err


async def test_requests_signed_under_either_key_of_a_rotating_bap(
        redis_url: str, tmp_path: Path, registry: StandInRegistry, bap: VerifyingBap) -> None:
    """Inbound: a BAP rotating its key is verified under either key while both are
    registered, and not under the old one once the registry drops it."""
    from aiohttp.test_utils import TestServer

    from bridge.app import build_app
    from bridge.extensions import app_extensions

    keydir = tmp_path / "keys"
    keydir.mkdir()
    (keydir / "bridge-ed25519.key").write_bytes(signing.private_key_pem(
        signing.generate_private_key()))
    old, new = signing.generate_private_key(), signing.generate_private_key()
    registry.admit(BAP, "bap-old", signing.public_key_b64(old.public_key()), status="SUBSCRIBED")
    registry.admit(BAP, "bap-new", signing.public_key_b64(new.public_key()), status="SUBSCRIBED")
    settings = Settings(redis_url=redis_url, public_url="http://127.0.0.1:9",
                        beckn_subscriber_id=BPP, beckn_key_id="bpp-key-1",
                        beckn_private_key=str(keydir / "bridge-ed25519.key"),
                        beckn_registry_url=registry.url, beckn_registry_cache_ttl=0)
    server = TestServer(build_app(settings, extensions=app_extensions()), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            async def post(key: Any, key_id: str) -> tuple[int, str]:
                ctx = {"domain": DOMAIN, "action": "discover", "version": "2.0.0",
                       "bap_id": BAP, "bap_uri": f"{bap.url}/bap", "bpp_id": BPP,
                       "transaction_id": str(uuid.uuid4()), "message_id": str(uuid.uuid4()),
                       "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                       "ttl": "PT30S"}
                raw = orjson.dumps({"context": ctx, "message": {"text_search": "x"}})
                auth = signing.Signer(BAP, key_id, key, 60).header(raw, time.time())
                async with http.post(str(server.make_url('/beckn/discover')), data=raw,
                                     headers={"Authorization": auth,
                                              "Content-Type": "application/json"}) as r:
                    return r.status, orjson.loads(await r.read())["ack_status"]

            assert await post(old, "bap-old") == (200, "ACK")
            assert await post(new, "bap-new") == (200, "ACK")
            assert await post(new, "bap-old") == (401, "NACK")  # a key is its own key id's
            # the registry drops the old key (nothing is cached: registry_cache_ttl = 0)
            registry.records[(BAP, "bap-old")]["status"] = "UNSUBSCRIBED"
            assert await post(old, "bap-old") == (401, "NACK")
            assert await post(new, "bap-new") == (200, "ACK")
    finally:
        await server.close()


# --- the key ring's rules (pure)


def _entry(key_id: str, sign_from: datetime | None) -> KeyEntry:
    return KeyEntry(key_id, f"/k/{key_id}.ed25519.key", f"/k/{key_id}.x25519.key",
                    sign_from=sign_from)


def test_signing_key_is_the_latest_started() -> None:
    t = datetime(2025, 11, 27, 18, 0, tzinfo=UTC)
    ring = KeyRing((_entry("k1", EPOCH), _entry("k2", t), _entry("k3", None)))
    assert ring.signing_entry(t - timedelta(seconds=1)).key_id == "k1"
    assert ring.next_entry(t - timedelta(seconds=1)).key_id == "k2"  # type: ignore[union-attr]
    assert ring.signing_entry(t).key_id == "k2"
    assert ring.next_entry(t) is None
    assert [e.key_id for e in ring.pending()] == ["k3"]  # never signs
    assert ring.role(ring.entries[0], t).startswith("retired")
    assert ring.role(ring.entries[2], t).startswith("pending")
    with pytest.raises(signing.KeyFileError):
        KeyRing((_entry("k3", None),)).signing_entry(t)


def test_ring_file_round_trip_with_relative_paths(tmp_path: Path) -> None:
    t = datetime(2025, 11, 27, 18, 0, tzinfo=UTC)
    ring = KeyRing((KeyEntry("a", str(tmp_path / "a.key"), str(tmp_path / "a.x"), t, EPOCH, t),
                    KeyEntry("b", "/elsewhere/b.key", "", t, None, None)))
    data = ring_json(ring, tmp_path)
    doc = orjson.loads(data)
    assert doc["keys"][0]["signing_key"] == "a.key" and doc["keys"][1]["sign_from"] is None
    back = parse_ring(data, tmp_path)
    assert back.entries == ring.entries
    for bad in (b"{", b'{"keys": {}}', b'{"keys": []}', b'{"keys": [{"key_id": "x"}]}',
                b'{"keys": [{"key_id": "x", "signing_key": "k", "sign_from": "yesterday"}]}'):
        with pytest.raises(signing.KeyFileError):
            parse_ring(bad, tmp_path)


def test_next_key_id() -> None:
    now = datetime(2025, 11, 27, 18, 0, 5, tzinfo=UTC)
    assert next_key_id("bridge-key-1", now) == "bridge-key-2"
    assert next_key_id("k09", now) == "k10"
    assert next_key_id("bridge", now) == "bridge-20251127180005"


def test_every_process_follows_the_ring_file(tmp_path: Path) -> None:
    """Two OwnKeys (two processes' view) switch at the same instant, from the file."""
    keydir = tmp_path / "keys"
    keydir.mkdir()
    for name in ("bridge-ed25519.key", "k2.key"):
        (keydir / name).write_bytes(signing.private_key_pem(signing.generate_private_key()))
    settings = Settings(beckn_subscriber_id=BPP, beckn_key_id="k1",
                        beckn_private_key=str(keydir / "bridge-ed25519.key"))
    a, b = OwnKeys(settings, check_every=0), OwnKeys(settings, check_every=0)
    now = float(int(time.time()))  # the ring file keeps whole seconds
    assert a.signer_at(now).key_id == b.signer_at(now).key_id == "k1"
    switch = datetime.fromtimestamp(now + 100, UTC)
    save_ring(settings, default_ring(settings).with_entry(
        KeyEntry("k2", str(keydir / "k2.key"), "", sign_from=switch)))
    for keys in (a, b):
        assert keys.signer_at(now + 99.9).key_id == "k1"
        assert keys.signer_at(now + 100).key_id == "k2"
        header = keys.header(b"{}", now + 100)
        assert 'keyId="bpp.rotate.test|k2|ed25519"' in header
    # a ring file that cannot be read keeps what the process had, and says so
    Path(settings.keyring_path).write_text("{broken")
    assert a.signer_at(now + 100).key_id == "k2"
