"""`bridge outbox [--phone N]` and `bridge order ORDER_ID`: what drivers were told, and an order."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from bridge.config import Settings


def cmd_outbox(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.app import make_redis
    from bridge.notify import Outbox

    async def work() -> list[Any]:
        redis = make_redis(settings)
        try:
            return await Outbox(redis).messages(args.phone, limit=args.limit)
        finally:
            await redis.aclose()

    messages = asyncio.run(work())
    if not messages:
        print("no messages" + (f" for {args.phone}" if args.phone else ""), file=sys.stderr)
    for m in messages:
        print(f"{m.phone:>16}  {m.kind:<7} ORD-{m.order[:8]}  {m.text}")
    return 0


def cmd_order(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.app import make_redis
    from bridge.store.orders import OrderStore

    async def work() -> Any:
        redis = make_redis(settings)
        try:
            store = OrderStore(redis)
            return await store.by_order_id(args.order_id) or await store.get(args.order_id)
        finally:
            await redis.aclose()

    order = asyncio.run(work())
    if order is None:
        print(f"bridge order: no order {args.order_id}", file=sys.stderr)
        return 1
    # OTP hashes are not secrets one can reverse, but they are nobody's business either.
    data = order.model_dump(mode="json", exclude={"otp_hash"})
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("outbox", help="messages queued for drivers (OTPs, bills): the dev SMS")
    p.add_argument("--phone", help="only this phone number")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_outbox)
    p = sub.add_parser("order", help="show one order (by order id or transaction id) as JSON")
    p.add_argument("order_id")
    p.set_defaults(func=cmd_order)
