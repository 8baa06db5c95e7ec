"""Beckn HTTP signatures: ed25519 over a signing string that binds the body digest.

    Authorization: Signature keyId="{subscriber_id}|{unique_key_id}|ed25519",
        algorithm="ed25519",created="{unix}",expires="{unix}",
        headers="(created) (expires) digest",signature="{base64}"

    signing string = "(created): {created}\\n(expires): {expires}\\n"
                     "digest: BLAKE-512={base64(blake2b-512(raw body))}"

Keys on the wire (registry `signing_public_key`) are base64 of the raw 32-byte
ed25519 public key. Private key files are PEM (PKCS#8); a base64 raw seed (32
bytes) or NaCl secret key (64 bytes: seed + public) is accepted too, since
that is what other Beckn tools write.

Crypto is `cryptography`'s; digests are `hashlib.blake2b`. Signatures and
private keys are never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bridge.beckn.errors import AuthError

SIGNED_HEADERS = "(created) (expires) digest"
_PARAM = re.compile(r'\s*([a-zA-Z]+)\s*=\s*"([^"]*)"\s*(?:,|$)')


class KeyFileError(Exception):
    """The private key file is missing or unreadable."""


def digest(body: bytes) -> str:
    """`BLAKE-512=` + base64 of the BLAKE2b-512 digest of the raw body."""
    return "BLAKE-512=" + base64.b64encode(hashlib.blake2b(body, digest_size=64).digest()).decode()


def signing_string(created: int, expires: int, body: bytes) -> bytes:
    return f"(created): {created}\n(expires): {expires}\ndigest: {digest(body)}".encode()


@dataclass(frozen=True)
class SignatureHeader:
    subscriber_id: str
    key_id: str
    algorithm: str
    created: int
    expires: int
    headers: str
    signature: bytes

    @property
    def key_ref(self) -> str:
        return f"{self.subscriber_id}|{self.key_id}"


def parse_header(value: str | None) -> SignatureHeader:
    """Parse an `Authorization: Signature ...` value; AuthError if malformed."""
    if not value:
        raise AuthError("Authorization header missing", {"reason": "missing"})
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "signature" or not rest:
        raise AuthError("Authorization is not a Signature", {"reason": "malformed"})
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m:
            raise AuthError("malformed Signature parameters", {"reason": "malformed"})
        params[m.group(1)] = m.group(2)
        pos = m.end()
    try:
        sub, key_id, alg = params["keyId"].rsplit("|", 2)
        header = SignatureHeader(
            subscriber_id=sub, key_id=key_id, algorithm=params.get("algorithm", alg),
            created=int(params["created"]), expires=int(params["expires"]),
            headers=params.get("headers", SIGNED_HEADERS),
            signature=base64.b64decode(params["signature"], validate=True))
    except (KeyError, ValueError, binascii.Error) as exc:
        raise AuthError("malformed Signature parameters", {"reason": "malformed"}) from exc
    if alg != "ed25519" or header.algorithm != "ed25519":
        raise AuthError("algorithm must be ed25519", {"reason": "malformed"})
    if header.headers.split() != SIGNED_HEADERS.split():
        raise AuthError(f'headers must be "{SIGNED_HEADERS}"', {"reason": "malformed"})
    return header


# DER SubjectPublicKeyInfo of an ed25519 key: this prefix, then the raw 32 bytes (some
# registries publish keys in this form, e.g. a lookup with `pub_key_format: PEM`).
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def public_key_from_b64(value: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(value, validate=True)
        if len(raw) == 44 and raw.startswith(_ED25519_SPKI_PREFIX):
            raw = raw[len(_ED25519_SPKI_PREFIX):]
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise AuthError("registry public key is not an ed25519 key",
                        {"reason": "bad_registry_key"}) from exc


def public_key_b64(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def check_window(header: SignatureHeader, now: float, skew: float = 0.0,
                 max_lifetime: float | None = None) -> None:
    """The header's own checks, before any key lookup or body read: not created in the
    future, not expired, and (when given) valid for no longer than `max_lifetime`
    seconds: a signature valid for years would be a replayable credential."""
    if max_lifetime is not None and header.expires - header.created > max_lifetime:
        raise AuthError(f"signature lifetime {header.expires - header.created} s exceeds "
                        f"{max_lifetime:g} s", {"reason": "lifetime"})
    if header.expires < header.created:
        raise AuthError("signature expires before it is created", {"reason": "malformed"})
    if header.created > now + skew:
        raise AuthError("signature created in the future", {"reason": "not_yet_valid"})
    if header.expires < now - skew:
        raise AuthError("signature expired", {"reason": "expired"})


def verify(header: SignatureHeader, body: bytes, public_key: Ed25519PublicKey, now: float,
           skew: float = 0.0) -> None:
    """Check the time window and the signature over the body; AuthError otherwise."""
    check_window(header, now, skew)
    try:
        public_key.verify(header.signature, signing_string(header.created, header.expires, body))
    except InvalidSignature as exc:
        raise AuthError("signature does not verify", {"reason": "bad_signature"}) from exc


class BodySigner(Protocol):
    """What sends a signed body needs: the `Authorization` value for it at `now`."""

    def header(self, body: bytes, now: float) -> str: ...


class Signer:
    """Signs outbound bodies with one key (`bridge.beckn.keyring.RingSigner` picks the
    bridge's key of the moment)."""

    def __init__(self, subscriber_id: str, key_id: str, private_key: Ed25519PrivateKey,
                 validity: int = 300) -> None:
        self.subscriber_id = subscriber_id
        self.key_id = key_id
        self._key = private_key
        self.validity = validity

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def sign_bytes(self, data: bytes) -> bytes:
        """An ed25519 signature of `data` (the LTS counter-signature's signing string)."""
        return self._key.sign(data)

    def header(self, body: bytes, now: float) -> str:
        created = int(now)
        expires = created + self.validity
        sig = self._key.sign(signing_string(created, expires, body))
        return (f'Signature keyId="{self.subscriber_id}|{self.key_id}|ed25519",'
                f'algorithm="ed25519",created="{created}",expires="{expires}",'
                f'headers="{SIGNED_HEADERS}",signature="{base64.b64encode(sig).decode()}"')


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read private key {path}: {exc.strerror}") from exc
    if b"-----BEGIN" in data:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except ValueError as exc:
            raise KeyFileError(f"{path}: not a PEM private key") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{path}: not an ed25519 key")
        return key
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except binascii.Error as exc:
        raise KeyFileError(f"{path}: neither PEM nor base64") from exc
    if len(raw) not in (32, 64):
        raise KeyFileError(f"{path}: base64 key must be 32 or 64 bytes")
    return Ed25519PrivateKey.from_private_bytes(raw[:32])
