"""`bridge worker`: the arq worker that runs every outbound call and background job.

Job functions are plain `async def job(ctx, ...)`; `ctx["deps"]` holds what
they need (settings, Redis, stores, an HTTP session), built once per process
in `startup`. Feature packages contribute jobs by listing them in `JOBS`
below; long-running consumers (e.g. the catalog renderer reading the OCPI
change stream) are started by `STARTUP` hooks and stopped on shutdown; they
run under `keep_running`, which starts them again after any error.

`BridgeWorker` is arq's worker made for processes that get killed and a Redis
that restarts (issue 12, findings 2 and 7):

- Lease. arq marks a job in progress for the largest job timeout + 10 s (610 s
  with `sync`'s 600 s) and no worker runs it again before the mark expires: a
  job whose worker was killed waited ten minutes. Here the mark lasts
  `worker_job_lease` s (15) and is renewed every third of that while the job
  runs (a heartbeat): a killed worker's job runs again within a lease, a live
  worker's long job keeps its mark. Job timeouts stay what they were.
- Redis errors. arq's poll loop raises on a lost connection and its process
  ends. Here a failed poll is logged and tried again with capped backoff (a
  Redis restart or failover is waited out); `bridge worker` also starts a new
  worker if one ever stops on a Redis error, and runs under a supervisor
  (`scripts/run.sh`, docker compose `restart:`) that restarts it anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.cron import cron
from arq.worker import Worker, func
from redis.exceptions import RedisError

from bridge import metrics, tracing
from bridge.config import Settings
from bridge.ocpi.deps import OcpiDeps
from bridge.ocpi.sync import sync
from bridge.store import shards
from bridge.store.credentials import CredentialsStore
from bridge.store.ocpi_store import OcpiStore

log = structlog.get_logger("bridge.worker")

QUEUE = "obb:queue"


async def sync_job(ctx: dict[str, Any], party: str | None = None,
                   modules: list[str] | None = None) -> list[dict[str, Any]]:
    """Pull from CPO senders (scheduled by `bridge sync --enqueue` or at start-up)."""
    deps: OcpiDeps = ctx["ocpi"]
    who = tuple(party.upper().split("-", 1)) if party else None
    reports = await sync(deps, datetime.now(UTC), who,  # type: ignore[arg-type]
                         tuple(modules) if modules else ("locations", "tariffs", "sessions", "cdrs"))
    return [r.__dict__ for r in reports]


async def periodic_sync(ctx: dict[str, Any]) -> int:
    """arq cron (`ocpi.sync_interval` minutes): queue an incremental `sync` job per CPO party,
    except the parties in `ocpi.sync_skip` (those that push reliably). Each job reads only
    what changed since that party's last sync; a party whose job is still queued or
    running is not queued twice (the job id is per party and run)."""
    settings: Settings = ctx["settings"]
    deps: OcpiDeps = ctx["ocpi"]
    skip = parse_parties(settings.ocpi_sync_skip)
    from bridge import redisconn

    # arq's own client (the queues, wherever they are); a bare ctx: the data's Redis
    arq: ArqRedis = ctx.get("redis") or redisconn.arq_on(ctx["redis_app"])
    queued = 0
    run = datetime.now(UTC).strftime("%Y%m%d%H%M")
    for conn in await deps.creds.connections():
        for cc, pid in sorted(conn.parties - skip):
            job = await arq.enqueue_job("sync", f"{cc}-{pid}", _queue_name=QUEUE,
                                        _job_id=f"sync:{cc}-{pid}:{run}")
            queued += job is not None
    log.info("worker.periodic_sync", queued=queued, skipped=sorted(f"{c}-{p}" for c, p in skip))
    return queued


def parse_parties(text: str) -> frozenset[tuple[str, str]]:
    """"IN-TPC, IN-ZEO" -> {("IN", "TPC"), ("IN", "ZEO")}."""
    out = set()
    for item in text.split(","):
        cc, _, pid = item.strip().upper().partition("-")
        if cc and pid:
            out.add((cc, pid))
    return frozenset(out)


def sync_schedule(minutes: int) -> dict[str, Any]:
    """arq cron fields for "every `minutes` minutes" (minute marks when it divides an hour,
    else whole hours)."""
    if minutes < 60:
        return {"minute": set(range(0, 60, max(minutes, 1)))}
    return {"hour": set(range(0, 24, max(minutes // 60, 1))), "minute": {0}}


JOBS: list[Any] = [func(sync_job, name="sync", timeout=600)]

# Called with the worker ctx at start-up; may return a task to cancel at shutdown.
StartupHook = Callable[[dict[str, Any]], Awaitable[asyncio.Task[Any] | None]]
STARTUP: list[StartupHook] = []


REDIS_ERRORS = (RedisError, OSError)
BACKOFF_MAX = 10.0  # seconds between tries while Redis does not answer


def backoff(failures: int) -> float:
    return float(min(0.2 * 2 ** min(failures, 10), BACKOFF_MAX))


async def keep_running(name: str, make: Callable[[], Awaitable[None]]) -> None:
    """Run a long-lived consumer; if it ever raises (Redis away, a bug hit once), log and
    start it again after a capped backoff. Only cancellation ends it."""
    failures = 0
    while True:
        started = time.monotonic()
        try:
            await make()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures = 1 if time.monotonic() - started > 60 else failures + 1
            delay = backoff(failures)
            log.warning("worker.consumer_restart", consumer=name, error=repr(exc)[:200],
                        retry_in=delay)
            await asyncio.sleep(delay)


class BridgeWorker(Worker):
    """arq's Worker with short renewed job leases and a poll loop that outlives Redis
    restarts (see the module docstring)."""

    def __init__(self, *args: Any, lease: float = 15.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lease = lease
        self.in_progress_timeout_s = lease  # arq's PSETEX of the in-progress mark
        self._renewed = 0.0
        self._failures = 0

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
            await self._renew_leases()
        except REDIS_ERRORS as exc:
            self._failures += 1
            delay = backoff(self._failures)
            log.warning("worker.redis_unavailable", error=repr(exc)[:200], retry_in=delay)
            await asyncio.sleep(delay)
            return
        if self._failures:
            log.info("worker.redis_back", after_failures=self._failures)
            self._failures = 0

    async def _renew_leases(self) -> None:
        """The heartbeat: renew the in-progress mark of every job running here."""
        now = time.monotonic()
        if now - self._renewed < self.lease / 3:
            return
        self._renewed = now
        running = [job_id for job_id, task in self.tasks.items() if not task.done()]
        if not running:
            return
        async with self.pool.pipeline(transaction=False) as pipe:
            for job_id in running:
                pipe.pexpire(in_progress_key_prefix + job_id, int(self.lease * 1000))
            await pipe.execute()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's, but a Redis error while starting a job gives its slot back (arq's own
        would keep it taken: after a few Redis hiccups the worker would take no job)."""
        for job_id_b in job_ids:
            taken = self.job_counter
            try:
                await super().start_jobs([job_id_b])
            except REDIS_ERRORS:
                if self.job_counter > taken and job_id_b.decode() not in self.tasks:
                    self.job_counter -= 1
                    self.sem.release()
                raise


def build_worker(settings: Settings, *, burst: bool = False, max_jobs: int = 200,
                 poll_delay: float = 0.05) -> Worker:
    from bridge import redisconn
    from bridge.app import make_redis

    async def startup(ctx: dict[str, Any]) -> None:
        tracing.setup(settings)  # no-op unless server.tracing is on
        redis = make_redis(settings)
        ctx["settings"] = settings
        ctx["redis_app"] = redis
        ctx["ocpi"] = OcpiDeps(settings=settings, store=OcpiStore(redis, settings.ocpi_events_maxlen),
                               creds=CredentialsStore(redis))
        ctx["tasks"] = []
        try:  # a burst run (tests, one-off) has nothing to be scraped for
            ctx["metrics_server"] = None if burst else await metrics.start_server(
                redis, settings.host, settings.worker_metrics_port, queue=ctx.get("redis"))
        except OSError as exc:  # the port is taken (a second worker on this host): no endpoint
            log.warning("worker.metrics_port_unavailable", port=settings.worker_metrics_port,
                        error=str(exc))
        if shards.current().relay:  # the queues are elsewhere: jobs come through the relay
            from bridge.relay import relay_all

            ctx["tasks"].append(asyncio.create_task(relay_all(redis, ctx["redis"]),
                                                    name="relay"))
        for hook in STARTUP:
            task = await hook(ctx)
            if task is not None:
                ctx["tasks"].append(task)
        log.info("worker.started", jobs=[j.name for j in JOBS], consumers=len(ctx["tasks"]))

    async def shutdown(ctx: dict[str, Any]) -> None:
        if ctx.get("metrics_server") is not None:
            await ctx["metrics_server"].cleanup()
        for task in ctx.get("tasks", []):
            task.cancel()
        await asyncio.gather(*ctx.get("tasks", []), return_exceptions=True)
        await ctx["ocpi"].close()
        await ctx["redis_app"].aclose()

    crons = [cron(periodic_sync, name="periodic_sync", timeout=60, run_at_startup=False,
                  **sync_schedule(settings.ocpi_sync_interval))] if settings.ocpi_sync_interval else []
    return BridgeWorker(
        lease=settings.worker_job_lease,
        functions=[metrics.timed(f) for f in JOBS],
        cron_jobs=crons,
        queue_name=QUEUE,
        redis_pool=redisconn.queue(settings),
        on_startup=startup,
        on_shutdown=shutdown,
        burst=burst,
        max_jobs=max_jobs,
        handle_signals=not burst,
        keep_result=3600,
        # SIGTERM/SIGINT: running jobs get this long to finish; the rest stay queued
        job_completion_wait=int(settings.shutdown_timeout),
        # arq polls its queue; its 0.5 s default would add up to half a second to every
        # command, settlement and timer. A poll is one cheap ZRANGEBYSCORE.
        poll_delay=poll_delay,
    )
