"""`bridge catalog publish | status`: the catalog at the network's Catalog Discovery
Service (bridge/beckn/catalog_publish.py; docs/beckn.md "Catalog publish")."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from typing import Any

from bridge.config import Settings


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.beckn.catalog_publish import CdsRefused, CdsUnavailable, PublishError

    cpo = (args.cpo or "").upper() or None
    if args.cpo and not re.fullmatch(r"[A-Z]{2}-[A-Z0-9]{3}", cpo or ""):
        print(f"bridge catalog publish: --cpo: CC-PID expected (e.g. IN-TPC), not {args.cpo!r}",
              file=sys.stderr)
        return 1
    try:
        reports = asyncio.run(_publish(settings, cpo))
    except CdsUnavailable as exc:
        print(f"bridge catalog publish: {_who(exc)}the CDS is unavailable: {exc}",
              file=sys.stderr)
        return 1
    except CdsRefused as exc:
        print(f"bridge catalog publish: {_who(exc)}{exc}", file=sys.stderr)
        return 1
    except PublishError as exc:
        print(f"bridge catalog publish: {exc}", file=sys.stderr)
        return 1
    for r in reports:
        n = "request" if r.requests == 1 else "requests"
        print(f"{r.catalog_id}: {r.items} items in {r.requests} {n}, {r.withdrawn} withdrawn "
              f"(ACKed by {settings.beckn_cds_url}; the results come to "
              f"{settings.bpp_uri}/catalog/on_publish: bridge catalog status)")
    if not reports:
        print("nothing to publish: no catalog yet (has a CPO pushed locations?)")
    return 0


def _who(exc: Exception) -> str:
    prov = getattr(exc, "provider", "")
    return f"{prov}: " if prov else ""


async def _publish(settings: Settings, cpo: str | None) -> list[Any]:
    from bridge.app import make_redis
    from bridge.beckn.catalog_publish import PublishError, http_session, make_publisher
    from bridge.store.catalog import CatalogStore

    if not settings.beckn_cds_url:
        raise PublishError("no CDS: set beckn.cds_url (BRIDGE_BECKN_CDS_URL)")
    redis = make_redis(settings)
    try:
        async with http_session(settings) as http:
            publisher = make_publisher(settings, redis, CatalogStore(redis), http)
            return await publisher.publish_all("command", only=cpo, wait=True)
    finally:
        await redis.aclose()


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.beckn.catalog_publish import status_lines

    rows, stats = asyncio.run(_status(settings))
    if not settings.beckn_cds_url:
        print("no CDS configured (beckn.cds_url): the catalog is not published")
    for line in status_lines(rows, stats, time.time()):
        print(line)
    return 0


async def _status(settings: Settings) -> Any:
    from bridge.app import make_redis
    from bridge.beckn.catalog_publish import status

    redis = make_redis(settings)
    try:
        return await status(redis)
    finally:
        await redis.aclose()


def register(sub: Any) -> None:
    cat = sub.add_parser("catalog", help="the catalog at the network's discovery service (CDS)")
    csub = cat.add_subparsers(dest="catalog_command", required=True)
    p = csub.add_parser("publish", help="publish every item (and withdraw what is gone) to "
                        "beckn.cds_url now")
    p.add_argument("--cpo", help="one CPO only (CC-PID, e.g. IN-TPC)")
    p.set_defaults(func=cmd_publish)
    s = csub.add_parser("status", help="per catalog: what was sent, the CDS's last result, "
                        "what is waiting")
    s.set_defaults(func=cmd_status)
