"""Commands module, eMSP sender interface (OCPI 2.2.1 part "commands", §13).

We POST a command to the CPO's commands receiver
(`POST {url}/{command}`, body StartSession / StopSession / ReserveNow /
CancelReservation / UnlockConnector); it answers at once with a
CommandResponse (ACCEPTED / REJECTED / UNKNOWN_SESSION / NOT_SUPPORTED and a
`timeout`), and later POSTs the CommandResult to the `response_url` we gave:

    POST /commands/{command}/{uid}     CommandResult from the CPO

Each result is stored once and announced on the change stream
(`module=commands op=result`), where the orders layer picks it up. A result
that never comes is the orders layer's time-out to handle (it knows `timeout`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from bridge.ocpi.client import OcpiClient, join_url, parse
from bridge.ocpi.deps import VERSION_PATH, OcpiDeps
from bridge.ocpi.errors import InvalidParameters, MissingEndpoints, NotYourParty, UnknownObject
from bridge.ocpi.models import COMMAND_MODELS, CommandResponse, CommandResult, CommandType
from bridge.ocpi.transport import Principal, ocpi_response, read_json, validate
from bridge.store.credentials import Connection

log = structlog.get_logger("bridge.ocpi.commands")


def response_url(deps: OcpiDeps, command: CommandType, uid: str) -> str:
    return f"{deps.module_url('commands')}/{command.value}/{uid}"


async def send_command(deps: OcpiDeps, conn: Connection, party: tuple[str, str],
                       command: CommandType, body: dict[str, Any], *,
                       order_id: str | None = None, uid: str | None = None,
                       now: datetime | None = None) -> tuple[str, CommandResponse]:
    """Send one command; returns our command uid and the CPO's CommandResponse.

    `body` is the command object without `response_url` (added here). Errors
    of the call come out as OcpiClientError; the command is recorded first so
    that a result arriving quickly always finds its record.
    """
    url = conn.endpoint("commands", "RECEIVER")
    if url is None:
        raise MissingEndpoints(f"CPO platform {conn.id} has no commands receiver")
    uid = uid or uuid.uuid4().hex
    now = now or datetime.now(UTC)
    payload = {**body, "response_url": response_url(deps, command, uid)}
    COMMAND_MODELS[command].model_validate(payload)  # our own bug if this fails
    await deps.tokens.record_command(uid, command.value, party, order_id, None, now)
    client = OcpiClient(deps.http(), conn.their_token, timeout=deps.settings.ocpi_request_timeout,
                        from_party=deps.own_party, to_party=party)
    target = join_url(url, command.value)
    response = parse(CommandResponse, await client.post(target, payload), target)
    await deps.tokens.record_command(uid, command.value, party, order_id,
                                     response.model_dump(mode="json", exclude_none=True), now)
    log.info("ocpi.command.sent", command=command.value, uid=uid, party=f"{party[0]}-{party[1]}",
             response=response.result.value, timeout=response.timeout)
    return uid, response


def routes(deps: OcpiDeps) -> list[web.RouteDef]:
    async def result(request: web.Request) -> web.Response:
        try:
            command = CommandType(request.match_info["command"])
        except ValueError as exc:
            raise InvalidParameters(f"unknown command {request.match_info['command']!r}") from exc
        uid = request.match_info["uid"]
        body = validate(CommandResult, await read_json(request))
        sent = await deps.tokens.get_command(uid)
        if sent is None or sent.get("command") != command.value:
            raise UnknownObject(f"no {command.value} command {uid} was sent")
        principal: Principal = request["principal"]
        if not principal.owns(sent["cc"], sent["pid"]):
            raise NotYourParty("this command was sent to another party")
        first = await deps.tokens.record_result(
            uid, body.model_dump(mode="json", exclude_none=True), datetime.now(UTC))
        log.info("ocpi.command.result", command=command.value, uid=uid, result=body.result.value,
                 duplicate=not first)
        return ocpi_response(None)

    return [web.post(f"{VERSION_PATH}/commands/{{command}}/{{uid}}", result)]
