"""Plugging the journey into `bridge serve` (Beckn actions, pages) and `bridge worker` (jobs)."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from arq import Retry
from arq.worker import func

from bridge.journey.common import JourneyDeps

log = structlog.get_logger("bridge.journey.worker")


def register_actions() -> None:
    """Importing an action module registers its Beckn handler."""
    from bridge.journey import (  # noqa: F401
        cancel,
        confirm,
        init,
        rating,
        select,
        status,
        support,
        track,
        update,
    )


def app_extension(app: web.Application) -> None:
    from bridge.app import REDIS, SETTINGS
    from bridge.journey.web import JOURNEY, routes

    register_actions()
    deps = JourneyDeps.build(app[SETTINGS], app[REDIS])
    app[JOURNEY] = deps
    app.router.add_routes(routes())

    async def lifecycle(_app: web.Application) -> Any:
        yield
        await deps.close()

    app.cleanup_ctx.append(lifecycle)


JOB_TIMEOUT = 60
MAX_TRIES = 8  # tries of a job that fails unexpectedly
# arq's own cap on runs of a job: jobs also retry on purpose (a CPO out of reach, a
# Session not there yet) and a killed worker's job runs again; both count here.
ARQ_MAX_TRIES = 100

Job = Callable[..., Awaitable[Any]]


def retried(job: Job) -> Job:
    """arq retries a job only when it raises `Retry` (or its worker dies mid-job). Every
    journey job is safe to run again (its steps are keyed), so any failure - a Redis
    hiccup, a bug hit once - is retried with backoff instead of leaving, say, a settled
    order whose BAP was never told."""

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any) -> Any:
        try:
            return await job(ctx, *args)
        except (Retry, asyncio.CancelledError):
            raise
        except Exception as exc:
            tries = int(ctx.get("job_try", 1))
            log.exception("journey.job_failed", job=job.__name__, attempt=tries)
            if tries < MAX_TRIES:
                raise Retry(defer=min(2 ** tries, 60)) from exc
            raise

    return run


def worker_extension() -> None:
    from bridge import worker
    from bridge.journey import actions, events, reconcile, release, settle

    if any(getattr(j, "name", "") == "journey_settle" for j in worker.JOBS):
        return
    for fn in (actions.journey_push_token, actions.journey_start_session,
               actions.journey_stop_session, actions.journey_reserve_now,
               actions.journey_cancel_reservation, actions.journey_command_timeout,
               actions.journey_no_show, actions.journey_start_failed, settle.journey_settle,
               events.journey_track_push, reconcile.journey_reconcile,
               release.journey_release):
        worker.JOBS.append(func(retried(fn), name=fn.__name__,  # type: ignore[arg-type]
                                timeout=JOB_TIMEOUT, max_tries=ARQ_MAX_TRIES))
    worker.STARTUP.append(_start_consumers)


async def _start_consumers(ctx: dict[str, Any]) -> asyncio.Task[Any] | None:
    from bridge.journey import events

    deps = JourneyDeps.build(ctx["settings"], ctx["redis_app"])
    ctx["journey"] = deps
    stop = asyncio.Event()
    ctx["journey_stop"] = stop
    consumer = f"{socket.gethostname()}-{os.getpid()}"

    async def run() -> None:
        from bridge.worker import keep_running

        try:
            await asyncio.gather(
                # what a killed worker read and never acknowledged is taken over after two
                # job leases (as its jobs are), not a minute later
                keep_running("journey-consumer", lambda: events.consume_all(
                    deps, consumer, stop,
                    claim_idle_ms=int(max(2 * deps.settings.worker_job_lease, 5) * 1000))),
                keep_running("journey-watchdog", lambda: events.watchdog(deps, stop)))
        finally:
            await deps.close()

    return asyncio.create_task(run())
