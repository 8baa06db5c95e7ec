"""Tokens module, eMSP sender interface (OCPI 2.2.1 part "tokens", §12.2.2).

    GET  /tokens?offset&limit&date_from&date_to      our tokens, paginated
    POST /tokens/{token_uid}/authorize[?type=TYPE]   real-time authorization

The answer to an authorization comes from the token's record, which the
orders layer keeps current (an order's token is ALLOWED while the order may
charge, with the order's location/EVSE as restriction). `decide` is pure.

Pushing a token to a CPO's tokens receiver (`push_token`) is §12.2.1's
`PUT {url}/{country_code}/{party_id}/{token_uid}?type=` with our own party.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from bridge.ocpi.client import OcpiClient, join_url
from bridge.ocpi.deps import VERSION_PATH, OcpiDeps
from bridge.ocpi.errors import InvalidParameters, MissingEndpoints, UnknownToken
from bridge.ocpi.models import (
    AllowedType,
    AuthorizationInfo,
    LocationReferences,
    Token,
    TokenType,
)
from bridge.ocpi.transport import (
    ocpi_response,
    page_headers,
    parse_page,
    read_body,
    read_json,
    validate,
)
from bridge.store.credentials import Connection
from bridge.store.keys import norm_id
from bridge.store.tokens import TokenRecord


def decide(record: TokenRecord, asked: LocationReferences | None) -> AuthorizationInfo:
    """What to answer a CPO asking whether `record`'s token may charge at `asked`."""
    allowed = record.allowed
    if not record.token.valid and allowed is AllowedType.ALLOWED:
        allowed = AllowedType.BLOCKED
    limit = record.location
    if allowed is AllowedType.ALLOWED and limit is not None and asked is not None:
        if norm_id(asked.location_id) != norm_id(limit.location_id):
            allowed = AllowedType.NOT_ALLOWED
        elif limit.evse_uids and asked.evse_uids and not (
                {norm_id(u) for u in asked.evse_uids} <= {norm_id(u) for u in limit.evse_uids}):
            allowed = AllowedType.NOT_ALLOWED
    return AuthorizationInfo(
        allowed=allowed, token=record.token, location=limit,
        authorization_reference=record.authorization_reference
        if allowed is AllowedType.ALLOWED else None)


def routes(deps: OcpiDeps) -> list[web.RouteDef]:
    base = f"{VERSION_PATH}/tokens"

    async def list_tokens(request: web.Request) -> web.Response:
        page = parse_page(request.query, deps.settings.ocpi_page_limit,
                          deps.settings.ocpi_max_page_limit)
        total, raws = await deps.tokens.list_page(page.offset, page.limit, page.date_from,
                                                  page.date_to)
        return ocpi_response(raw_data=b"[" + b",".join(raws) + b"]",
                             headers=page_headers(deps.module_url("tokens"), page, total))

    async def authorize(request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        token_type = request.query.get("type", TokenType.RFID.value)  # §12.2.2.2 default
        if token_type not in TokenType.__members__:
            raise InvalidParameters(f"type: {token_type!r} is not a TokenType")
        asked = None
        if await read_body(request):
            asked = validate(LocationReferences, await read_json(request))
        record = await deps.tokens.get(token_type, uid)
        if record is None:
            raise UnknownToken(f"unknown token {token_type} {uid}")
        return ocpi_response(decide(record, asked).model_dump(mode="json", exclude_none=True))

    return [web.get(base, list_tokens), web.post(f"{base}/{{uid}}/authorize", authorize)]


async def push_token(deps: OcpiDeps, conn: Connection, token: Token,
                     party: tuple[str, str] | None = None) -> Any:
    """PUT our token into a CPO's tokens receiver so it can authorize locally."""
    url = conn.endpoint("tokens", "RECEIVER")
    if url is None:
        raise MissingEndpoints(f"CPO platform {conn.id} has no tokens receiver")
    client = OcpiClient(deps.http(), conn.their_token, timeout=deps.settings.ocpi_request_timeout,
                        from_party=deps.own_party, to_party=party)
    body = orjson.loads(orjson.dumps(token.model_dump(mode="json", exclude_none=True)))
    target = join_url(url, token.country_code, token.party_id, token.uid)
    return await client.put(f"{target}?type={token.type.value}", body)
