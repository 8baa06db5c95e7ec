"""OCPI 2.2.1 transport: envelope, authorization, headers, pagination, validation.

Spec part "transport_and_format" (§4) and "status_codes" (§5). Nothing here
knows about Redis: authentication is a callable handed to the middleware, so
the bridge and the mock CPO share this module.

- Every answer is the envelope `{data, status_code, status_message, timestamp}`
  (§4.1.7), errors included, transport errors too (413, 405 with `Allow`, 404);
  `OcpiError` carries the OCPI and HTTP status (see `bridge.ocpi.errors`).
- Token A opens versions and credentials only; anywhere else it is 401.
- Answers carry the routing headers `OCPI-from-*` (us) and `OCPI-to-*` (the
  caller's party) of §4.1.5, the request's `from`/`to` swapped when it sent them.
- `Authorization: Token <base64(token)>` (§4.1.2, 2.2.1) and, for CPOs still
  on 2.1.1 habits, the un-encoded `Token <token>`.
- `X-Request-ID` / `X-Correlation-ID` (§4.1.4) are echoed, or generated.
- Pagination (§4.1.3): `offset`, `limit`, `date_from`, `date_to`; answers carry
  `X-Total-Count`, `X-Limit` and a `Link: <next>; rel="next"` header.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson
import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from bridge.ocpi.errors import (
    InvalidParameters,
    MethodNotAllowed,
    NotJson,
    NotYourParty,
    OcpiError,
    ServerError,
    TooLarge,
    TooManyRequests,
    Unauthorized,
    UnknownObject,
)
from bridge.ocpi.models import WIRE, format_datetime, parse_datetime

log = structlog.get_logger("bridge.ocpi")

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Principal:
    """Who is calling, as established from the credentials token.

    `kind` is "A" for a one-time registration token (may only use versions
    and credentials; `invited` is the party it was issued for), "C" for a
    registered platform's token. `parties` are the (country_code, party_id)
    pairs of the platform's roles: the objects it may read and write.
    """

    id: str
    kind: str
    parties: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    invited: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    # A registration in progress (our token B given to a CPO, its roles not yet known).
    pending: bool = False

    def owns(self, country_code: str, party_id: str) -> bool:
        return (country_code.upper(), party_id.upper()) in self.parties


Authenticator = Callable[[str], Awaitable[Principal | None]]


# --------------------------------------------------------------------------- envelope


def envelope(data: Any = None, status_code: int = 1000, status_message: str = "Success",
             now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    body: dict[str, Any] = {
        "status_code": status_code,
        "status_message": status_message,
        # milliseconds: the spec's DateTime is string(25)
        "timestamp": format_datetime(now.replace(microsecond=now.microsecond // 1000 * 1000)),
    }
    if data is not None:
        body["data"] = data
    return body


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default)


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json", exclude_none=True)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def ocpi_response(data: Any = None, *, status_code: int = 1000, status_message: str = "Success",
                  http_status: int = 200, headers: Mapping[str, str] | None = None,
                  raw_data: bytes | None = None) -> web.Response:
    """An OCPI answer. `raw_data` is pre-serialised JSON spliced in as `data`
    (objects read from Redis are served without a decode/encode round trip)."""
    if raw_data is not None:
        head = dumps(envelope(None, status_code, status_message))
        body = head[:-1] + b',"data":' + raw_data + b"}"
    else:
        body = dumps(envelope(data, status_code, status_message))
    return web.Response(body=body, status=http_status, content_type="application/json",
                        headers=headers)


def error_response(exc: OcpiError) -> web.Response:
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.allow:
        headers["Allow"] = ", ".join(exc.allow)
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return ocpi_response(None, status_code=exc.status_code, status_message=exc.message,
                         http_status=exc.http_status, headers=headers)


# --------------------------------------------------------------------------- authorization


def token_candidates(header: str | None) -> list[str]:
    """The tokens an `Authorization` header may carry, best guess first.

    2.2.1 sends `Token base64(token)`; many CPOs still send the raw token.
    Both are tried: the base64 decoding first, then the literal value.
    """
    if not header:
        return []
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or not value:
        return []
    candidates = []
    try:
        decoded = base64.b64decode(value, validate=True).decode("ascii")
        if decoded and decoded.isprintable():
            candidates.append(decoded)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    candidates.append(value)
    return candidates


def token_header(token: str) -> str:
    """The `Authorization` header value for an outbound 2.2.1 call."""
    return "Token " + base64.b64encode(token.encode()).decode()


async def authenticate(request: web.Request, auth: Authenticator) -> tuple[Principal, str]:
    """The caller and the token it presented (kept on the request, never logged)."""
    for candidate in token_candidates(request.headers.get("Authorization")):
        principal = await auth(candidate)
        if principal is not None:
            return principal, candidate
    raise Unauthorized("missing or unknown credentials token")


def check_party_headers(request: web.Request, principal: Principal,
                        own_parties: Iterable[tuple[str, str]]) -> None:
    """§4.1.5 routing headers: `OCPI-from-*` must be one of the caller's parties,
    `OCPI-to-*` one of ours. Absent headers are fine (peer-to-peer)."""
    from_cc = request.headers.get("OCPI-from-country-code")
    from_pid = request.headers.get("OCPI-from-party-id")
    if principal.kind == "C" and from_cc and from_pid and not principal.owns(from_cc, from_pid):
        raise NotYourParty(f"OCPI-from party {from_cc}-{from_pid} does not belong to this token")
    to_cc = request.headers.get("OCPI-to-country-code")
    to_pid = request.headers.get("OCPI-to-party-id")
    if to_cc and to_pid and (to_cc.upper(), to_pid.upper()) not in set(own_parties):
        raise InvalidParameters(f"OCPI-to party {to_cc}-{to_pid} is not served here")


def require_party(request: web.Request, country_code: str, party_id: str) -> Principal:
    """The caller may only touch objects of its own parties."""
    principal: Principal = request["principal"]
    if not principal.owns(country_code, party_id):
        raise NotYourParty(f"party {country_code}-{party_id} does not belong to this token")
    return principal


# --------------------------------------------------------------------------- validation


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"])
        loc = loc.replace(".[", "[")
        where = f"{prefix}{'.' if prefix and loc else ''}{loc}" or "body"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


async def read_body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise TooLarge(f"request body is larger than {request.client_max_size} bytes") from exc


async def read_json(request: web.Request) -> Any:
    raw = await read_body(request)
    if not raw:
        raise InvalidParameters("request body is empty")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NotJson(f"request body is not valid JSON: {exc}") from exc


def validate(model: type[M], data: Any, what: str = "") -> M:
    if not isinstance(data, dict):
        raise InvalidParameters(f"{what or 'body'}: expected a JSON object")
    try:
        return model.model_validate(data, context=WIRE)
    except ValidationError as exc:
        raise InvalidParameters(describe_validation_error(exc, what)) from exc


# --------------------------------------------------------------------------- pagination


@dataclass(frozen=True)
class Page:
    offset: int
    limit: int
    date_from: datetime | None
    date_to: datetime | None


def _parse_dt(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_datetime(value)
    except ValueError as exc:
        raise InvalidParameters(f"{name}: {exc}") from exc


def parse_page(query: Mapping[str, str], default_limit: int, max_limit: int) -> Page:
    raw_offset, raw_limit = query.get("offset", "0"), query.get("limit", str(default_limit))
    if not (raw_offset.isascii() and raw_offset.isdigit() and len(raw_offset) <= 15
            and raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 15):
        raise InvalidParameters("offset and limit must be non-negative integers")
    offset, limit = int(raw_offset), int(raw_limit)
    return Page(
        offset=offset,
        limit=min(limit, max_limit),  # §4.1.3: the server may lower the limit
        date_from=_parse_dt("date_from", query.get("date_from")),
        date_to=_parse_dt("date_to", query.get("date_to")),
    )


def page_headers(base_url: str, page: Page, total: int) -> dict[str, str]:
    headers = {"X-Total-Count": str(total), "X-Limit": str(page.limit)}
    next_offset = page.offset + page.limit
    if page.limit and next_offset < total:
        params: dict[str, str] = {"offset": str(next_offset), "limit": str(page.limit)}
        if page.date_from:
            params["date_from"] = format_datetime(page.date_from)
        if page.date_to:
            params["date_to"] = format_datetime(page.date_to)
        headers["Link"] = f'<{base_url}?{urlencode(params)}>; rel="next"'
    return headers


# --------------------------------------------------------------------------- middleware


# Paths a token A may use (spec "credentials" §7: versions, version details, credentials).
_REGISTRATION_PATH = re.compile(r"^/ocpi/(versions|[0-9][0-9.]*(/credentials)?)/?$")


def registration_path(path: str) -> bool:
    return _REGISTRATION_PATH.match(path) is not None


def routing_headers(request: web.Request, principal: Principal | None,
                    own: list[tuple[str, str]]) -> dict[str, str]:
    """§4.1.5 routing headers for our answer: the request's `to` becomes our `from`
    (when it is one of ours), its `from` our `to`; without them, our (first) party
    and the caller's, when the caller has exactly one."""
    h = request.headers
    to_cc, to_pid = h.get("OCPI-to-country-code"), h.get("OCPI-to-party-id")
    ours = (to_cc.upper(), to_pid.upper()) if to_cc and to_pid else None
    if ours not in own:
        ours = own[0] if own else None
    out: dict[str, str] = {}
    if ours:
        out["OCPI-from-country-code"], out["OCPI-from-party-id"] = ours
    from_cc, from_pid = h.get("OCPI-from-country-code"), h.get("OCPI-from-party-id")
    theirs: tuple[str, str] | None = None
    if from_cc and from_pid and len(from_cc) <= 2 and len(from_pid) <= 3:
        theirs = (from_cc.upper(), from_pid.upper())
    elif principal is not None:
        known = principal.parties or principal.invited
        if len(known) == 1:
            theirs = next(iter(known))
    if theirs:
        out["OCPI-to-country-code"], out["OCPI-to-party-id"] = theirs
    return out


def _http_error(request: web.Request, exc: web.HTTPException) -> OcpiError:
    """aiohttp's own transport errors, said in the OCPI envelope."""
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(f"{request.method} is not supported on {request.path}",
                                allow=tuple(sorted(exc.allowed_methods)))
    if isinstance(exc, web.HTTPNotFound):
        return UnknownObject(f"no OCPI endpoint at {request.path}")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return TooLarge(f"request body is larger than {request.client_max_size} bytes")
    status = exc.status if 400 <= exc.status < 500 else 400
    return OcpiError(exc.reason or "bad request", http_status=status)


Observer = Callable[[web.Request, Principal, "OcpiError | None"], Awaitable[None]]
# Called with the authenticated caller before its request is handled; raises
# TooManyRequests when its budget is spent.
Limiter = Callable[[Principal], Awaitable[None]]


def make_middleware(auth: Authenticator, own_parties: Callable[[], Iterable[tuple[str, str]]],
                    prefix: str = "/ocpi", refresh: Authenticator | None = None,
                    observe: Observer | None = None, limit: Limiter | None = None) -> Any:
    """aiohttp middleware for the OCPI routes under `prefix`.

    Binds `request_id`/`correlation_id` to the log context, authenticates,
    keeps token A to versions and credentials, checks routing headers, and
    turns every error into the OCPI envelope with the routing headers.

    `refresh` resolves a token without any cache: when a handler refuses a party
    (`NotYourParty`, always raised before any write) to a principal that may be
    out of date, the token is looked up again and, if that changed who it is,
    the handler runs once more. A party Redis says is the caller's is never refused.
    `observe` is told of each registered platform's request and its error, if any
    (the bridge keeps "last push" and "last error" per party); it cannot fail one.
    """

    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        if not request.path.startswith(prefix):
            return await handler(request)
        request_id = request.headers.get("X-Request-ID") or str(uuid.uuid4())
        correlation_id = request.headers.get("X-Correlation-ID") or request_id
        structlog.contextvars.bind_contextvars(
            request_id=request_id, correlation_id=correlation_id, protocol="ocpi"
        )
        echo = {"X-Request-ID": request_id, "X-Correlation-ID": correlation_id}
        own = sorted(own_parties())
        principal: Principal | None = None
        error: OcpiError | None = None
        response: web.StreamResponse
        try:
            principal, token = await authenticate(request, auth)
            request["principal"] = principal
            request["token"] = token
            structlog.contextvars.bind_contextvars(caller=principal.id)
            if limit is not None:
                await limit(principal)
            if principal.kind == "A" and not registration_path(request.path):
                # §7: token A is for the registration only.
                raise Unauthorized("token A may only be used for versions and credentials: "
                                   "register first")
            try:
                check_party_headers(request, principal, own)
                response = await handler(request)
            except NotYourParty:
                fresh = await refresh(token) if refresh is not None else None
                if fresh is None or fresh == principal:
                    raise
                principal = fresh
                request["principal"] = fresh
                check_party_headers(request, principal, own)
                response = await handler(request)
        except OcpiError as exc:
            log.info("ocpi.error", method=request.method, path=request.path,
                     status_code=exc.status_code, http_status=exc.http_status, reason=exc.message)
            error = exc
            response = error_response(exc)
        except web.HTTPException as exc:
            error = _http_error(request, exc)
            response = error_response(error)
        except Exception:  # the envelope must go out even for our own bugs
            log.exception("ocpi.server_error", method=request.method, path=request.path)
            error = ServerError("internal server error", http_status=500)
            response = error_response(error)
        finally:
            structlog.contextvars.unbind_contextvars(
                "request_id", "correlation_id", "protocol", "caller")
        if observe is not None and principal is not None and principal.kind == "C":
            try:
                await observe(request, principal, error)
            except Exception:  # bookkeeping must never cost a push its answer
                log.warning("ocpi.observe_failed", exc_info=True)
        for key, value in {**echo, **routing_headers(request, principal, own)}.items():
            response.headers.setdefault(key, value)
        return response

    return middleware
