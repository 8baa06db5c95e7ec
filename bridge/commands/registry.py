"""`bridge registry subscribe | lookup`: onboarding to a Beckn registry
(bridge/beckn/onboarding.py, docs/beckn.md "Joining a network")."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from bridge.config import Settings


def cmd_subscribe(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.beckn.onboarding import OnboardingError

    if settings.beckn_mode == "adapter":
        print("bridge registry subscribe: adapter mode: the adapter's keys are the ones on the "
              "network; onboard them in the adapter", file=sys.stderr)
        return 1
    try:
        done = asyncio.run(_subscribe(args, settings))
    except OnboardingError as exc:
        print(f"bridge registry subscribe: {exc}", file=sys.stderr)
        return 1
    print(f"{settings.beckn_subscriber_id}|{done.key_id}: {done.status} at "
          f"{settings.beckn_registry_url} (challenge from {done.registry or 'the registry'} "
          "answered)")
    return 0


async def _subscribe(args: argparse.Namespace, settings: Settings) -> Any:
    from datetime import UTC, datetime

    import aiohttp

    from bridge.app import make_redis
    from bridge.beckn.keyring import load_ring
    from bridge.beckn.onboarding import OnboardingError, subscribe
    from bridge.beckn.signing import KeyFileError

    now = datetime.now(UTC)
    try:
        key_id = args.key_id or load_ring(settings).signing_entry(now).key_id
    except KeyFileError as exc:
        raise OnboardingError(str(exc)) from exc
    redis = make_redis(settings)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            return await subscribe(settings, redis, http, key_id, now)
    finally:
        await redis.aclose()


def cmd_lookup(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.beckn.registry import RegistryUnavailable

    if not settings.beckn_registry_url:
        print("bridge registry lookup: no registry: set beckn.registry_url", file=sys.stderr)
        return 1
    try:
        records = asyncio.run(_lookup(args, settings))
    except RegistryUnavailable as exc:
        print(f"bridge registry lookup: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(records, indent=2))
    if not records:
        print(f"bridge registry lookup: {args.subscriber_id} is not listed", file=sys.stderr)
        return 1
    return 0


async def _lookup(args: argparse.Namespace, settings: Settings) -> list[dict[str, Any]]:
    import aiohttp

    from bridge.beckn.registry import lookup_records

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        return await lookup_records(http, settings.beckn_registry_url, args.subscriber_id,
                                    args.key_id)


def register(sub: Any) -> None:
    reg = sub.add_parser("registry", help="the Beckn network registry")
    rsub = reg.add_subparsers(dest="registry_command", required=True)
    s = rsub.add_parser("subscribe", help="publish our key: /subscribe, answer the "
                        "on_subscribe challenge (bridge serve must be reachable), wait for "
                        "SUBSCRIBED")
    s.add_argument("--key-id", help="which of our keys (default: the one that signs now)")
    s.set_defaults(func=cmd_subscribe)
    lk = rsub.add_parser("lookup", help="what the registry holds for a subscriber")
    lk.add_argument("subscriber_id")
    lk.add_argument("key_id", nargs="?")
    lk.set_defaults(func=cmd_lookup)
