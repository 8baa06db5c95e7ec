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
from bridge.ocpi.client import OcpiClient, discover_endpoints
from bridge.ocpi.deps import VERSION_PATH, OcpiDeps
from bridge.ocpi.errors import (
    InvalidParameters,
    MethodNotAllowed,
    MissingEndpoints,
    OcpiClientError,
    OcpiError,
    UnableToUseClientApi,
    UnsupportedVersion,
)
from bridge.ocpi.models import Credentials, Role
from bridge.ocpi.transport import Principal, ocpi_response, read_json, validate
from bridge.store.credentials import Connection, PartyTaken, new_token, token_hash

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


async def _fetch_endpoints(deps: OcpiDeps, creds: Credentials) -> tuple[str, list[dict[str, Any]]]:
    client = OcpiClient(deps.http(), creds.token, timeout=deps.settings.ocpi_request_timeout)
    try:
        version_url, endpoints = await discover_endpoints(client, creds.url, VERSION)
    except OcpiClientError as exc:
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
    if principal.kind == "A" and not any(
            (r["country_code"].upper(), r["party_id"].upper()) in principal.invited for r in roles):
        invited = ", ".join(f"{c}-{p}" for c, p in sorted(principal.invited))
        raise InvalidParameters(f"roles: token A was issued for {invited}, which is not among the roles")
    version_url, endpoints = await _fetch_endpoints(deps, creds)
    conn = Connection(id=previous.id if previous else "", their_token=creds.token,
                      versions_url=creds.url, version_url=version_url, endpoints=endpoints,
                      roles=roles, created=previous.created if previous else "")
    our_token = new_token()
    try:
        await deps.creds.check_parties(conn)  # before token A is spent
    except PartyTaken as exc:
        raise InvalidParameters(str(exc)) from exc
    if principal.kind == "A":
        invite = request["token"]
        if not await deps.creds.consume_invite(invite):
            raise InvalidParameters("token A was used by a concurrent registration")
    try:
        await deps.creds.save_connection(
            conn, our_token, previous_token_hash=previous.our_token_hash if previous else None)
    except PartyTaken as exc:
        raise InvalidParameters(str(exc)) from exc
    log.info("ocpi.credentials.registered", conn=conn.id, parties=sorted(conn.parties),
             versions_url=creds.url, token_c=fingerprint(our_token), update=previous is not None)
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
            raise MethodNotAllowed("already registered: use PUT to update your credentials")
        return await _register(deps, request, principal, None)

    async def put(request: web.Request) -> web.Response:
        principal: Principal = request["principal"]
        if principal.kind != "C":
            raise MethodNotAllowed("not registered yet: use POST with token A")
        previous = await deps.creds.get_connection(principal.id)
        if previous is None:
            raise MethodNotAllowed("not registered")
        return await _register(deps, request, principal, previous)

    async def delete(request: web.Request) -> web.Response:
        principal: Principal = request["principal"]
        if principal.kind != "C":
            raise MethodNotAllowed("not registered")
        conn = await deps.creds.get_connection(principal.id)
        if conn is None:
            raise MethodNotAllowed("not registered")
        await deps.creds.delete_connection(conn)
        log.info("ocpi.credentials.unregistered", conn=conn.id, parties=sorted(conn.parties))
        return _ok(None)

    return [web.get(path, get), web.post(path, post), web.put(path, put),
            web.delete(path, delete)]


async def register_with(deps: OcpiDeps, versions_url: str, token_a: str) -> Connection:
    """We register with a CPO that gave us token A (§7.2.1, the other direction)."""
    client = OcpiClient(deps.http(), token_a, timeout=deps.settings.ocpi_request_timeout)
    version_url, endpoints = await discover_endpoints(client, versions_url, VERSION)
    creds_url = next((e["url"] for e in endpoints if e.get("identifier") == "credentials"), None)
    if creds_url is None:
        raise OcpiError(f"{version_url} has no credentials module")
    # Token B must work before the CPO calls our versions during its POST handling.
    token_b = new_token()
    conn = Connection(id="", their_token=token_a, versions_url=versions_url,
                      version_url=version_url, endpoints=endpoints, roles=[])
    await deps.creds.save_connection(conn, token_b)
    try:
        reply = await client.post(creds_url, our_credentials(deps, token_b))
        theirs = Credentials.model_validate(reply)
    except Exception:
        await deps.creds.delete_connection(conn)
        raise
    conn.their_token = theirs.token
    conn.roles = [r.model_dump(mode="json", exclude_none=True) for r in theirs.roles]
    # Endpoints may differ per token; fetch them again with the token we will use.
    client_c = OcpiClient(deps.http(), theirs.token, timeout=deps.settings.ocpi_request_timeout)
    conn.version_url, conn.endpoints = await discover_endpoints(client_c, versions_url, VERSION)
    await deps.creds.save_connection(conn, None)
    log.info("ocpi.credentials.registered_with", conn=conn.id, parties=sorted(conn.parties),
             versions_url=versions_url, token_b=fingerprint(token_b),
             our_token_hash=token_hash(token_b)[:10])
    return conn
