"""`bridge keys generate | show | rotate`: the BPP's keys (ed25519 signing, X25519
encryption) and their rotation (bridge/beckn/keyring.py, docs/beckn.md "Joining a
network")."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bridge.config import Settings


def _write_private(path: Path, pem: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 from the start: the key is never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(path, 0o600)


def _adapter_refusal(settings: Settings, what: str) -> int | None:
    if settings.beckn_mode == "adapter":
        print(f"bridge {what}: adapter mode: the adapter's keys are the ones on the network; "
              "onboard and rotate them in the adapter", file=sys.stderr)
        return 1
    return None


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.beckn import encryption, signing
    from bridge.beckn.onboarding import registry_entry

    sign_path = Path(args.out or settings.beckn_private_key)
    enc_path = Path(args.encryption_out or settings.encryption_key_path)
    todo = [p for p in (sign_path, enc_path) if args.force or not p.exists()]
    if not todo:
        print(f"bridge keys generate: {sign_path} and {enc_path} exist (use --force to "
              "replace them)", file=sys.stderr)
        return 1
    if sign_path in todo:
        _write_private(sign_path, signing.private_key_pem(signing.generate_private_key()))
        print(f"signing key (ed25519) written to {sign_path} (mode 0600)", file=sys.stderr)
    if enc_path in todo:
        _write_private(enc_path, encryption.encryption_key_pem(
            encryption.generate_encryption_key()))
        print(f"encryption key (X25519) written to {enc_path} (mode 0600)", file=sys.stderr)
    try:
        sign_pub = signing.public_key_b64(signing.load_private_key(sign_path).public_key())
        enc_pub = encryption.public_b64(encryption.load_encryption_key(enc_path).public_key())
    except signing.KeyFileError as exc:
        print(f"bridge keys generate: {exc}", file=sys.stderr)
        return 1
    print(f"signing public key (base64, ed25519):    {sign_pub}")
    print(f"encryption public key (base64, X25519):  {enc_pub}")
    print("registry entry (bridge registry subscribe sends it; or publish it by hand):")
    print(json.dumps(registry_entry(settings, settings.beckn_key_id, sign_pub, enc_pub),
                     indent=2))
    return 0


async def _registry_view(settings: Settings, key_ids: list[str]) -> dict[str, str]:
    """key id -> what the registry says of it (a live lookup), or why that is unknown."""
    import aiohttp

    from bridge.beckn.registry import RegistryUnavailable, lookup_records

    if not settings.beckn_registry_url:
        return dict.fromkeys(key_ids, "unknown: no beckn.registry_url (a closed network's "
                             "static keys: check the lists your peers hold)")
    out: dict[str, str] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for key_id in key_ids:
            try:
                recs = await lookup_records(http, settings.beckn_registry_url,
                                            settings.beckn_subscriber_id, key_id)
            except RegistryUnavailable as exc:
                out[key_id] = f"unknown: {exc}"
                continue
            out[key_id] = (str(recs[0].get("status") or "listed (no status given)")
                           if recs else "not listed")
    return out


async def _challenges(settings: Settings, key_ids: list[str]) -> dict[str, str]:
    from redis.exceptions import RedisError

    from bridge.app import make_redis
    from bridge.beckn.onboarding import challenge_record, record_line

    redis = make_redis(settings)
    try:
        return {k: record_line(await challenge_record(redis, k)) for k in key_ids}
    except (RedisError, OSError) as exc:
        return dict.fromkeys(key_ids, f"unknown (Redis: {type(exc).__name__})")
    finally:
        await redis.aclose()


def cmd_show(_args: argparse.Namespace, settings: Settings) -> int:
    from bridge.beckn import encryption, signing
    from bridge.beckn.keyring import load_ring
    from bridge.beckn.onboarding import registry_entry

    now = datetime.now(UTC)
    try:
        ring = load_ring(settings)
        current = ring.signing_entry(now)
    except signing.KeyFileError as exc:
        print(f"bridge keys show: {exc}", file=sys.stderr)
        return 1
    print(f"subscriber_id: {settings.beckn_subscriber_id}")
    print(f"bpp_uri:       {settings.bpp_uri}")
    print("key ring:      " + (settings.keyring_path if ring.from_file else
                                "none yet (one key: beckn.key_id, private_key, encryption_key)"))
    if settings.beckn_mode == "adapter":
        print("mode:          adapter: the adapter signs with its own keys; these are unused")
    ids = [e.key_id for e in ring.entries]
    registry = asyncio.run(_registry_view(settings, ids))
    challenges = asyncio.run(_challenges(settings, ids))
    failed = False
    entry_keys: tuple[str, str] | None = None
    for e in ring.entries:
        print(f"\n{e.key_id}: {ring.role(e, now)}")
        try:
            sign_pub = signing.public_key_b64(signing.load_private_key(e.signing_key).public_key())
        except signing.KeyFileError as exc:
            print(f"  signing key:    {exc}")
            failed = failed or e == current
            continue
        try:
            enc_pub = (encryption.public_b64(encryption.load_encryption_key(e.encryption_key)
                                             .public_key()) if e.encryption_key else "")
        except signing.KeyFileError as exc:
            enc_pub = ""
            print(f"  encryption key: {exc} (bridge keys generate)")
        print(f"  signing public key:    {sign_pub}")
        if enc_pub:
            print(f"  encryption public key: {enc_pub}")
        if e.valid_until:
            print(f"  valid until:           {e.valid_until:%Y-%m-%dT%H:%M:%SZ}")
        print(f"  registry:              {registry[e.key_id]}")
        print(f"  on_subscribe:          {challenges[e.key_id]}")
        if e == current:
            entry_keys = (sign_pub, enc_pub)
    if entry_keys is not None:
        print("\nregistry entry of the signing key:")
        print(json.dumps(registry_entry(settings, current.key_id, *entry_keys), indent=2))
    return 1 if failed else 0


def cmd_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.beckn.signing import KeyFileError

    refused = _adapter_refusal(settings, "keys rotate")
    if refused is not None:
        return refused
    try:
        return _rotate(args, settings)
    except (KeyFileError, RotationError) as exc:
        print(f"bridge keys rotate: {exc}", file=sys.stderr)
        return 1


class RotationError(Exception):
    pass


def _rotate(args: argparse.Namespace, settings: Settings) -> int:
    """Make the new key (pending), publish it, then schedule it to sign after the overlap.
    A failed publication leaves the ring as it was."""
    from bridge.beckn import encryption, signing
    from bridge.beckn.keyring import (
        KEY_ID,
        KeyEntry,
        iso,
        load_ring,
        next_key_id,
        ring_lock,
        save_ring,
    )
    from bridge.beckn.onboarding import OnboardingError

    overlap = float(args.overlap if args.overlap is not None else settings.beckn_key_overlap)
    if overlap < 2:
        raise RotationError("--overlap must be at least 2 seconds (processes look at the key "
                            "ring once a second)")
    with ring_lock(settings):
        now = datetime.now(UTC)
        ring = load_ring(settings)
        current = ring.signing_entry(now)
        scheduled = ring.next_entry(now)
        if scheduled is not None:
            raise RotationError(f"a rotation is under way: {scheduled.key_id} signs from "
                                f"{iso(scheduled.sign_from or now)}; rotate again after that")
        for stale in ring.pending():  # left by a rotation that failed: it never signed
            ring = ring.without(stale.key_id)
        key_id = args.key_id or next_key_id(current.key_id, now)
        if not KEY_ID.match(key_id):
            raise RotationError(f"key id {key_id!r}: letters, digits, '.', '_', '-' only")
        if ring.get(key_id) is not None:
            raise RotationError(f"key id {key_id} is in the key ring already")
        base = Path(settings.keyring_path).parent
        entry = KeyEntry(key_id, str(base / f"{key_id}.ed25519.key"),
                         str(base / f"{key_id}.x25519.key"), created=now,
                         valid_until=now + timedelta(days=settings.beckn_key_validity_days))
        _write_private(Path(entry.signing_key),
                       signing.private_key_pem(signing.generate_private_key()))
        _write_private(Path(entry.encryption_key),
                       encryption.encryption_key_pem(encryption.generate_encryption_key()))
        save_ring(settings, ring.with_entry(entry))  # pending: serve can answer its challenge
        try:
            asyncio.run(_publish(settings, entry, now, overlap))
        except OnboardingError as exc:
            save_ring(settings, ring)  # as it was: the new key never signs
            for path in (entry.signing_key, entry.encryption_key):
                Path(path).unlink(missing_ok=True)
            raise RotationError(f"{exc}; nothing changed, {current.key_id} still signs") from exc
        # whole seconds (the ring file's), rounded up: never less than the overlap
        switch = (datetime.now(UTC) + timedelta(seconds=overlap + 1)).replace(microsecond=0)
        save_ring(settings, ring.with_entry(entry).scheduled(key_id, switch))
    print(f"{current.key_id} signs until {iso(switch)}, then {key_id} (every serve and worker "
          f"switches then); {current.key_id} stays registered")
    return 0


async def _publish(settings: Settings, entry: Any, now: datetime, overlap: float) -> None:
    import aiohttp

    from bridge.app import make_redis
    from bridge.beckn.onboarding import public_keys, registry_entry, subscribe

    if not settings.beckn_registry_url:
        sign_pub, enc_pub = public_keys(entry)
        print("no registry (beckn.registry_url): publish this entry to your network's "
              f"participants before the switch, {overlap:g} s from now:", file=sys.stderr)
        print(json.dumps(registry_entry(settings, entry.key_id, sign_pub, enc_pub), indent=2))
        return
    redis = make_redis(settings)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            done = await subscribe(settings, redis, http, entry.key_id, now)
    finally:
        await redis.aclose()
    print(f"{entry.key_id} published: {done.status} at the registry (challenge from "
          f"{done.registry or 'the registry'} answered)", file=sys.stderr)


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="the Beckn keys of this BPP (signing, encryption)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    gen = ksub.add_parser("generate", help="write the ed25519 signing and X25519 encryption "
                          "key pairs (the missing ones)")
    gen.add_argument("--out", help="signing key file (default: [beckn] private_key)")
    gen.add_argument("--encryption-out",
                     help="encryption key file (default: [beckn] encryption_key)")
    gen.add_argument("--force", action="store_true", help="replace existing key files")
    gen.set_defaults(func=cmd_generate)
    show = ksub.add_parser("show", help="the key ring: each key's role, public keys, what "
                           "the registry says of it, the last on_subscribe challenge")
    show.set_defaults(func=cmd_show)
    rot = ksub.add_parser("rotate", help="a new key: published to the registry now, signing "
                          "after the overlap; the old key stays registered")
    rot.add_argument("--key-id", help="the new key's id (default: the current one + 1)")
    rot.add_argument("--overlap", type=float,
                     help="seconds between publishing and signing (default: [beckn] key_overlap)")
    rot.set_defaults(func=cmd_rotate)
