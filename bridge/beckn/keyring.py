"""The bridge's own keys: which key signs when, the same answer in every process.

    var/keys/keyring.json   (`beckn.keyring`; written by `bridge keys rotate`, atomically)
    {"version": 1, "keys": [
      {"key_id": "bridge-key-1", "signing_key": "bridge-ed25519.key",
       "encryption_key": "bridge-x25519.key", "created": "2025-01-01T00:00:00Z",
       "sign_from": "1970-01-01T00:00:00Z", "valid_until": "2026-01-01T00:00:00Z"},
      {"key_id": "bridge-key-2", "signing_key": "bridge-key-2.ed25519.key",
       "encryption_key": "bridge-key-2.x25519.key", "created": "2025-11-27T18:00:00Z",
       "sign_from": "2025-11-27T18:15:00Z", "valid_until": "2026-11-27T18:00:00Z"}]}

At any instant the key that signs is the one with the latest `sign_from` not after that
instant (`KeyRing.signing_entry(now)`): a pure function of the file and the clock, so
serve, every worker and the CLI agree without talking to each other, and switch at the
same moment. A rotation publishes the new key first and sets its `sign_from`
`beckn.key_overlap` seconds ahead; processes look at the file once a second
(`OwnKeys`), so they all know the schedule long before it takes effect. A key whose
`sign_from` is null is *pending*: made, being published, never used to sign (only to
answer the registry's challenge for it).

Without the file the ring is the configured key: `beckn.key_id` with `private_key` and
`encryption_key`. Paths in the file are relative to its directory (the key volume can be
mounted anywhere). Private keys stay in their own files (mode 0600): the ring holds no
secret. Keep the directory on storage every bridge process reads (one volume), as the
single key file had to be before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bridge.beckn.signing import KeyFileError, Signer, load_private_key
from bridge.config import Settings

log = structlog.get_logger("bridge.beckn.keyring")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHECK_EVERY = 1.0  # seconds between looks at the ring file (bounds key_overlap from below)
KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # also a file name


@dataclass(frozen=True)
class KeyEntry:
    key_id: str
    signing_key: str  # absolute paths
    encryption_key: str
    created: datetime | None = None
    sign_from: datetime | None = None  # None: pending, never signs
    valid_until: datetime | None = None  # what we published as the key's valid_until

    @property
    def pending(self) -> bool:
        return self.sign_from is None


@dataclass(frozen=True)
class KeyRing:
    entries: tuple[KeyEntry, ...]
    from_file: bool = False

    def get(self, key_id: str) -> KeyEntry | None:
        return next((e for e in self.entries if e.key_id == key_id), None)

    def signing_entry(self, now: datetime) -> KeyEntry:
        """The key that signs at `now`: the latest `sign_from` not after it."""
        live = [e for e in self.entries if e.sign_from is not None and e.sign_from <= now]
        if not live:
            raise KeyFileError("no key in the key ring signs yet (bridge keys show)")
        return max(live, key=lambda e: e.sign_from or EPOCH)

    def next_entry(self, now: datetime) -> KeyEntry | None:
        """The key scheduled to sign after `now`, if a rotation is under way."""
        later = [e for e in self.entries if e.sign_from is not None and e.sign_from > now]
        return min(later, key=lambda e: e.sign_from or EPOCH) if later else None

    def pending(self) -> tuple[KeyEntry, ...]:
        return tuple(e for e in self.entries if e.pending)

    def role(self, entry: KeyEntry, now: datetime) -> str:
        """What a key does at `now`: signing, next (from ...), retired, pending."""
        if entry.pending:
            return "pending (being published; does not sign)"
        if entry == self.signing_entry(now):
            return "signing"
        if entry.sign_from is not None and entry.sign_from > now:
            return f"next: signs from {iso(entry.sign_from)}"
        return "retired (no longer signs; verify-only for whoever still has it)"

    # --- pure transforms (`bridge keys rotate`)

    def with_entry(self, entry: KeyEntry) -> KeyRing:
        return KeyRing((*(e for e in self.entries if e.key_id != entry.key_id), entry),
                       from_file=self.from_file)

    def without(self, key_id: str) -> KeyRing:
        return KeyRing(tuple(e for e in self.entries if e.key_id != key_id),
                       from_file=self.from_file)

    def scheduled(self, key_id: str, sign_from: datetime) -> KeyRing:
        entry = self.get(key_id)
        if entry is None:
            raise KeyError(key_id)
        return self.with_entry(replace(entry, sign_from=sign_from))


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise KeyFileError(f"key ring: {field} is not a date-time: {value!r}") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def default_ring(settings: Settings) -> KeyRing:
    """The configured key on its own (no ring file yet)."""
    return KeyRing((KeyEntry(settings.beckn_key_id, settings.beckn_private_key,
                             settings.encryption_key_path, sign_from=EPOCH),))


def parse_ring(data: bytes, base: Path) -> KeyRing:
    try:
        doc = orjson.loads(data)
        items = doc["keys"]
        if not isinstance(items, list):
            raise TypeError
        entries = []
        for item in items:
            key_id = str(item["key_id"])
            entries.append(KeyEntry(
                key_id=key_id,
                signing_key=str(base / item["signing_key"]),
                encryption_key=str(base / item["encryption_key"]) if item.get(
                    "encryption_key") else "",
                created=_parse_time(item.get("created"), "created"),
                sign_from=_parse_time(item.get("sign_from"), "sign_from"),
                valid_until=_parse_time(item.get("valid_until"), "valid_until")))
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise KeyFileError(f"key ring is not a valid ring file: {exc}") from exc
    if not entries:
        raise KeyFileError("key ring has no keys")
    return KeyRing(tuple(entries), from_file=True)


def load_ring(settings: Settings) -> KeyRing:
    path = Path(settings.keyring_path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return default_ring(settings)
    except OSError as exc:
        raise KeyFileError(f"cannot read key ring {path}: {exc.strerror}") from exc
    return parse_ring(data, path.parent)


def _rel(path: str, base: Path) -> str:
    p = Path(path)
    try:
        return str(p.relative_to(base))
    except ValueError:
        return str(p)


def ring_json(ring: KeyRing, base: Path) -> bytes:
    def one(e: KeyEntry) -> dict[str, Any]:
        return {"key_id": e.key_id, "signing_key": _rel(e.signing_key, base),
                "encryption_key": _rel(e.encryption_key, base) if e.encryption_key else "",
                "created": iso(e.created) if e.created else None,
                "sign_from": iso(e.sign_from) if e.sign_from else None,
                "valid_until": iso(e.valid_until) if e.valid_until else None}

    return orjson.dumps({"version": 1, "keys": [one(e) for e in ring.entries]},
                        option=orjson.OPT_INDENT_2)


def save_ring(settings: Settings, ring: KeyRing) -> None:
    """Write the ring file atomically (a reader sees the old file or the new one)."""
    path = Path(settings.keyring_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(ring_json(ring, path.parent))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def ring_lock(settings: Settings) -> Iterator[None]:
    """One `bridge keys rotate` / `registry subscribe` at a time per ring."""
    path = Path(settings.keyring_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise KeyFileError("another `bridge keys` command is changing the key ring") from exc
        yield
    finally:
        os.close(fd)


def next_key_id(current: str, now: datetime) -> str:
    """bridge-key-1 -> bridge-key-2; otherwise the date is appended."""
    m = re.match(r"^(.*?)(\d+)$", current)
    if m:
        return f"{m.group(1)}{int(m.group(2)) + 1:0{len(m.group(2))}d}"
    return f"{current}-{now.strftime('%Y%m%d%H%M%S')}"


class OwnKeys:
    """The key ring as this process sees it: re-read when the file changes (looked at
    once a second at most), private keys loaded once per file. Implements
    `signing.BodySigner`: `header()` signs with the key of the moment."""

    def __init__(self, settings: Settings, check_every: float = CHECK_EVERY) -> None:
        self.settings = settings
        self.subscriber_id = settings.beckn_subscriber_id
        self.validity = settings.beckn_signature_ttl
        self.check_every = check_every
        self._path = Path(settings.keyring_path)
        self._stamp: tuple[int, int, int] | None = None
        self._checked = -float("inf")
        self._ring = load_ring(settings)
        self._stamp = self._stat()
        self._signers: dict[tuple[str, str], Signer] = {}

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self._path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def ring(self) -> KeyRing:
        now = time.monotonic()
        if now - self._checked >= self.check_every:
            self._checked = now
            stamp = self._stat()
            if stamp != self._stamp:
                try:
                    self._ring = load_ring(self.settings)
                    self._stamp = stamp
                    log.info("beckn.keyring.reloaded",
                             keys=[e.key_id for e in self._ring.entries])
                except KeyFileError as exc:  # keep signing with what we had
                    log.error("beckn.keyring.unreadable", error=str(exc))
        return self._ring

    def signer_at(self, now: float) -> Signer:
        entry = self.ring().signing_entry(datetime.fromtimestamp(now, UTC))
        ref = (entry.key_id, entry.signing_key)
        signer = self._signers.get(ref)
        if signer is None:
            signer = Signer(self.subscriber_id, entry.key_id, self._load(entry.signing_key),
                            self.validity)
            self._signers[ref] = signer
        return signer

    def header(self, body: bytes, now: float) -> str:
        return self.signer_at(now).header(body, now)

    @staticmethod
    def _load(path: str) -> Ed25519PrivateKey:
        return load_private_key(path)

    def encryption_key(self, key_id: str) -> X25519PrivateKey:
        from bridge.beckn.encryption import load_encryption_key

        self._checked = -float("inf")  # a key made a moment ago by `bridge keys rotate`
        entry = self.ring().get(key_id)
        if entry is None:
            raise KeyFileError(f"no key {key_id!r} in the key ring")
        if not entry.encryption_key:
            raise KeyFileError(f"key {key_id!r} has no encryption key (bridge keys generate)")
        return load_encryption_key(entry.encryption_key)
