"""X25519 encryption keys and the registry's challenge cipher (`on_subscribe`).

A Beckn registry checks that a subscriber holds the private half of the
`encr_public_key` it registered: it sends an `on_subscribe` with a challenge
encrypted to that key, and the subscriber answers with the plain text.

    shared = X25519(our encryption private key, the registry's encryption public key)
    challenge = base64(AES-256-ECB(shared, PKCS#7(text)))

The raw 32-byte X25519 shared secret is the AES-256 key, without a KDF, in ECB
mode with PKCS#7 padding, base64 (standard alphabet). That is what the
registries and adapters that exist do: beckn-onix's `encrypter` / `decrypter`
plugins and the Beckn-One registry (beckn-on-succinct/beckn-registry,
`AfterSaveParticipantKey.OnSubscribe`: Java's "AES" = AES/ECB/PKCS5Padding over
the X25519 agreement); see docs/protocol-notes.md ("Registry onboarding").

Public keys on the wire are base64 of the raw 32 bytes (what beckn-onix's key
manager writes); the DER SubjectPublicKeyInfo form (44 bytes, what ONDC and
Java tools print) is accepted too. Private key files are PEM (PKCS#8) or the
base64 raw 32 bytes. Nothing here logs a key or a challenge.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bridge.beckn.signing import KeyFileError

# DER SubjectPublicKeyInfo of an X25519 key: this 12-byte prefix, then the raw 32 bytes.
_X25519_SPKI_PREFIX = bytes.fromhex("302a300506032b656e032100")


class ChallengeError(Exception):
    """A challenge that does not decrypt (wrong key, not base64, bad padding)."""


def generate_encryption_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def encryption_key_pem(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_encryption_key(path: str | Path) -> X25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read encryption key {path}: {exc.strerror}") from exc
    if b"-----BEGIN" in data:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except ValueError as exc:
            raise KeyFileError(f"{path}: not a PEM private key") from exc
        if not isinstance(key, X25519PrivateKey):
            raise KeyFileError(f"{path}: not an X25519 key")
        return key
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except binascii.Error as exc:
        raise KeyFileError(f"{path}: neither PEM nor base64") from exc
    if len(raw) != 32:
        raise KeyFileError(f"{path}: a base64 X25519 key must be 32 bytes")
    return X25519PrivateKey.from_private_bytes(raw)


def public_b64(key: X25519PublicKey) -> str:
    """The raw 32 bytes, base64: the registry's `encr_public_key`."""
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)).decode()


def public_from_b64(value: str) -> X25519PublicKey:
    """An `encr_public_key` as registries publish it: raw 32 bytes or DER SPKI, base64."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ChallengeError("encryption public key is not base64") from exc
    if len(raw) == 44 and raw.startswith(_X25519_SPKI_PREFIX):
        raw = raw[len(_X25519_SPKI_PREFIX):]
    if len(raw) != 32:
        raise ChallengeError("encryption public key is not an X25519 key")
    return X25519PublicKey.from_public_bytes(raw)


def _cipher(private: X25519PrivateKey, peer: X25519PublicKey) -> Cipher[modes.ECB]:
    # ECB because that is the scheme registries use for this one short random string;
    # nothing else is encrypted with it here.
    return Cipher(algorithms.AES(private.exchange(peer)), modes.ECB())


def encrypt(text: str, private: X25519PrivateKey, peer: X25519PublicKey) -> str:
    padder = padding.PKCS7(128).padder()
    data = padder.update(text.encode()) + padder.finalize()
    enc = _cipher(private, peer).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode()


def decrypt(challenge: str, private: X25519PrivateKey, peer: X25519PublicKey) -> str:
    try:
        data = base64.b64decode(challenge, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ChallengeError("challenge is not base64") from exc
    if not data or len(data) % 16:
        raise ChallengeError("challenge is not a whole number of AES blocks")
    dec = _cipher(private, peer).decryptor()
    plain = dec.update(data) + dec.finalize()
    try:
        unpadder = padding.PKCS7(128).unpadder()
        text = (unpadder.update(plain) + unpadder.finalize()).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        # A challenge encrypted to another key decrypts to noise: bad padding or not text.
        raise ChallengeError("challenge does not decrypt with this key") from exc
    if not text.isprintable():
        raise ChallengeError("challenge does not decrypt with this key")
    return text
