"""Prometheus metrics and the access log: what an operator watches.

Each process has its own metrics (no shared multiprocess directory): `bridge
serve` answers `GET /metrics` on its own port, `bridge worker` on
`worker_metrics_port` (0 turns it off). Scrape both. Gauges that describe Redis
(queue depth, stream lag, dead letters, round-trip time) are read when scraped,
so any process shows the same figures for them.

Every metric is documented in the README's "Metrics" table; names start with
`obb_`. Labels never carry a driver's data (no phone, no order id, no amounts
per driver): counts by kind, outcome and code only.

The access log is one structlog line per HTTP request (`http.access`): method,
path, status, duration, request id, the caller (OCPI platform id or Beckn
bap_id) and, for Beckn, the ACK/NACK code. Tokens never appear (the path
carries no secrets; headers are not logged). Authentication failures are
logged at warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from bridge import tracing

log = structlog.get_logger("bridge.access")

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SLOW = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

OCPI_REQUESTS = Counter(
    "obb_ocpi_requests_total", "OCPI requests served, by module, method, HTTP and OCPI status",
    ["module", "method", "http_status", "ocpi_status"])
OCPI_LATENCY = Histogram(
    "obb_ocpi_request_seconds", "Time to answer an OCPI request", ["module", "method"],
    buckets=_LATENCY)
OCPI_REJECTED = Counter(
    "obb_ocpi_pushes_rejected_total",
    "CPO pushes (PUT, PATCH, POST, DELETE) not applied, by module and reason", ["module", "reason"])
BECKN_REQUESTS = Counter(
    "obb_beckn_requests_total", "Beckn requests received, by action, ACK/NACK and error code",
    ["action", "ack", "code"])
BECKN_LATENCY = Histogram(
    "obb_beckn_request_seconds", "Time to ACK/NACK a Beckn request", ["action"], buckets=_LATENCY)
HTTP_OTHER = Counter(
    "obb_http_requests_total", "Other HTTP requests (pages, health, metrics), by route and status",
    ["route", "http_status"])
CALLBACKS = Counter(
    "obb_beckn_callbacks_total", "Beckn callback delivery attempts, by action and outcome "
    "(delivered, retry, dead)", ["action", "outcome"])
CALLBACK_LATENCY = Histogram(
    "obb_beckn_callback_seconds", "From queueing a callback to the BAP's 2xx", ["action"],
    buckets=_SLOW)
JOBS = Counter("obb_jobs_total", "Worker jobs finished, by job and outcome (ok, retry, failed)",
               ["job", "outcome"])
JOB_SECONDS = Histogram("obb_job_seconds", "Worker job run time", ["job"], buckets=_SLOW)
SETTLEMENTS = Counter(
    "obb_settlements_total", "Orders settled, by outcome (refund, capture, top_up, even, "
    "provisional, credit)", ["outcome"])
MONEY_MOVES = Counter(
    "obb_money_movements_total", "Payment operations asked of the gateway, by kind "
    "(refund, capture, release, top_up_link); a count, never an amount", ["kind"])



def settlement_outcome(settlement: dict[str, Any]) -> str:
    """refund | capture | top_up | even | provisional: what a settlement did, for the counter."""
    from decimal import Decimal

    def amount(key: str) -> Decimal:
        return Decimal(str(settlement.get(key) or "0"))

    if settlement.get("provisional"):
        return "provisional"
    if amount("top_up_now") > 0 or amount("top_up") > 0:
        return "top_up"
    if amount("refund_now") > 0 or amount("refund") > 0:
        return "refund"
    if amount("capture") > 0:
        return "capture"
    return "even"


def count_settlement(settlement: dict[str, Any]) -> None:
    """One settled order: its outcome, and the gateway operations it asked for (counts)."""
    from decimal import Decimal

    SETTLEMENTS.labels(settlement_outcome(settlement)).inc()
    for key, kind in (("refund_now", "refund"), ("capture", "capture"), ("release", "release"),
                      ("top_up_now", "top_up_link")):
        if Decimal(str(settlement.get(key) or "0")) > 0:
            MONEY_MOVES.labels(kind).inc()


QUEUE_DEPTH = Gauge("obb_queue_depth", "Jobs waiting in the arq queue (due now or deferred)")
QUEUE_DUE = Gauge("obb_queue_due", "Jobs in the arq queue whose time has come (backlog)")
STREAM_LAG = Gauge("obb_stream_lag", "OCPI change-stream entries not yet read, by consumer group",
                   ["group"])
STREAM_PENDING = Gauge("obb_stream_pending",
                       "Change-stream entries read but not acknowledged, by consumer group",
                       ["group"])
DEAD_LETTERS = Gauge("obb_beckn_dead_letters", "Beckn callbacks in the dead letter")
PUBLISH_WAITING = Gauge("obb_catalog_publish_waiting",
                        "CPOs with catalog changes not yet at the network's CDS")
PUBLISH_OVERDUE = Gauge("obb_catalog_publish_overdue_seconds",
                        "How long past its due time the most overdue CPO publish is (0: none)")
REDIS_RTT = Gauge("obb_redis_rtt_seconds", "Round-trip time of a Redis PING at scrape time")
REDIS_UP = Gauge("obb_redis_up", "1 when Redis answered the scrape's PING")

QUEUE = "obb:queue"
DEAD = "obb:beckn:dead"


async def refresh_redis_gauges(redis: aioredis.Redis, queue: aioredis.Redis | None = None
                               ) -> None:
    """Read the Redis-side figures (a few cheap commands) into the gauges. The queue's
    are read from `queue`, or from `redis` when the queues are there (docs/scaling.md);
    the streams' are summed over the shards."""
    started = time.perf_counter()
    try:
        await redis.ping()
    except Exception:  # scraping must answer even when Redis does not
        REDIS_UP.set(0)
        return
    REDIS_RTT.set(time.perf_counter() - started)
    REDIS_UP.set(1)
    from bridge.store import keys, shards

    now_ms = int(time.time() * 1000)
    layout = shards.current()
    queue = queue if queue is not None else (None if layout.relay else redis)
    if queue is not None:
        async with queue.pipeline(transaction=False) as pipe:
            pipe.zcard(QUEUE)
            pipe.zcount(QUEUE, "-inf", now_ms)
            depth, due = await pipe.execute()
        QUEUE_DEPTH.set(depth)
        QUEUE_DUE.set(due)
    DEAD_LETTERS.set(await redis.zcard(DEAD))
    from bridge.store import beckn_keys as bk

    async with redis.pipeline(transaction=False) as pipe:  # the publisher's keys: one slot
        pipe.zcard(bk.PUB_DUE)
        pipe.zrange(bk.PUB_DUE, 0, 0, withscores=True)
        waiting, first = await pipe.execute()
    PUBLISH_WAITING.set(waiting)
    PUBLISH_OVERDUE.set(max(0.0, (now_ms - float(first[0][1])) / 1000) if first else 0.0)
    lags: dict[str, float] = {}
    pending: dict[str, float] = {}
    for shard in layout.shards:
        try:
            groups = await redis.xinfo_groups(keys.events(shard))
        except Exception:  # no stream yet
            groups = []
        for g in groups:
            name = g["name"].decode() if isinstance(g["name"], bytes) else str(g["name"])
            lag = g.get("lag")
            lags[name] = lags.get(name, 0.0) + (float(lag) if lag is not None else float("nan"))
            pending[name] = pending.get(name, 0.0) + float(g.get("pending") or 0)
    for name, lag_sum in lags.items():
        STREAM_LAG.labels(name).set(lag_sum)
        STREAM_PENDING.labels(name).set(pending[name])


def render(registry: CollectorRegistry = REGISTRY) -> bytes:
    return generate_latest(registry)


async def metrics_response(redis: aioredis.Redis, queue: aioredis.Redis | None = None
                           ) -> web.Response:
    await refresh_redis_gauges(redis, queue)
    resp = web.Response(body=render())
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


# --------------------------------------------------------------------------- HTTP side

_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})
# Beckn endpoints with a route of their own (not /beckn/{action}): their action label
FIXED_BECKN_PATHS = {"/beckn/on_subscribe": "on_subscribe",
                     "/beckn/catalog/on_publish": "on_catalog_publish",
                     "/beckn/on_catalog_publish": "on_catalog_publish"}


def ocpi_module(path: str) -> str:
    """/ocpi/2.2.1/locations/IN/TPC/L1 -> locations; /ocpi/versions -> versions."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "ocpi" and parts[1][:1].isdigit():
        return parts[2]
    if len(parts) == 2 and parts[0] == "ocpi":
        return "versions" if parts[1] == "versions" else "version_details"
    return "unknown"


def _json_field(body: Any, *keys: str) -> Any:
    if not isinstance(body, bytes | bytearray) or len(body) > 65536:
        return None
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


_CHILDREN: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *values: str) -> Any:
    """`metric.labels(*values)`, remembered: `labels()` takes a lock and checks its
    arguments on every call, on the path of every request. Label values are counts by
    kind, outcome and code only, so the set of children stays small."""
    key = (metric, *values)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*values)
    return child


def observe(request: web.Request, response: web.StreamResponse, seconds: float) -> dict[str, Any]:
    """Count one answered request; returns the access-log fields that describe it."""
    path, method, status = request.path, request.method, response.status
    body = getattr(response, "body", None)
    fields: dict[str, Any] = {}
    if path.startswith("/ocpi"):
        module = ocpi_module(path)
        code = _json_field(body, "status_code")
        ocpi_status = str(code) if isinstance(code, int) else "none"
        _child(OCPI_REQUESTS, module, method, str(status), ocpi_status).inc()
        _child(OCPI_LATENCY, module, method).observe(seconds)
        if method in ("PUT", "PATCH", "POST", "DELETE") and module not in (
                "credentials", "versions", "version_details") and (
                status >= 400 or (isinstance(code, int) and code >= 2000)):
            OCPI_REJECTED.labels(module, ocpi_status if ocpi_status != "none" else str(status)).inc()
        principal = request.get("principal")
        fields.update(protocol="ocpi", module=module, ocpi_status=code,
                      caller=getattr(principal, "id", None))
    elif path.startswith("/beckn") or request.get("beckn_lts"):
        if request.get("beckn_lts"):  # the LTS paths: /select, ... (bridge/beckn/lts_routes.py)
            action = str(request["beckn_lts"])
            ack = _json_field(body, "status") or ("ACK" if status == 200 else "NACK")
            code = _json_field(body, "error", "errorCode") or ""
        else:
            action = (request.match_info.get("action") if request.match_info else None) or \
                FIXED_BECKN_PATHS.get(path, "unknown")
            ack = _json_field(body, "ack_status") or ("ACK" if status == 200 else "NACK")
            code = _json_field(body, "error", "code") or ""
        _child(BECKN_REQUESTS, action, str(ack), str(code)).inc()
        _child(BECKN_LATENCY, action).observe(seconds)
        ctx = structlog.contextvars.get_contextvars()
        fields.update(protocol="beckn", action=action, ack=ack, code=code or None,
                      caller=ctx.get("bap_id"))
    else:
        route = request.match_info.route.resource.canonical if (
            request.match_info and request.match_info.route.resource) else "unmatched"
        _child(HTTP_OTHER, route, str(status)).inc()
    return fields


def auth_failed(path: str, status: int, fields: dict[str, Any]) -> bool:
    return status in (401, 403) or fields.get("code") == "10001" or (
        path.startswith("/ocpi") and status == 401)


def make_middleware() -> Any:
    """The outermost middleware: time, count and log every request (one line each)."""

    @web.middleware
    async def access(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # routing errors outside the protocol middlewares
            _log(request, exc, time.perf_counter() - started)
            raise
        _log(request, response, time.perf_counter() - started)
        return response

    return access


def _log(request: web.Request, response: web.StreamResponse, seconds: float) -> None:
    fields = observe(request, response, seconds)
    if tracing.enabled():
        ctx = structlog.contextvars.get_contextvars()
        tracing.annotate({
            "ocpi.request_id": response.headers.get("X-Request-ID") if request.path.startswith(
                "/ocpi") else None,
            "ocpi.correlation_id": response.headers.get("X-Correlation-ID"),
            "ocpi.caller": fields.get("caller") if fields.get("protocol") == "ocpi" else None,
            "ocpi.status_code": fields.get("ocpi_status"),
            "beckn.transaction_id": ctx.get("transaction_id") if fields.get("protocol") == "beckn"
            else None,
            "beckn.message_id": ctx.get("message_id") if fields.get("protocol") == "beckn" else None,
            "beckn.bap_id": fields.get("caller") if fields.get("protocol") == "beckn" else None,
            "beckn.ack": fields.get("ack"), "beckn.error_code": fields.get("code")})
    status = response.status
    quiet = request.path in _QUIET
    failed = auth_failed(request.path, status, fields)
    if not failed and not log.is_enabled_for(logging.DEBUG if quiet else logging.INFO):
        return  # the line would be dropped: do not build it (every request passes here)
    fields = {k: v for k, v in fields.items() if v is not None}
    line = dict(method=request.method, path=request.path, status=status,
                duration_ms=round(seconds * 1000, 2), remote=request.remote,
                request_id=response.headers.get("X-Request-ID"), **fields)
    # Behind a reverse proxy `remote` is the proxy: the client's address as the proxy
    # reports it, logged as given (nothing trusts it for a decision).
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded:
        line["forwarded_for"] = forwarded[:200]
    if failed:
        log.warning("http.auth_failed", **line)
    elif quiet:
        log.debug("http.access", **line)
    else:
        log.info("http.access", **line)


# --------------------------------------------------------------------------- worker side


def timed(function: Any) -> Any:
    """An arq `Function` whose runs are counted and timed (obb_jobs_total, obb_job_seconds)."""
    import asyncio
    import dataclasses

    from arq.worker import Retry

    name, coroutine = function.name, function.coroutine

    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "failed"
        try:
            result = await coroutine(ctx, *args, **kwargs)
            outcome = "ok"
            return result
        except Retry:
            outcome = "retry"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            JOBS.labels(name, outcome).inc()
            JOB_SECONDS.labels(name).observe(time.perf_counter() - started)

    run.__name__ = getattr(coroutine, "__name__", name)
    run.__qualname__ = run.__name__
    return dataclasses.replace(function, coroutine=run)


async def start_server(redis: aioredis.Redis, host: str, port: int,
                       queue: aioredis.Redis | None = None) -> web.AppRunner | None:
    """The worker's own `GET /metrics` (and `/healthz`) on `host:port`; None when port is 0."""
    if not port:
        return None
    app = web.Application()

    async def metrics_endpoint(_request: web.Request) -> web.Response:
        return await metrics_response(redis, queue)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
