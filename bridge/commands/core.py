"""`bridge serve | worker | cpo invite | register | sync | cpo list`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

from bridge.config import Settings


def _deps(settings: Settings) -> Any:
    from bridge.app import make_redis
    from bridge.ocpi.deps import OcpiDeps
    from bridge.store.credentials import CredentialsStore
    from bridge.store.ocpi_store import OcpiStore

    redis = make_redis(settings)
    return OcpiDeps(settings=settings, store=OcpiStore(redis, settings.ocpi_events_maxlen),
                    creds=CredentialsStore(redis))


async def _with_deps(settings: Settings, work: Any) -> Any:
    deps = _deps(settings)
    try:
        return await work(deps)
    finally:
        await deps.close()
        await deps.store.redis.aclose()


def arm_crash_point(settings: Settings) -> None:
    """Fault-injection runs only (tests/chaos): die by SIGKILL at the named point."""
    if settings.test_crash_point:
        from bridge.crashpoints import arm

        print(f"bridge: TEST crash point armed: {settings.test_crash_point} (SIGKILL there)",
              file=sys.stderr)
        arm(settings.test_crash_point, kill=True)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.app import serve

    arm_crash_point(settings)
    if args.port is not None:
        settings = settings.replace(port=args.port)
    asyncio.run(serve(settings, extensions=extensions()))
    return 0


def extensions() -> tuple[Any, ...]:
    """Parts of the bridge that add routes to the app (Beckn BPP, orders)."""
    from bridge import extensions as ext

    return ext.app_extensions()


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from bridge import extensions as ext
    from bridge.worker import build_worker

    ext.worker_extensions()
    arm_crash_point(settings)
    worker = build_worker(settings, burst=args.burst)
    worker.run()
    return 0


def cmd_invite(args: argparse.Namespace, settings: Settings) -> int:
    async def work(deps: Any) -> str:
        token: str = await deps.creds.create_invite(args.country_code, args.party_id)
        return token

    token = asyncio.run(_with_deps(settings, work))
    print(f"Token A for CPO {args.country_code.upper()}-{args.party_id.upper()} "
          f"(one-time; versions URL {settings.public_url}/ocpi/versions):", file=sys.stderr)
    print(token)
    return 0


def cmd_cpo_list(_args: argparse.Namespace, settings: Settings) -> int:
    async def work(deps: Any) -> list[Any]:
        conns: list[Any] = await deps.creds.connections()
        return conns

    for conn in asyncio.run(_with_deps(settings, work)):
        parties = " ".join(f"{c}-{p}" for c, p in sorted(conn.parties))
        mods = ",".join(sorted({str(e.get("identifier")) for e in conn.endpoints}))
        print(f"{conn.id}  {parties}  {conn.versions_url}  modules={mods}")
    return 0


def cmd_register(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.ocpi.credentials import register_with
    from bridge.ocpi.errors import OcpiClientError, OcpiError

    async def work(deps: Any) -> Any:
        return await register_with(deps, args.versions_url, args.token_a)

    try:
        conn = asyncio.run(_with_deps(settings, work))
    except (OcpiClientError, OcpiError) as exc:
        print(f"bridge register: {exc}", file=sys.stderr)
        return 1
    parties = " ".join(f"{c}-{p}" for c, p in sorted(conn.parties))
    print(f"registered with {args.versions_url}: parties {parties}")
    return 0


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.ocpi.errors import OcpiClientError
    from bridge.ocpi.sync import SYNC_MODULES, sync

    modules = tuple(m.strip() for m in args.module.split(",")) if args.module else tuple(SYNC_MODULES)
    unknown = [m for m in modules if m not in SYNC_MODULES]
    if unknown:
        print(f"bridge sync: unknown module(s) {', '.join(unknown)}; "
              f"choose from {', '.join(SYNC_MODULES)}", file=sys.stderr)
        return 2
    party = None
    if args.party:
        cc, _, pid = args.party.upper().partition("-")
        if len(cc) != 2 or len(pid) != 3:
            print("bridge sync: --party must look like IN-TPC", file=sys.stderr)
            return 2
        party = (cc, pid)

    async def work(deps: Any) -> Any:
        return await sync(deps, datetime.now(UTC), party, modules, full=args.full)

    try:
        reports = asyncio.run(_with_deps(settings, work))
    except OcpiClientError as exc:
        print(f"bridge sync: {exc}", file=sys.stderr)
        return 1
    failed = False
    for r in reports:
        print(f"{r.party} {r.module}: fetched {r.fetched}, written {r.written}, "
              f"unchanged {r.unchanged}, invalid {r.invalid}")
        for err in r.errors[:20]:
            print(f"  ! {err}")
        failed = failed or bool(r.errors)
    if not reports:
        print("no registered CPO matches", file=sys.stderr)
        return 1
    return 1 if failed else 0


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the HTTP server (OCPI + Beckn endpoints)")
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run the arq worker (callbacks, commands, settlement)")
    p.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    p.set_defaults(func=cmd_worker)

    cpo = sub.add_parser("cpo", help="CPO connections")
    cpo_sub = cpo.add_subparsers(dest="cpo_command", required=True)
    p = cpo_sub.add_parser("invite", help="create a one-time token A for a CPO to register with")
    p.add_argument("country_code")
    p.add_argument("party_id")
    p.set_defaults(func=cmd_invite)
    p = cpo_sub.add_parser("list", help="list registered CPO platforms")
    p.set_defaults(func=cmd_cpo_list)

    p = sub.add_parser("register", help="register the bridge with a CPO (we POST credentials)")
    p.add_argument("versions_url")
    p.add_argument("token_a")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("sync", help="pull locations/tariffs/sessions/CDRs from CPO senders")
    p.add_argument("--party", help="only this CPO party, e.g. IN-TPC")
    p.add_argument("--module", help="comma-separated: locations,tariffs,sessions,cdrs")
    p.add_argument("--full", action="store_true", help="ignore the last sync time")
    p.set_defaults(func=cmd_sync)
