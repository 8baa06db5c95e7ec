"""The LTS counter-signature: the receiver of a Beckn request signs its `Ack` (LTS
`components.schemas.CounterSignature`), proving it authenticated and received the
request. Pure; `now` is an argument.

    Ack = {"status": "ACK" | "NACK", "signature": CounterSignature, "error"?: Error}
    CounterSignature = Signature keyId="{subscriber}|{key}|ed25519",algorithm="ed25519",
        created="{unix}",expires="{unix}",
        headers="(created) (expires) digest (request-digest) (message-id)",signature="..."
    signing string = "(created): {created}\\n(expires): {expires}\\n"
                     "digest: BLAKE-512={b64 of the Ack body}\\n"
                     "(request-digest): BLAKE-512={b64 of the inbound request body}\\n"
                     "(message-id): {the request's context.messageId}"

The Ack body carries its own signature, so its digest cannot cover it: the digest is
over the Ack without `signature`, written as canonical JSON (RFC 8785: keys sorted, no
whitespace; our Acks hold strings only). A counter-signature on an Ack we receive is
also accepted over the same object written compactly in the order its members came
(what `JSON.stringify` of the parsed Ack minus `signature` gives), since the LTS does
not say which bytes (docs/protocol-notes.md, "Counter-signed ACKs").
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bridge.beckn import signing
from bridge.beckn.errors import AuthError

COUNTER_HEADERS: Final = "(created) (expires) digest (request-digest) (message-id)"


def canonical(ack: dict[str, Any]) -> bytes:
    """The bytes an Ack's digest covers: the Ack without `signature`, canonical JSON."""
    return json.dumps({k: v for k, v in ack.items() if k != "signature"}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False).encode()


def _as_sent(ack: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in ack.items() if k != "signature"},
                      separators=(",", ":"), ensure_ascii=False).encode()


def signing_string(created: int, expires: int, ack_bytes: bytes, request_body: bytes,
                   message_id: str) -> bytes:
    return (f"(created): {created}\n(expires): {expires}\n"
            f"digest: {signing.digest(ack_bytes)}\n"
            f"(request-digest): {signing.digest(request_body)}\n"
            f"(message-id): {message_id}").encode()


def counter_sign(sign: Callable[[bytes], bytes], subscriber_id: str, key_id: str,
                 ack: dict[str, Any], request_body: bytes, message_id: str, now: float,
                 validity: int) -> str:
    """The `signature` of `ack` (an Ack without it), answering `request_body`; `sign`
    is the ed25519 signing of our key (`Signer.sign_bytes`)."""
    created = int(now)
    expires = created + validity
    sig = sign(signing_string(created, expires, canonical(ack), request_body, message_id))
    return (f'Signature keyId="{subscriber_id}|{key_id}|ed25519",algorithm="ed25519",'
            f'created="{created}",expires="{expires}",headers="{COUNTER_HEADERS}",'
            f'signature="{base64.b64encode(sig).decode()}"')


def parse(value: Any) -> signing.SignatureHeader:
    """A CounterSignature (the `signature` of an Ack); AuthError when missing or not one."""
    if not isinstance(value, str) or not value:
        raise AuthError("the Ack has no signature", {"reason": "missing"})
    head, sep, _ = value.partition('headers="')
    if not sep:
        raise AuthError("the Ack's signature names no headers", {"reason": "malformed"})
    headers = value[len(head) + len(sep):].split('"', 1)[0]
    if headers.split() != COUNTER_HEADERS.split():
        raise AuthError(f'the Ack\'s signature must cover "{COUNTER_HEADERS}"',
                        {"reason": "malformed"})
    # the rest of the format is the request signature's
    return signing.parse_header(value.replace(f'headers="{headers}"',
                                              f'headers="{signing.SIGNED_HEADERS}"'))


def verify(ack: dict[str, Any], request_body: bytes, message_id: str,
           public_key: Ed25519PublicKey, now: float, skew: float = 0.0) -> signing.SignatureHeader:
    """Check the counter-signature of a received Ack; AuthError (with a reason) if it is
    missing, malformed, out of its time window or does not verify."""
    header = parse(ack.get("signature"))
    signing.check_window(header, now, skew)
    for body in (canonical(ack), _as_sent(ack)):
        try:
            public_key.verify(header.signature, signing_string(
                header.created, header.expires, body, request_body, message_id))
            return header
        except InvalidSignature:
            continue
    raise AuthError("the Ack's counter-signature does not verify", {"reason": "bad_signature"})
