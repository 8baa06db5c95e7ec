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
    from bridge.beckn.callbacks import fast_lane, make_deps
    from bridge.beckn.routes import log_mode

    log_mode(ctx["settings"])  # adapter mode / signatures off: said by the worker too
    deps = make_deps(ctx["settings"], ctx["redis_app"])
    ctx["beckn_callbacks"] = deps

    async def run() -> None:
        from bridge.worker import keep_running

        try:
            await keep_running("beckn-callback-fast-lane", lambda: fast_lane(deps))
        finally:
            await deps.close()

    return asyncio.create_task(run(), name="beckn-callback-fast-lane")


async def _beckn_catalog(ctx: dict[str, Any]) -> asyncio.Task[Any] | None:
    """Keep the pre-rendered catalog in step with the OCPI change stream."""
    from bridge.beckn.catalog_consumer import consume
    from bridge.store.catalog import CatalogStore

    settings = ctx["settings"]
    nets = [n.strip() for n in settings.beckn_network_id.split(",") if n.strip()]
    store = CatalogStore(ctx["redis_app"], ctx["ocpi"].store, network_ids=nets)
    ctx["beckn_catalog"] = store
    from bridge.worker import keep_running

    return asyncio.create_task(keep_running("beckn-catalog", lambda: consume(ctx["redis_app"],
                                                                             store)),
                               name="beckn-catalog")


def worker_extensions() -> None:
    """Add the feature packages' jobs and start-up hooks to bridge.worker (idempotent)."""
    from arq.worker import func

    from bridge import worker
    from bridge.beckn.callbacks import JOB_NAME, callback_job

    if not any(getattr(j, "name", None) == JOB_NAME for j in worker.JOBS):
        # Retry(defer=...) is used both for backoff and for waiting on a predecessor in
        # the same transaction; the real attempt limit is beckn_callback_max_attempts.
        worker.JOBS.append(func(callback_job, name=JOB_NAME, timeout=120, max_tries=100_000))
    for hook in (_beckn_callbacks, _beckn_catalog):
        if hook not in worker.STARTUP:
            worker.STARTUP.append(hook)
    from bridge.journey.extension import worker_extension as journey_worker

    journey_worker()
