"""`bridge worker`: the arq worker that runs every outbound call and background job.

Job functions are plain `async def job(ctx, ...)`; `ctx["deps"]` holds what
they need (settings, Redis, stores, an HTTP session), built once per process
in `startup`. Feature packages contribute jobs by listing them in `JOBS`
below; long-running consumers (e.g. the catalog renderer reading the OCPI
change stream) are started by `STARTUP` hooks and stopped on shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from arq.connections import RedisSettings
from arq.cron import cron
from arq.worker import Worker, func

from bridge import metrics
from bridge.config import Settings
from bridge.ocpi.deps import OcpiDeps
from bridge.ocpi.sync import sync
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
    from arq.connections import ArqRedis

    settings: Settings = ctx["settings"]
    deps: OcpiDeps = ctx["ocpi"]
    skip = parse_parties(settings.ocpi_sync_skip)
    arq = ArqRedis(connection_pool=ctx["redis_app"].connection_pool)
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


def build_worker(settings: Settings, *, burst: bool = False, max_jobs: int = 200,
                 poll_delay: float = 0.05) -> Worker:
    from bridge.app import make_redis

    async def startup(ctx: dict[str, Any]) -> None:
        redis = make_redis(settings)
        ctx["settings"] = settings
        ctx["redis_app"] = redis
        ctx["ocpi"] = OcpiDeps(settings=settings, store=OcpiStore(redis, settings.ocpi_events_maxlen),
                               creds=CredentialsStore(redis))
        ctx["tasks"] = []
        try:  # a burst run (tests, one-off) has nothing to be scraped for
            ctx["metrics_server"] = None if burst else await metrics.start_server(
                redis, settings.host, settings.worker_metrics_port)
        except OSError as exc:  # the port is taken (a second worker on this host): no endpoint
            log.warning("worker.metrics_port_unavailable", port=settings.worker_metrics_port,
                        error=str(exc))
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
    return Worker(
        functions=[metrics.timed(f) for f in JOBS],
        cron_jobs=crons,
        queue_name=QUEUE,
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
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
