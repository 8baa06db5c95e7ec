"""Where the optional parts of the bridge plug into the app and the worker.

Kept in one place so `bridge.app` and `bridge.worker` stay independent of the
Beckn side (DESIGN principle 2: the OCPI package never imports the Beckn one).
"""

from __future__ import annotations

import asyncio
from typing import Any


def app_extensions() -> tuple[Any, ...]:
    from bridge.beckn.routes import beckn_extension
    from bridge.journey.extension import app_extension as journey_extension
    from bridge.journey.extension import register_actions

    register_actions()  # before the BPP takes its table of handlers
    return (beckn_extension, journey_extension)


async def _beckn_callbacks(ctx: dict[str, Any]) -> asyncio.Task[Any] | None:
    """Callback deps for the arq job, and the fast lane (first attempts at once)."""
    from bridge.beckn.callbacks import fast_lane_all, make_deps
    from bridge.beckn.routes import log_mode

    log_mode(ctx["settings"])  # adapter mode / signatures off: said by the worker too
    deps = make_deps(ctx["settings"], ctx["redis_app"])
    ctx["beckn_callbacks"] = deps

    async def run() -> None:
        from bridge.worker import keep_running

        try:
            await keep_running("beckn-callback-fast-lane", lambda: fast_lane_all(deps))
        finally:
            await deps.close()

    return asyncio.create_task(run(), name="beckn-callback-fast-lane")


async def _beckn_catalog(ctx: dict[str, Any]) -> asyncio.Task[Any] | None:
    """Keep the pre-rendered catalog in step with the OCPI change stream."""
    from bridge.beckn.catalog_consumer import consume_all
    from bridge.store.catalog import CatalogStore

    settings = ctx["settings"]
    nets = [n.strip() for n in settings.beckn_network_id.split(",") if n.strip()]
    publishing = bool(settings.beckn_cds_url)
    store = CatalogStore(ctx["redis_app"], ctx["ocpi"].store, network_ids=nets,
                         publish_delay=settings.beckn_publish_delay if publishing else None)
    ctx["beckn_catalog"] = store
    from bridge.beckn.catalog_publish import request_full
    from bridge.worker import keep_running

    async def full(reason: str) -> None:  # a rebuild (a gap in the stream): publish in full
        await request_full(ctx["redis_app"], reason)

    return asyncio.create_task(
        keep_running("beckn-catalog", lambda: consume_all(
            ctx["redis_app"], store, on_rebuild=full if publishing else None)),
        name="beckn-catalog")


async def _beckn_publish(ctx: dict[str, Any]) -> asyncio.Task[Any] | None:
    """With beckn.cds_url: the catalog publisher (a full publish at start, then each CPO's
    changes after beckn.publish_delay). Off by default."""
    settings = ctx["settings"]
    if not settings.beckn_cds_url:
        return None
    import structlog

    from bridge.beckn.catalog_publish import PublishError, http_session, make_publisher
    from bridge.store.catalog import CatalogStore
    from bridge.worker import keep_running

    redis = ctx["redis_app"]
    store = ctx.get("beckn_catalog") or CatalogStore(redis)
    http = http_session(settings)
    try:
        publisher = make_publisher(settings, redis, store, http)
    except PublishError as exc:  # said loudly; the worker's other work goes on
        await http.close()
        structlog.get_logger("bridge.beckn.publish").error("beckn.CATALOG_NOT_PUBLISHED",
                                                          error=str(exc))
        return None
    started = False

    async def once() -> None:
        nonlocal started
        first, started = not started, True
        await publisher.run(full_on_start=first)

    async def run() -> None:
        try:
            await keep_running("beckn-catalog-publish", once)
        finally:
            await http.close()

    return asyncio.create_task(run(), name="beckn-catalog-publish")


def worker_extensions() -> None:
    """Add the feature packages' jobs and start-up hooks to bridge.worker (idempotent)."""
    from arq.worker import func

    from bridge import worker
    from bridge.beckn.callbacks import JOB_NAME, callback_job

    if not any(getattr(j, "name", None) == JOB_NAME for j in worker.JOBS):
        # Retry(defer=...) is used both for backoff and for waiting on a predecessor in
        # the same transaction; the real attempt limit is beckn_callback_max_attempts.
        worker.JOBS.append(func(callback_job, name=JOB_NAME, timeout=120, max_tries=100_000))
    for hook in (_beckn_callbacks, _beckn_catalog, _beckn_publish):
        if hook not in worker.STARTUP:
            worker.STARTUP.append(hook)
    from bridge.journey.extension import worker_extension as journey_worker

    journey_worker()
