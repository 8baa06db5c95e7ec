"""The mock's OCPI 2.2.1 interfaces as a CPO: versions, details, credentials,
the senders (locations, tariffs, sessions, cdrs: paginated GETs) and the
tokens receiver. Commands are in `commands.py`. Handlers are thin: look up,
validate, answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from bridge.logs import fingerprint
from bridge.ocpi.errors import (
    InvalidParameters,
    MethodNotAllowed,
    Unauthorized,
    UnknownLocation,
    UnknownToken,
)
from bridge.ocpi.models import Credentials, Token
from bridge.ocpi.transport import (
    Principal,
    ocpi_response,
    page_headers,
    parse_page,
    read_json,
    require_party,
    validate,
)
from ocpi_mock import registration
from ocpi_mock.runtime import Mock

MOCK = web.AppKey("mock", Mock)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def mock_of(request: web.Request) -> Mock:
    return request.app[MOCK]


def registered_only(handler: Handler) -> Handler:
    """Token A only opens versions, details and credentials (spec §7): 401 elsewhere
    (the shared middleware says so first; this keeps the rule next to the handlers)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        principal: Principal = request["principal"]
        if principal.kind != "C":
            raise Unauthorized("register first: this token may only use versions and "
                               "credentials")
        return await handler(request)

    return wrapped


def make_authenticator(mock: Mock) -> Callable[[str], Awaitable[Principal | None]]:
    async def auth(token: str) -> Principal | None:
        st = mock.state
        if token in st.invites:
            return Principal(id=f"invite:{fingerprint(token)}", kind="A")
        if st.peer is not None and token == st.peer.token_in:
            return Principal(id="emsp", kind="C", parties=st.peer.parties)
        if token in st.pending_in:
            return Principal(id="emsp-registering", kind="C")
        return None

    return auth


# ----------------------------------------------------------------------------- versions


async def versions(request: web.Request) -> web.Response:
    base = mock_of(request).cfg.base_url
    return ocpi_response([{"version": "2.2.1", "url": f"{base}/ocpi/2.2.1"}])


MODULES = [("credentials", "SENDER"), ("locations", "SENDER"), ("tariffs", "SENDER"),
           ("sessions", "SENDER"), ("cdrs", "SENDER"), ("tokens", "RECEIVER"),
           ("commands", "RECEIVER")]


async def version_details(request: web.Request) -> web.Response:
    cfg = mock_of(request).cfg
    # --trailing-slash: endpoint URLs end in "/", as many platforms publish them.
    tail = "/" if cfg.trailing_slash else ""
    return ocpi_response({"version": "2.2.1", "endpoints": [
        {"identifier": m, "role": r, "url": f"{cfg.base_url}/ocpi/2.2.1/{m}{tail}"}
        for m, r in MODULES]})


# ----------------------------------------------------------------------------- credentials


def _our_credentials(mock: Mock, token: str) -> dict[str, Any]:
    return Credentials(token=token, url=mock.versions_url, roles=mock.state.roles()).to_json_dict()


async def credentials_get(request: web.Request) -> web.Response:
    mock = mock_of(request)
    principal: Principal = request["principal"]
    if principal.kind == "A":
        token = next(c for c in request_tokens(request) if c in mock.state.invites)
        return ocpi_response(_our_credentials(mock, token))
    assert mock.state.peer is not None
    return ocpi_response(_our_credentials(mock, mock.state.peer.token_in))


def request_tokens(request: web.Request) -> list[str]:
    from bridge.ocpi.transport import token_candidates

    return token_candidates(request.headers.get("Authorization"))


async def credentials_post(request: web.Request) -> web.Response:
    mock = mock_of(request)
    principal: Principal = request["principal"]
    if principal.kind != "A":
        # spec §7.2.2: POST on an existing registration is 405; use PUT to update
        raise MethodNotAllowed("already registered: use PUT to update credentials",
                               allow=("DELETE", "GET", "PUT"))
    token_a = next(c for c in request_tokens(request) if c in mock.state.invites)
    theirs = validate(Credentials, await read_json(request), "credentials")
    ours = await registration.accept_registration(mock, token_a, theirs)
    return ocpi_response(ours.to_json_dict())


async def credentials_put(request: web.Request) -> web.Response:
    mock = mock_of(request)
    principal: Principal = request["principal"]
    if principal.kind != "C" or mock.state.peer is None:
        raise MethodNotAllowed("not registered yet: use POST", allow=("GET", "POST"))
    theirs = validate(Credentials, await read_json(request), "credentials")
    old_in = mock.state.peer.token_in
    ours = await registration.accept_registration(mock, old_in, theirs)
    return ocpi_response(ours.to_json_dict())


async def credentials_delete(request: web.Request) -> web.Response:
    mock = mock_of(request)
    if request["principal"].kind != "C":
        raise MethodNotAllowed("not registered", allow=("GET", "POST"))
    mock.state.peer = None
    return ocpi_response()


# ----------------------------------------------------------------------------- senders


def _paged(request: web.Request, objects: Sequence[Any]) -> web.Response:
    mock = mock_of(request)
    page = parse_page(request.query, mock.cfg.page_limit, mock.cfg.max_page_limit)

    def in_range(obj: Any) -> bool:
        updated: datetime = obj.last_updated
        if page.date_from and updated < page.date_from:
            return False
        return not (page.date_to and updated >= page.date_to)

    selected = [o for o in objects if in_range(o)]
    chunk = selected[page.offset:page.offset + page.limit]
    headers = page_headers(f"{mock.cfg.base_url}{request.path}", page, len(selected))
    return ocpi_response([o.to_json_dict() for o in chunk], headers=headers)


@registered_only
async def locations_list(request: web.Request) -> web.Response:
    return _paged(request, list(mock_of(request).state.locations.values()))


@registered_only
async def location_one(request: web.Request) -> web.Response:
    st = mock_of(request).state
    loc = st.locations.get(request.match_info["location_id"])
    if loc is None:
        raise UnknownLocation(f"unknown location {request.match_info['location_id']}")
    evse_uid = request.match_info.get("evse_uid")
    if evse_uid is None:
        return ocpi_response(loc.to_json_dict())
    found = st.evse(loc.id, evse_uid)
    if found is None:
        raise UnknownLocation(f"unknown EVSE {evse_uid} at {loc.id}")
    evse = found[1]
    connector_id = request.match_info.get("connector_id")
    if connector_id is None:
        return ocpi_response(evse.to_json_dict())
    conn = st.connector(evse, connector_id)
    if conn is None:
        raise UnknownLocation(f"unknown connector {connector_id} on {evse_uid}")
    return ocpi_response(conn.to_json_dict())


@registered_only
async def tariffs_list(request: web.Request) -> web.Response:
    return _paged(request, list(mock_of(request).state.tariffs.values()))


@registered_only
async def sessions_list(request: web.Request) -> web.Response:
    return _paged(request, list(mock_of(request).state.sessions.values()))


@registered_only
async def cdrs_list(request: web.Request) -> web.Response:
    return _paged(request, list(mock_of(request).state.cdrs.values()))


# ----------------------------------------------------------------------------- tokens receiver


def _token_key(request: web.Request) -> tuple[str, str, str]:
    cc, pid, uid = (request.match_info[k] for k in ("country_code", "party_id", "uid"))
    require_party(request, cc, pid)
    return (cc.upper(), pid.upper(), uid)


@registered_only
async def token_get(request: web.Request) -> web.Response:
    token = mock_of(request).state.tokens.get(_token_key(request))
    if token is None:
        raise UnknownToken("unknown token")
    return ocpi_response(token.to_json_dict())


@registered_only
async def token_put(request: web.Request) -> web.Response:
    key = _token_key(request)
    token = validate(Token, await read_json(request), "token")
    if (token.country_code.upper(), token.party_id.upper(), token.uid) != key:
        raise InvalidParameters("token country_code/party_id/uid differ from the URL")
    mock_of(request).state.tokens[key] = token
    return ocpi_response()


@registered_only
async def token_patch(request: web.Request) -> web.Response:
    st = mock_of(request).state
    key = _token_key(request)
    token = st.tokens.get(key)
    if token is None:
        raise UnknownToken("unknown token: PUT it first")
    patch = await read_json(request)
    if not isinstance(patch, dict) or "last_updated" not in patch:
        raise InvalidParameters("a PATCH must contain last_updated")
    merged = validate(Token, {**token.to_json_dict(), **patch}, "token")
    if merged.last_updated >= token.last_updated:  # an older PATCH changes nothing
        st.tokens[key] = merged
    return ocpi_response()


def add_routes(app: web.Application) -> None:
    r = app.router
    v = "/ocpi/2.2.1"
    r.add_get("/ocpi/versions", versions)
    r.add_get(v, version_details)
    for cred in (f"{v}/credentials", f"{v}/credentials/"):
        r.add_get(cred, credentials_get)
        r.add_post(cred, credentials_post)
        r.add_put(cred, credentials_put)
        r.add_delete(cred, credentials_delete)
    for module, handler in (("locations", locations_list), ("tariffs", tariffs_list),
                            ("sessions", sessions_list), ("cdrs", cdrs_list)):
        r.add_get(f"{v}/{module}/", handler)  # the module URL as --trailing-slash publishes it
    r.add_get(f"{v}/locations", locations_list)
    r.add_get(f"{v}/locations/{{location_id}}", location_one)
    r.add_get(f"{v}/locations/{{location_id}}/{{evse_uid}}", location_one)
    r.add_get(f"{v}/locations/{{location_id}}/{{evse_uid}}/{{connector_id}}", location_one)
    r.add_get(f"{v}/tariffs", tariffs_list)
    r.add_get(f"{v}/sessions", sessions_list)
    r.add_get(f"{v}/cdrs", cdrs_list)
    tok = f"{v}/tokens/{{country_code}}/{{party_id}}/{{uid}}"
    r.add_get(tok, token_get)
    r.add_put(tok, token_put)
    r.add_patch(tok, token_patch)
