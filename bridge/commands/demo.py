"""`bridge demo [--journey NAME] [--bap-port N]`: play the charging journeys with a
scripted BAP against a running bridge, worker and mock CPO (what `make run` shows)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bridge.config import Settings

JOURNEY_NAMES = ("reservation", "walk-in", "power-cut", "offline")


def cmd(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime

    from bridge import redisconn
    from bridge.beckn.keyring import load_ring
    from bridge.beckn.signing import KeyFileError, load_private_key
    from bridge.demo.client import DemoFailure, Endpoints
    from bridge.demo.journeys import DemoConfig, run_demo
    from bridge.demo.render import Printer

    notes: list[str] = []
    try:
        signing_key = load_ring(settings).signing_entry(datetime.now(UTC))  # after a rotation too
        bridge_key = load_private_key(signing_key.signing_key).public_key()
        notes.append(f"callbacks are verified with the bridge's key {signing_key.signing_key}"
                     f" ({settings.beckn_subscriber_id}|{signing_key.key_id})")
    except KeyFileError as exc:
        bridge_key = None
        notes.append(f"cannot read the bridge's key ({exc}): callbacks cannot be verified")
    cfg = DemoConfig(
        ends=Endpoints(bridge_url=settings.public_url, mock_url=args.mock_url.rstrip("/"),
                       bpp_id=settings.beckn_subscriber_id, domain=settings.beckn_domain,
                       version=settings.beckn_version),
        redis_url=settings.redis_url, bridge_key=bridge_key, bap_port=args.bap_port,
        journeys=(args.journey,) if args.journey else JOURNEY_NAMES, timeout=args.timeout,
        interrupt_after=settings.journey_interrupt_after, profile=args.profile,
        reserve_lead_minutes=getattr(settings, "journey_reserve_lead_minutes", None), notes=notes,
        connect=lambda: redisconn.data(settings))
    try:
        results = asyncio.run(run_demo(cfg, Printer(sys.stdout, color=sys.stdout.isatty())))
    except DemoFailure as exc:
        print(f"bridge demo: {exc}", file=sys.stderr)
        return 2
    return 0 if results and all(results.values()) else 1


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="play the charging journeys with a scripted BAP "
                                    "(needs serve, worker and a connected mock CPO)")
    p.add_argument("--journey", choices=JOURNEY_NAMES, help="play only this one (default: all)")
    p.add_argument("--bap-port", type=int, default=7070,
                   help="port of the demo BAP on 127.0.0.1: callbacks and the registry lookup "
                        "(default 7070)")
    p.add_argument("--mock-url", default="http://127.0.0.1:9090",
                   help="the mock CPO's base URL, for its admin API (default "
                        "http://127.0.0.1:9090)")
    p.add_argument("--profile", choices=("draft", "lts"), default="draft",
                   help="the BAP's dialect: draft (/beckn/{action}, answered in the bridge's "
                        "rc2 or guide profile) or lts (Beckn 2.0 LTS: /select ..., counter-"
                        "signed Acks)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds each journey may take (default 120)")
    p.set_defaults(func=cmd)
