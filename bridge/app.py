"""aiohttp application factory: OCPI eMSP endpoints, Beckn BPP endpoints, health.

    GET /healthz      the process is up
    GET /readyz       Redis answers (503 otherwise)
    GET /metrics      Prometheus metrics (bridge.metrics)
    GET /openapi/ocpi.json, /openapi/beckn.json   OpenAPI 3.1 of both surfaces (bridge.openapi)
    /ocpi/...         OCPI 2.2.1 (bridge.ocpi), envelope + token middleware
    /beckn/...        Beckn 2.0 BPP (bridge.beckn), when present
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import redis.asyncio as aioredis
import structlog
from aiohttp import web

from bridge import metrics, openapi, tracing
from bridge.config import Settings
from bridge.crashpoints import crash_point
from bridge.edge import EdgeRunner
from bridge.ocpi import cdrs, commands, credentials, locations, sessions, tariffs, tokens, versions
from bridge.ocpi.deps import VERSION_PATH, OcpiDeps
from bridge.ocpi.errors import OcpiError, TooManyRequests, TooSlow
from bridge.ocpi.transport import Principal, make_middleware
from bridge.ratelimit import RateLimiter, parse_limit
from bridge.store.credentials import CredentialsStore
from bridge.store.ocpi_store import OcpiStore

log = structlog.get_logger("bridge.app")

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", aioredis.Redis)
OCPI = web.AppKey("ocpi", OcpiDeps)

OCPI_MODULES = (versions, credentials, locations, tariffs, sessions, cdrs, tokens, commands)

# Other parts of the bridge (Beckn BPP, orders...) add their routes and
# start-up work here: each is called with the app and returns nothing.
Extension = Callable[[web.Application], None]


def make_redis(settings: Settings) -> aioredis.Redis:
    from bridge import redisconn

    return redisconn.data(settings, max_connections=512)


@web.middleware
async def crash_middleware(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    """Fault injection only (`test_crash_point`): the crash point between a CPO's push
    being stored and its OCPI answer going out (bridge/crashpoints.py)."""
    response = await handler(request)
    if request.path.startswith("/ocpi/") and request.method != "GET" and response.status < 300:
        crash_point("ocpi.push_stored")
    return response


def build_app(settings: Settings, redis: aioredis.Redis | None = None,
              extensions: tuple[Extension, ...] = ()) -> web.Application:
    redis = redis or make_redis(settings)
    store = OcpiStore(redis, events_maxlen=settings.ocpi_events_maxlen)
    creds = CredentialsStore(redis)
    deps = OcpiDeps(settings=settings, store=store, creds=creds)

    own = frozenset({(settings.ocpi_country_code, settings.ocpi_party_id)})

    async def observe(request: web.Request, principal: Principal,
                      error: OcpiError | None) -> None:
        """Last push / last error per CPO party, for `bridge cpo list`."""
        if error is None and request.method == "GET":
            return
        cc, pid = request.match_info.get("cc"), request.match_info.get("pid")
        parties = {(cc.upper(), pid.upper())} if cc and pid and principal.owns(cc, pid) \
            else set(principal.parties)
        what = f"{request.method} {request.path.removeprefix(VERSION_PATH)}"
        if error is None:
            await creds.note(parties, what=what)
        else:
            await creds.note(parties, error=f"{what}: {error.status_code} {error.message}")

    limiter = RateLimiter(redis)
    ocpi_limit = parse_limit(settings.ocpi_rate_limit)

    async def limit(principal: Principal) -> None:
        """A request budget per CPO platform, shared by every serve process (a Redis
        bucket): one platform flooding the bridge cannot starve the others."""
        verdict = await limiter.take("ocpi", principal.id, ocpi_limit, int(time.time() * 1000))
        if not verdict.allowed:
            raise TooManyRequests(f"too many requests: try again in "
                                  f"{verdict.retry_after_header} s", verdict.retry_after)

    middleware = make_middleware(creds.authenticate, lambda: own,
                                 refresh=creds.authenticate_fresh, observe=observe,
                                 limit=limit)
    @web.middleware
    async def body_in_time(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
        """An authenticated OCPI body arrives within `body_timeout` or gets 408 (inside the
        OCPI middleware: the answer is the envelope). Read once here; aiohttp keeps it."""
        if request.path.startswith("/ocpi") and request.body_exists \
                and not request.content.is_eof():
            # (A body that came in with the headers, the usual push, is all there: no
            # timer to arm and cancel on every request.)
            try:
                async with asyncio.timeout(settings.body_timeout):
                    await request.read()
            except TimeoutError as exc:
                raise TooSlow(f"the body did not arrive within {settings.body_timeout:g} s") \
                    from exc
        return await handler(request)

    middlewares = [middleware, body_in_time]
    if settings.access_log:
        middlewares.insert(0, metrics.make_middleware())
    if settings.test_crash_point:
        middlewares.insert(0, crash_middleware)
    # Tracing on: the instrumented Application puts its span middleware first.
    tracing.setup(settings)
    app = web.Application(middlewares=middlewares, client_max_size=8 * 1024 * 1024)
    app[SETTINGS] = settings
    app[REDIS] = redis
    app[OCPI] = deps

    for module in OCPI_MODULES:
        app.router.add_routes(module.routes(deps))

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, dumps=lambda o: orjson.dumps(o).decode())

    async def readyz(_request: web.Request) -> web.Response:
        try:
            await redis.ping()
        except Exception as exc:  # any failure means "not ready", with the reason
            return web.json_response({"status": "unavailable", "redis": type(exc).__name__},
                                     status=503)
        return web.json_response({"status": "ok", "redis": "ok"})

    async def metrics_endpoint(_request: web.Request) -> web.Response:
        return await metrics.metrics_response(redis)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)

    async def openapi_document(request: web.Request) -> web.Response:
        # Built from the handlers' own models (bridge.openapi); public, like /ocpi/versions.
        return web.Response(body=openapi.document_bytes(request.match_info["surface"]),
                            content_type="application/json")

    app.router.add_get(r"/openapi/{surface:ocpi|beckn}.json", openapi_document)

    for extend in extensions:
        extend(app)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        # Token cache invalidation across processes (CredentialsStore.follow_changes).
        stop = asyncio.Event()
        follower = asyncio.create_task(creds.follow_changes(stop))
        yield
        stop.set()
        follower.cancel()  # it may be waiting on Redis for up to a second
        await asyncio.gather(follower, return_exceptions=True)
        await deps.close()
        await redis.aclose()

    app.cleanup_ctx.append(lifecycle)
    return app


async def serve(settings: Settings, extensions: tuple[Extension, ...] = (),
                ready: Callable[[], Awaitable[None]] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Run the app until `stop` is set, SIGTERM or SIGINT (`bridge serve`, tests).

    Shutdown drains: the listening socket closes at once (new connections are
    refused), requests in flight get up to `shutdown_timeout` seconds to finish,
    then the app's cleanup closes Redis and the HTTP clients."""
    app = build_app(settings, extensions=extensions)
    # The access log is our own middleware (bridge.metrics), not aiohttp's.
    runner = EdgeRunner(app, access_log=None, shutdown_timeout=settings.shutdown_timeout,
                        header_timeout=settings.header_timeout)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=1024,
                       reuse_port=settings.reuse_port or None)
    await site.start()
    log.info("bridge.listening", host=settings.host, port=settings.port,
             public_url=settings.public_url)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    if ready:
        await ready()
    try:
        await stop.wait()
        log.info("bridge.draining", timeout=settings.shutdown_timeout)
    finally:
        await runner.cleanup()
        for sig in handled:
            loop.remove_signal_handler(sig)
    log.info("bridge.stopped")
