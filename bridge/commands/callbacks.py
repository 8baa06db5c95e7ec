"""`bridge callbacks failed | replay ID`: dead-lettered Beckn callbacks."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bridge.config import Settings


async def _with_redis(settings: Settings, work: Any) -> Any:
    from bridge.app import make_redis

    redis = make_redis(settings)
    try:
        return await work(redis)
    finally:
        await redis.aclose()


def cmd_failed(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.beckn.callbacks import dead_letters

    rows = asyncio.run(_with_redis(settings, lambda r: dead_letters(r, args.limit)))
    for d in rows:
        print(f"{d.id}  {d.dead_at:%Y-%m-%dT%H:%M:%SZ}  {d.action}  txn={d.txn}  "
              f"attempts={d.attempts}  error={d.last_error}  {d.url}")
    if not rows:
        print("no failed callbacks", file=sys.stderr)
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.beckn.callbacks import replay

    ok = asyncio.run(_with_redis(settings, lambda r: replay(r, settings, args.id)))
    if not ok:
        print(f"bridge callbacks replay: no failed callback {args.id}", file=sys.stderr)
        return 1
    print(f"queued {args.id} again; the worker delivers it")
    return 0


def register(sub: Any) -> None:
    cb = sub.add_parser("callbacks", help="Beckn on_* callbacks that could not be delivered")
    csub = cb.add_subparsers(dest="callbacks_command", required=True)
    failed = csub.add_parser("failed", help="list dead-lettered callbacks, newest first")
    failed.add_argument("--limit", type=int, default=100)
    failed.set_defaults(func=cmd_failed)
    rep = csub.add_parser("replay", help="send one dead-lettered callback again")
    rep.add_argument("id")
    rep.set_defaults(func=cmd_replay)
