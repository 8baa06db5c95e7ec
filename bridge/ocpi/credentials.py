"""Credentials module (OCPI 2.2.1 part "credentials", §7), both directions.

A CPO registers with us (§7.2.1): it POSTs its credentials (its token B and
versions URL) with the one-time token A from `bridge cpo invite`; we fetch its
versions and endpoints with token B, answer with a fresh token C, and token A
stops working. PUT rotates (new C, endpoints fetched again), DELETE
unregisters, GET returns our credentials.

We register with a CPO (`register_with`, used by `bridge register`): the
mirror image, we POST our credentials with the CPO's token A.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from bridge.logs import fingerprint
from bridge.ocpi import VERSION
from bridge.ocpi.client import OcpiClient, discover_endpoints, parse
from bridge.ocpi.deps import VERSION_PATH, OcpiDeps
from bridge.ocpi.errors import (
    InvalidParameters,
    MethodNotAllowed,
    MissingEndpoints,
    OcpiClientError,
    UnableToUseClientApi,
    UnsupportedVersion,
)
from bridge.ocpi.models import Credentials, Role
from bridge.ocpi.transport import Principal, ocpi_response, read_json, validate
from bridge.store.credentials import (
    Connection,
    InviteSpent,
    PartyTaken,
    new_token,
    token_hash,
)
from bridge.urlguard import BlockedUrl, check_url

log = structlog.get_logger("bridge.ocpi.credentials")

# Modules a CPO must offer for the bridge to work with it at all.
REQUIRED_CPO_MODULES = ("credentials",)


def our_credentials(deps: OcpiDeps, token: str) -> dict[str, Any]:
    s = deps.settings
    details: dict[str, Any] = {"name": s.ocpi_business_name}
    if s.ocpi_business_website:
        details["website"] = s.ocpi_business_website
    return {
        "token": token,
        "url": deps.versions_url,
        "roles": [{"role": "EMSP", "party_id": s.ocpi_party_id, "country_code": s.ocpi_country_code,
                   "business_details": details}],
    }


def _cpo_roles(creds: Credentials) -> list[dict[str, Any]]:
    roles = [r.model_dump(mode="json", exclude_none=True) for r in creds.roles]
    not_cpo = [r["role"] for r in roles if r["role"] != Role.CPO.value]
    if not_cpo:
        raise InvalidParameters(f"roles: the bridge registers CPO roles only, got {', '.join(not_cpo)}")
    return roles


def _names(parties: frozenset[tuple[str, str]] | set[tuple[str, str]]) -> str:
    return ", ".join(f"{c}-{p}" for c, p in sorted(parties))


def check_scope(principal: Principal, previous: Connection | None,
                parties: frozenset[tuple[str, str]]) -> None:
    """A token A registers exactly the parties it was issued for (`bridge cpo invite`);
    a PUT keeps to the parties already registered (a new party needs a new invite)."""
    allowed = principal.invited if principal.kind == "A" else (
        previous.parties if previous else frozenset())
    extra = parties - allowed
    if extra:
        what = "token A was issued for" if principal.kind == "A" else "this registration holds"
        raise InvalidParameters(f"roles: {_names(extra)} not allowed: {what} "
                                f"{_names(allowed) or 'no party'}")


async def _fetch_endpoints(deps: OcpiDeps, creds: Credentials) -> tuple[str, list[dict[str, Any]]]:
    client = OcpiClient(deps.http(), creds.token, timeout=deps.settings.ocpi_request_timeout)
    try:
        check_url(creds.url, deps.url_policy)
        version_url, endpoints = await discover_endpoints(client, creds.url, VERSION)
    except BlockedUrl as exc:
        raise InvalidParameters(f"url: {exc}") from exc
    except OcpiClientError as exc:
        if isinstance(exc.__cause__, BlockedUrl):  # a name that resolves to a refused address
            raise InvalidParameters(f"url: {exc.__cause__}") from exc
        if "offers no OCPI" in str(exc):
            raise UnsupportedVersion(str(exc)) from exc
        raise UnableToUseClientApi(f"could not read your versions with your token: {exc}") from exc
    have = {e.get("identifier") for e in endpoints}
    missing = [m for m in REQUIRED_CPO_MODULES if m not in have]
    if missing:
        raise MissingEndpoints(f"version {VERSION} lacks module(s): {', '.join(missing)}")
    return version_url, endpoints


async def _register(deps: OcpiDeps, request: web.Request, principal: Principal,
                    previous: Connection | None) -> web.Response:
    creds = validate(Credentials, await read_json(request))
    roles = _cpo_roles(creds)
    parties = frozenset((r["country_code"].upper(), r["party_id"].upper()) for r in roles)
    check_scope(principal, previous, parties)
    conn = Connection(id=previous.id if previous else "", their_token=creds.token,
                      versions_url=creds.url, roles=roles,
                      created=previous.created if previous else "")
    try:
        await deps.creds.check_parties(conn)  # before we call the CPO
    except PartyTaken as exc:
        raise InvalidParameters(str(exc)) from exc
    conn.version_url, conn.endpoints = await _fetch_endpoints(deps, creds)
    our_token = new_token()
    try:
        replaced = await deps.creds.save_connection(
            conn, our_token, consume_invite=request["token"] if principal.kind == "A" else None,
            previous_token_hash=previous.our_token_hash if previous else None)
    except (PartyTaken, InviteSpent) as exc:
        raise InvalidParameters(str(exc)) from exc
    log.info("ocpi.credentials.registered", conn=conn.id, parties=sorted(conn.parties),
             versions_url=creds.url, token_c=fingerprint(our_token), update=previous is not None,
             replaced=[c.id for c in replaced])
    return _ok(our_credentials(deps, our_token))


def _ok(data: Any) -> web.Response:
    return ocpi_response(data)


def routes(deps: OcpiDeps) -> list[web.RouteDef]:
    path = f"{VERSION_PATH}/credentials"

    async def get(request: web.Request) -> web.Response:
        return _ok(our_credentials(deps, request["token"]))

    async def post(request: web.Request) -> web.Response:
        principal: Principal = request["principal"]
        if principal.kind != "A":
            # §7.2.1: a registered platform must use PUT to update.
            raise MethodNotAllowed("already registered: use PUT to update your credentials",
                                   allow=("DELETE", "GET", "PUT"))
        return await _register(deps, request, principal, None)

    async def put(request: web.Request) -> web.Response:
        principal: Principal = request["principal"]
        previous = await deps.creds.get_connection(principal.id) if principal.kind == "C" else None
        if previous is None:
            raise MethodNotAllowed("not registered yet: use POST with token A",
                                   allow=("GET", "POST"))
        return await _register(deps, request, principal, previous)

    async def delete(request: web.Request) -> web.Response:
        principal: Principal = request["principal"]
        conn = await deps.creds.get_connection(principal.id) if principal.kind == "C" else None
        if conn is None:
            raise MethodNotAllowed("not registered", allow=("GET", "POST"))
        await deps.creds.delete_connection(conn)
        log.info("ocpi.credentials.unregistered", conn=conn.id, parties=sorted(conn.parties))
        return _ok(None)

    return [web.get(path, get), web.post(path, post), web.put(path, put),
            web.delete(path, delete)]


class RegistrationFailed(Exception):
    """`bridge register` did not complete; nothing of it is left (message: why, one line)."""


async def register_with(deps: OcpiDeps, versions_url: str, token_a: str) -> Connection:
    """We register with a CPO that gave us token A (§7.2.1, the other direction).

    All or nothing: whatever fails, no connection, token or party record is left
    here, and if the CPO had already accepted us, we unregister there (DELETE
    with the token C it gave us). A platform registering again (same versions URL)
    replaces its previous registration.
    """
    client = OcpiClient(deps.http(), token_a, timeout=deps.settings.ocpi_request_timeout)
    version_url, endpoints = await discover_endpoints(client, versions_url, VERSION)
    creds_url = next((str(e["url"]) for e in endpoints if e.get("identifier") == "credentials"),
                     None)
    if creds_url is None:
        raise RegistrationFailed(f"{version_url} has no credentials module")
    # Token B must work before the CPO calls our versions during its POST handling; it
    # is marked "registering" until the CPO's roles are stored (see authenticate_fresh).
    token_b = new_token()
    # A registration of this platform left half way by a killed process has no parties
    # and its token B was never answered: it goes now.
    for stale in await deps.creds.connections():
        if stale.state == "registering" and stale.versions_url.rstrip("/") == \
                versions_url.rstrip("/"):
            await deps.creds.delete_connection(stale)
    conn = Connection(id="", their_token=token_a, versions_url=versions_url,
                      version_url=version_url, endpoints=endpoints, roles=[],
                      state="registering")
    await deps.creds.save_connection(conn, token_b)
    theirs: Credentials | None = None
    try:
        theirs = parse(Credentials, await client.post(creds_url, our_credentials(deps, token_b)),
                       creds_url)
        conn.their_token = theirs.token
        conn.roles = [r.model_dump(mode="json", exclude_none=True) for r in theirs.roles]
        not_cpo = sorted({r["role"] for r in conn.roles} - {Role.CPO.value})
        if not_cpo:
            raise RegistrationFailed(f"the platform's roles are {', '.join(not_cpo)}; "
                                     "the bridge connects CPOs only")
        conn.state = ""
        await deps.creds.save_connection(conn, None)  # the roles first: pushes may come now
        # Endpoints may differ per token; read them again with the token we will use.
        try:
            client_c = OcpiClient(deps.http(), theirs.token,
                                  timeout=deps.settings.ocpi_request_timeout)
            conn.version_url, conn.endpoints = await discover_endpoints(
                client_c, versions_url, VERSION)
            await deps.creds.save_connection(conn, None)
        except OcpiClientError as exc:
            log.warning("ocpi.credentials.rediscover_failed", conn=conn.id, error=str(exc))
    except BaseException as exc:
        await _undo_registration(deps, conn, creds_url, theirs)
        if isinstance(exc, PartyTaken | InviteSpent):
            raise RegistrationFailed(str(exc)) from exc
        raise
    log.info("ocpi.credentials.registered_with", conn=conn.id, parties=sorted(conn.parties),
             versions_url=versions_url, token_b=fingerprint(token_b),
             our_token_hash=token_hash(token_b)[:10])
    return conn


async def _undo_registration(deps: OcpiDeps, conn: Connection, creds_url: str,
                             theirs: Credentials | None) -> None:
    """Take back a registration that failed half way, on both sides."""
    if theirs is not None:
        try:
            client_c = OcpiClient(deps.http(), theirs.token,
                                  timeout=deps.settings.ocpi_request_timeout)
            await client_c.delete(creds_url)
        except OcpiClientError as exc:
            log.warning("ocpi.credentials.undo_remote_failed", url=creds_url, error=str(exc))
    stored = await deps.creds.get_connection(conn.id)
    if stored is not None:
        await deps.creds.delete_connection(stored)


async def rotate_with(deps: OcpiDeps, conn: Connection) -> Connection:
    """New tokens both ways through the CPO's credentials PUT (§7.2.3 "update"):
    we send a fresh token for it to use with us, it answers with its own fresh one.
    The new token works with us before the PUT goes out (the CPO may read our
    versions with it meanwhile); the old one is dropped only when the PUT succeeded,
    and the new one is taken back if it failed."""
    url = conn.endpoint("credentials", "SENDER") or conn.endpoint("credentials", "RECEIVER")
    if url is None:
        raise RegistrationFailed(f"the platform {conn.versions_url} lists no credentials module")
    new_ours = new_token()
    await deps.creds.add_token(conn, new_ours)
    client = OcpiClient(deps.http(), conn.their_token, timeout=deps.settings.ocpi_request_timeout)
    try:
        theirs = parse(Credentials, await client.put(url, our_credentials(deps, new_ours)), url)
        roles = [r.model_dump(mode="json", exclude_none=True) for r in theirs.roles]
        if any(r["role"] != Role.CPO.value for r in roles):
            raise RegistrationFailed("the platform answered non-CPO roles")
    except BaseException:
        await deps.creds.drop_token(new_ours)
        raise
    previous_hash = conn.our_token_hash
    conn.their_token = theirs.token
    conn.roles = roles
    await deps.creds.save_connection(conn, new_ours, previous_token_hash=previous_hash)
    log.info("ocpi.credentials.rotated", conn=conn.id, parties=sorted(conn.parties),
             token_c=fingerprint(new_ours))
    return conn


async def unregister_with(deps: OcpiDeps, conn: Connection) -> str | None:
    """Drop a registration: DELETE at the CPO's credentials (§7.2.4) where it has
    one, then our records. Returns why the CPO's side could not be told, if so;
    ours is dropped either way (the operator asked for it)."""
    url = conn.endpoint("credentials", "SENDER") or conn.endpoint("credentials", "RECEIVER")
    remote_error = None
    if url is None:
        remote_error = "the platform lists no credentials module"
    else:
        client = OcpiClient(deps.http(), conn.their_token,
                            timeout=deps.settings.ocpi_request_timeout)
        try:
            await client.delete(url)
        except OcpiClientError as exc:
            remote_error = str(exc)
    await deps.creds.delete_connection(conn)
    log.info("ocpi.credentials.removed", conn=conn.id, parties=sorted(conn.parties),
             remote_error=remote_error)
    return remote_error
