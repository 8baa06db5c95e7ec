"""The LTS paths of the BPP (Beckn 2.0 LTS, `beckn.profiles` has `lts`).

    POST /discover /select /init /confirm /status /track /update /cancel /rate /support
        the same pipeline as /beckn/{action} (`bridge.beckn.transport.receive`): the
        signature, limits, duplicates, the action's handler; the request read into the
        draft's form first (`bridge.beckn.lts.inbound`), its answers written in the LTS's
    the LTS's other paths (a BAP's /on_*, the catalog service's /catalog/...)
        answered 404 in the LTS's shape: a BPP does not host them

Every answer is an LTS Ack `{status, signature, error?}` (a ServerError also carries
`error`): 200 ACK, 400 NackBadRequest, 401 NackUnauthorized, 409 AckNoCallback, 500,
and the transport's 404/408/413/429, each counter-signed by the bridge
(`bridge.beckn.countersign`). The middleware here is the one place an LTS refusal is
written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiohttp import web

from bridge.beckn import countersign, lts, signing
from bridge.beckn.errors import BecknError, Refused, UnknownAction
from bridge.beckn.models import Context
from bridge.beckn.profiles import LTS
from bridge.beckn.signing import KeyFileError
from bridge.beckn.transport import (
    BecknServices,
    Dialect,
    answered_or_error,
    read_body,
    receive,
)
from bridge.config import Settings

log = structlog.get_logger("bridge.beckn.lts")

def _signer(services: BecknServices, now: float) -> Any:
    """Our key of the moment (the key ring, `services.extra["own_keys"]`: it follows a
    rotation), or None: in adapter mode the adapter holds the network key and
    counter-signs; an unreadable key is logged, and the Ack goes without."""
    own = services.extra.get("own_keys")
    if own is None:
        return None
    try:
        return own.signer_at(now)
    except KeyFileError as exc:
        log.error("beckn.LTS_ACK_UNSIGNED", error=str(exc))
        return None


def ack_response(services: BecknServices, http_status: int, status: str, raw: bytes,
                 message_id: str, error: dict[str, str] | None = None) -> web.Response:
    """An LTS Ack, counter-signed over itself, the request's body and message id."""
    ack: dict[str, Any] = {"status": status}
    if error is not None:
        ack["error"] = error
    now = time.time()
    signer = _signer(services, now)
    if signer is not None:
        ack["signature"] = countersign.counter_sign(
            signer.sign_bytes, signer.subscriber_id, signer.key_id, ack, raw, message_id,
            now, services.settings.beckn_signature_ttl)
    return web.Response(body=orjson.dumps(ack), status=http_status,
                        content_type="application/json")


def edge_counter(app: web.Application) -> Callable[[dict[str, Any]], str | None]:
    """The counter-signature of the NACK the HTTP edge answers an unreadable request on
    an LTS path with (`bridge.edge`): our key of the moment over the NACK, an empty
    request body and no message id (nothing of the request was read). None when the
    app has no Beckn services or no key of its own (adapter mode)."""
    from bridge.beckn.routes import BECKN

    def sign(ack: dict[str, Any]) -> str | None:
        services = app.get(BECKN)
        if services is None:
            return None
        now = time.time()
        signer = _signer(services, now)
        if signer is None:
            return None
        return countersign.counter_sign(signer.sign_bytes, signer.subscriber_id,
                                        signer.key_id, ack, b"", "", now,
                                        services.settings.beckn_signature_ttl)

    return sign


def _action(request: web.Request) -> str:
    return lts.ACTIONS[request.path.strip("/")]


def _inbound(body: dict[str, Any], raw: bytes, action: str) -> dict[str, Any]:
    return lts.inbound(body, signing.digest(raw), action)


def _ack(request: web.Request, services: BecknServices, ctx: Context, raw: bytes
         ) -> web.Response:
    return ack_response(services, 200, "ACK", raw, ctx.message_id)


DIALECT = Dialect(action=_action, inbound=_inbound, profile=LTS, ack=_ack)


def is_lts_path(path: str) -> bool:
    name = path.strip("/")
    return name in lts.ACTIONS or (name.startswith("on_") and name[3:] in lts.ACTIONS) or \
        path.startswith("/catalog/")


def _message_id(raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    ctx = body.get("context") if isinstance(body, dict) else None
    mid = ctx.get("messageId") if isinstance(ctx, dict) else None
    return mid if isinstance(mid, str) else ""


def make_middleware(services: BecknServices) -> Any:
    """LTS refusals as counter-signed Acks (only on the LTS's paths)."""

    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        if not is_lts_path(request.path):
            return await handler(request)
        # metrics and the access log count it as a Beckn request (bridge/metrics.py)
        name = request.path.strip("/")
        request["beckn_lts"] = lts.ACTIONS.get(name, name if name.startswith("on_") else "other")
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(protocol="beckn", profile=LTS)
        error = await answered_or_error(request, handler)
        if not isinstance(error, BecknError):
            return error
        raw = request.get("beckn_raw")
        if raw is None and not isinstance(error, Refused) and request.body_exists:
            # refused before the body was read (the signature header): read it now, within
            # the same limits, so the counter-signature's request digest is the body's own
            try:
                raw = await read_body(request, services.settings)
            except BecknError:
                raw = b""
        raw = raw or b""
        status, ack_status = lts.http_status(error)
        log.info("beckn.nack", path=request.path, code=error.code, http_status=status,
                 reason=error.message)
        response = ack_response(services, status, ack_status, raw, _message_id(raw),
                                lts.error_of(error))
        if isinstance(error, Refused) and error.retry_after:
            response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
        return response

    return middleware


def not_served(kind: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def refuse(request: web.Request) -> web.StreamResponse:
        raise UnknownAction(f"{request.method} {request.path} is {kind}: this BPP does not "
                            "serve it")

    return refuse


def add_routes(app: web.Application, services: BecknServices, settings: Settings) -> None:
    """The LTS's 30 paths on `app` and its middleware (the Acks are counter-signed with
    the key ring `beckn_extension` keeps in `services.extra["own_keys"]`)."""
    app.middlewares.append(make_middleware(services))

    async def post(request: web.Request) -> web.Response:
        return await receive(request, services, DIALECT)

    for name in lts.ACTIONS:
        app.router.add_post(f"/{name}", post)
    for method, path in lts.CALLBACK_PATHS:
        app.router.add_route(method, path, not_served("a BAP's callback endpoint"))
    from bridge.beckn import catalog_publish_lts

    async def on_publish(request: web.Request) -> web.Response:
        return await catalog_publish_lts.receive(request, services)

    # the CDS's results of our LTS catalog publishes (beckn.publish_profile = "lts")
    app.router.add_post("/catalog/on_publish", on_publish)
    for method, path in lts.CATALOG_PATHS:
        if (method, path) != ("POST", "/catalog/on_publish"):
            app.router.add_route(method, path, not_served("an endpoint of a catalog discovery "
                                                          "service (CDS) or catalog indexer"))
