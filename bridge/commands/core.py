"""`bridge serve | worker | register | sync | cpo invite | list | remove | rotate`."""

from __future__ import annotations

import argparse
import asyncio
import errno
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bridge.config import Settings


def _deps(settings: Settings) -> Any:
    from bridge.app import make_redis
    from bridge.ocpi.deps import OcpiDeps
    from bridge.store.credentials import CredentialsStore
    from bridge.store.ocpi_store import OcpiStore

    redis = make_redis(settings)
    # cache_seconds=0: a command's process must see Redis as it is.
    return OcpiDeps(settings=settings, store=OcpiStore(redis, settings.ocpi_events_maxlen),
                    creds=CredentialsStore(redis, cache_seconds=0))


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
        arm(settings.test_crash_point, kill=True, after=settings.test_crash_after)


def durable_or_exit(args: argparse.Namespace, settings: Settings, what: str
                    ) -> tuple[Settings, int]:
    """Settings with `--allow-volatile-redis` applied, and 0; or 2 after printing why the
    process must not start (Redis does not persist acknowledged writes)."""
    from bridge.durability import check

    if getattr(args, "allow_volatile_redis", False):
        settings = settings.replace(redis_allow_volatile=True)
    reason = asyncio.run(check(settings, what))
    if reason:
        print(f"bridge {what}: {reason}", file=sys.stderr)
        return settings, 2
    return settings, 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.app import serve

    arm_crash_point(settings)
    if args.port is not None:
        settings = settings.replace(port=args.port)
    if args.reuse_port:
        settings = settings.replace(reuse_port=True)
    settings, code = durable_or_exit(args, settings, "serve")
    if code:
        return code
    try:
        asyncio.run(serve(settings, extensions=extensions()))
    except OSError as exc:  # the address is taken or not ours: one line, not a traceback
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        print(f"bridge serve: cannot listen on {settings.host}:{settings.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def extensions() -> tuple[Any, ...]:
    """Parts of the bridge that add routes to the app (Beckn BPP, orders)."""
    from bridge import extensions as ext

    return ext.app_extensions()


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run the worker; never exit because Redis went away: a worker that stops on a Redis
    error is replaced by a new one after a capped backoff (issue 12, finding 7)."""
    import time

    import structlog

    from bridge import extensions as ext
    from bridge.beckn.callbacks import make_signer
    from bridge.worker import REDIS_ERRORS, backoff, build_worker

    ext.worker_extensions()
    arm_crash_point(settings)
    settings, code = durable_or_exit(args, settings, "worker")
    if code:
        return code
    # The worker signs every callback (signed mode): a key it cannot read stops it here,
    # before it opens anything, rather than in arq's start-up (KeyFileError: one line in
    # cli.main). In adapter mode the adapter signs and no key is needed.
    make_signer(settings)
    log = structlog.get_logger("bridge.worker")
    failures = 0
    while True:
        worker = build_worker(settings, burst=args.burst)
        started = time.monotonic()
        try:
            worker.run()
            return 0  # stopped by a signal, or a --burst run is done
        except REDIS_ERRORS as exc:
            failures = 1 if time.monotonic() - started > 60 else failures + 1
            delay = backoff(failures)
            log.warning("worker.restart_after_redis_error", error=repr(exc)[:200],
                        retry_in=delay)
            time.sleep(delay)


def parse_parties(words: list[str]) -> list[tuple[str, str]]:
    """`IN TPC` (the historical form) or `IN-TPC [IN-ZEO ...]`. ValueError says what is wrong."""
    if len(words) == 2 and len(words[0]) == 2 and len(words[1]) == 3:
        words = [f"{words[0]}-{words[1]}"]
    out = []
    for word in words:
        cc, sep, pid = word.upper().partition("-")
        if not sep or len(cc) != 2 or len(pid) != 3 or not cc.isalpha() or not pid.isalnum():
            raise ValueError(f"{word!r} is not a party: write it like IN-TPC")
        out.append((cc, pid))
    if not out:
        raise ValueError("name at least one party, e.g. IN-TPC")
    return out


def cmd_invite(args: argparse.Namespace, settings: Settings) -> int:
    try:
        parties = parse_parties(args.parties)
    except ValueError as exc:
        print(f"bridge cpo invite: {exc}", file=sys.stderr)
        return 2

    async def work(deps: Any) -> str:
        token: str = await deps.creds.create_invite(*parties[0], *parties[1:])
        return token

    token = asyncio.run(_with_deps(settings, work))
    names = " ".join(f"{c}-{p}" for c, p in parties)
    print(f"Token A for CPO {names} (one-time, registers exactly these parties; "
          f"versions URL {settings.public_url}/ocpi/versions):", file=sys.stderr)
    print(token)
    return 0


def cmd_cpo_list(_args: argparse.Namespace, settings: Settings) -> int:
    async def work(deps: Any) -> list[tuple[Any, dict[tuple[str, str], dict[str, str]]]]:
        out = []
        for conn in await deps.creds.connections():
            stats = {p: await deps.creds.stats(*p) for p in sorted(conn.parties)}
            out.append((conn, stats))
        return out

    rows = asyncio.run(_with_deps(settings, work))
    if not rows:
        print("no CPO platform is registered", file=sys.stderr)
    for conn, stats in rows:
        mods = ",".join(sorted({str(e.get("identifier")) for e in conn.endpoints}))
        state = f"  [{conn.state}]" if conn.state else ""
        print(f"{conn.versions_url}  OCPI {conn.versions}  since {conn.created[:19]}  "
              f"modules={mods}{state}")
        for role in sorted(conn.roles, key=lambda r: (r["country_code"], r["party_id"])):
            party = (role["country_code"].upper(), role["party_id"].upper())
            st = stats.get(party, {})
            push = f"{st['last_push'][:19]} ({st.get('last_push_what', '')})" \
                if st.get("last_push") else "never"
            err = f"{st['last_error_at'][:19]} {st['last_error']}" \
                if st.get("last_error") else "none"
            name = role.get("business_details", {}).get("name", "")
            print(f"  {party[0]}-{party[1]}  {role['role']}  {name}\n"
                  f"      last push: {push}\n      last error: {err}")
    return 0


def _one_party(value: str) -> tuple[str, str] | None:
    try:
        return parse_parties([value])[0]
    except ValueError:
        return None


def cmd_cpo_remove(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.ocpi.credentials import unregister_with

    party = _one_party(args.party)
    if party is None:
        print(f"bridge cpo remove: {args.party!r} is not a party: write it like IN-TPC",
              file=sys.stderr)
        return 2

    async def work(deps: Any) -> tuple[Any, str | None, dict[str, dict[str, int]]]:
        conn = await deps.creds.connection_for_party(*party)
        if conn is None:
            return None, None, {}
        remote_error = await unregister_with(deps, conn)
        purged = {}
        if args.purge:
            for cc, pid in sorted(conn.parties):
                purged[f"{cc}-{pid}"] = await deps.store.purge_party(cc, pid)
        return conn, remote_error, purged

    conn, remote_error, purged = asyncio.run(_with_deps(settings, work))
    if conn is None:
        print(f"bridge cpo remove: no registered platform serves {party[0]}-{party[1]}",
              file=sys.stderr)
        return 1
    names = " ".join(f"{c}-{p}" for c, p in sorted(conn.parties))
    print(f"removed {conn.versions_url}: parties {names}")
    if remote_error:
        print(f"  the CPO was not told (unregister there by hand): {remote_error}")
    for name, counts in purged.items():
        print(f"  purged {name}: " + ", ".join(f"{n} {m}" for m, n in counts.items()))
    if not args.purge:
        print("  its locations, tariffs, sessions and CDRs are kept (--purge deletes them)")
    return 0


def cmd_cpo_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.ocpi.credentials import RegistrationFailed, rotate_with
    from bridge.ocpi.errors import OcpiClientError

    party = _one_party(args.party)
    if party is None:
        print(f"bridge cpo rotate: {args.party!r} is not a party: write it like IN-TPC",
              file=sys.stderr)
        return 2

    async def work(deps: Any) -> Any:
        conn = await deps.creds.connection_for_party(*party)
        if conn is None:
            return None
        return await rotate_with(deps, conn)

    try:
        conn = asyncio.run(_with_deps(settings, work))
    except (OcpiClientError, RegistrationFailed) as exc:
        print(f"bridge cpo rotate: {exc}", file=sys.stderr)
        return 1
    if conn is None:
        print(f"bridge cpo rotate: no registered platform serves {party[0]}-{party[1]}",
              file=sys.stderr)
        return 1
    print(f"rotated the tokens of {conn.versions_url} (both ways); the old ones no longer work")
    return 0


def cmd_register(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.ocpi.credentials import RegistrationFailed, register_with
    from bridge.ocpi.errors import OcpiClientError, OcpiError

    async def work(deps: Any) -> Any:
        return await register_with(deps, args.versions_url, args.token_a)

    try:
        conn = asyncio.run(_with_deps(settings, work))
    except (OcpiClientError, OcpiError, RegistrationFailed) as exc:
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

    progress = SyncProgress(sys.stderr)

    async def work(deps: Any) -> Any:
        try:
            return await sync(deps, datetime.now(UTC), party, modules, full=args.full,
                              progress=progress)
        finally:
            progress.close()

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


class SyncProgress:
    """`bridge sync`'s progress: a bar per list on a terminal (tqdm), else a line every
    5 seconds (logs of a cron job or a container)."""

    def __init__(self, stream: Any, every: float = 5.0) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every = every
        self.bar: Any = None
        self.module = ""
        self.last = 0.0

    def __call__(self, module: str, read: int, total: int | None) -> None:
        if module != self.module:
            self.close()
            self.module = module
            if self.tty:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=f"sync {module}", unit="obj", file=self.stream,
                                leave=True)
        if self.bar is not None:
            if total is not None and self.bar.total != total:
                self.bar.total = total
            self.bar.update(read - self.bar.n)
            return
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            of = f"/{total}" if total is not None else ""
            print(f"sync {module}: {read}{of}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def register(sub: Any) -> None:
    volatile_help = ("start even if Redis does not persist acknowledged writes (no AOF): "
                     "tests and benchmarks only")
    p = sub.add_parser("serve", help="run the HTTP server (OCPI + Beckn endpoints)")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--reuse-port", action="store_true", default=None,
                   help="bind with SO_REUSEPORT: several serve processes on one address, "
                        "the kernel spreads connections (docs/scaling.md)")
    p.add_argument("--allow-volatile-redis", action="store_true", help=volatile_help)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run the arq worker (callbacks, commands, settlement)")
    p.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    p.add_argument("--allow-volatile-redis", action="store_true", help=volatile_help)
    p.set_defaults(func=cmd_worker)

    cpo = sub.add_parser("cpo", help="CPO connections")
    cpo_sub = cpo.add_subparsers(dest="cpo_command", required=True)
    p = cpo_sub.add_parser("invite", help="create a one-time token A for a CPO to register with")
    p.add_argument("parties", nargs="+", metavar="PARTY",
                   help="IN-TPC [IN-ZEO ...]: the parties it may register (or: IN TPC)")
    p.set_defaults(func=cmd_invite)
    p = cpo_sub.add_parser("list", help="registered CPO platforms: roles, versions, "
                                        "last push and last error per party")
    p.set_defaults(func=cmd_cpo_list)
    p = cpo_sub.add_parser("remove", help="unregister a CPO platform (data kept unless --purge)")
    p.add_argument("party", metavar="CC-PID")
    p.add_argument("--purge", action="store_true",
                   help="also delete its locations, tariffs, sessions and CDRs")
    p.set_defaults(func=cmd_cpo_remove)
    p = cpo_sub.add_parser("rotate", help="new credentials tokens both ways (credentials PUT)")
    p.add_argument("party", metavar="CC-PID")
    p.set_defaults(func=cmd_cpo_rotate)

    p = sub.add_parser("register", help="register the bridge with a CPO (we POST credentials)")
    p.add_argument("versions_url")
    p.add_argument("token_a")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("sync", help="pull locations/tariffs/sessions/CDRs from CPO senders")
    p.add_argument("--party", help="only this CPO party, e.g. IN-TPC")
    p.add_argument("--module", help="comma-separated: locations,tariffs,sessions,cdrs")
    p.add_argument("--full", action="store_true", help="ignore the last sync time")
    p.set_defaults(func=cmd_sync)
