"""`bridge keys generate | show`: the BPP's ed25519 signing key."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bridge.config import Settings


def _entry(settings: Settings, public_b64: str) -> dict[str, Any]:
    """The subscriber record to publish in the network registry."""
    return {"subscriber_id": settings.beckn_subscriber_id, "unique_key_id": settings.beckn_key_id,
            "type": "BPP", "domain": settings.beckn_domain,
            "subscriber_url": f"{settings.public_url}/beckn",
            "signing_public_key": public_b64, "status": "SUBSCRIBED"}


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.beckn.signing import generate_private_key, private_key_pem, public_key_b64

    path = Path(args.out or settings.beckn_private_key)
    if path.exists() and not args.force:
        print(f"bridge keys generate: {path} exists (use --force to replace it)", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_private_key()
    # Created 0600 from the start: the key is never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_key_pem(key))
    os.chmod(path, 0o600)
    public = public_key_b64(key.public_key())
    print(f"private key written to {path} (mode 0600)", file=sys.stderr)
    print(f"public key (base64, ed25519): {public}")
    print("registry entry to publish:")
    print(json.dumps(_entry(settings, public), indent=2))
    return 0


def cmd_show(_args: argparse.Namespace, settings: Settings) -> int:
    from bridge.beckn.signing import KeyFileError, load_private_key, public_key_b64

    try:
        key = load_private_key(settings.beckn_private_key)
    except KeyFileError as exc:
        print(f"bridge keys show: {exc}", file=sys.stderr)
        return 1
    public = public_key_b64(key.public_key())
    print(f"subscriber_id: {settings.beckn_subscriber_id}")
    print(f"unique_key_id: {settings.beckn_key_id}")
    print(f"public key:    {public}")
    print(json.dumps(_entry(settings, public), indent=2))
    return 0


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="the Beckn signing key of this BPP")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    gen = ksub.add_parser("generate", help="write a new ed25519 key pair")
    gen.add_argument("--out", help="private key file (default: [beckn] private_key)")
    gen.add_argument("--force", action="store_true", help="replace an existing key file")
    gen.set_defaults(func=cmd_generate)
    show = ksub.add_parser("show", help="print the public key and the registry entry")
    show.set_defaults(func=cmd_show)
