"""Commands receiver (spec "commands" §13): answer at once with a
CommandResponse (ACCEPTED / REJECTED / UNKNOWN_SESSION / NOT_SUPPORTED and a
timeout), then do the work and POST the CommandResult to `response_url`.

Faults from `faults.py`: reject (CommandResponse REJECTED), no-result (the
CommandResult never arrives), timeout (CommandResult TIMEOUT after the
announced timeout), fail (CommandResult FAILED)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog
from aiohttp import web

from bridge.ocpi.models import (
    COMMAND_MODELS,
    EVSE,
    CancelReservation,
    Capability,
    CommandResponse,
    CommandResult,
    CommandType,
    Location,
    ReserveNow,
    StartSession,
    Status,
    StopSession,
    UnlockConnector,
)
from bridge.ocpi.transport import ocpi_response, read_json, validate
from ocpi_mock import simulator, tokens
from ocpi_mock.ocpi_routes import mock_of, registered_only
from ocpi_mock.runtime import Mock
from ocpi_mock.state import Reservation

log = structlog.get_logger("ocpi_mock.commands")

Work = Callable[[], Awaitable[CommandResult]]
INOPERATIVE = {Status.INOPERATIVE, Status.OUTOFORDER, Status.UNKNOWN, Status.REMOVED,
               Status.PLANNED}


def _text(msg: str) -> list[dict[str, str]]:
    return [{"language": "en", "text": msg}]


def respond(result: str, timeout: int, msg: str | None = None) -> web.Response:
    return ocpi_response(CommandResponse.model_validate(
        {"result": result, "timeout": timeout, "message": _text(msg) if msg else None}
    ).to_json_dict())


def result(kind: str, msg: str | None = None) -> CommandResult:
    return CommandResult.model_validate({"result": kind, "message": _text(msg) if msg else None})


def has(evse: EVSE, cap: Capability) -> bool:
    return cap in (evse.capabilities or [])


@registered_only
async def command(request: web.Request) -> web.Response:
    mock = mock_of(request)
    timeout = mock.cfg.command_timeout
    try:
        ctype = CommandType(request.match_info["command"].upper())
    except ValueError:
        return respond("NOT_SUPPORTED", timeout, f"unknown command {request.match_info['command']}")
    cmd = validate(COMMAND_MODELS[ctype], await read_json(request), ctype.value)
    fault = mock.faults.take_command_fault(ctype.value)
    if fault is not None and fault.mode == "reject":
        log.info("command.fault", command=ctype.value, mode="reject")
        return respond("REJECTED", timeout, "rejected by the CPO (fault injected)")

    answer, work, party = prepare(mock, ctype, cmd)
    if answer is not None:
        return answer
    assert work is not None
    mock.spawn(_deliver(mock, ctype, cmd.response_url, work, party,  # type: ignore[attr-defined]
                        fault.mode if fault else None), f"command-{ctype.value}")
    return respond("ACCEPTED", timeout)


async def _deliver(mock: Mock, ctype: CommandType, response_url: str, work: Work,
                   party: tuple[str, str] | None, fault: str | None) -> None:
    if fault == "no-result":
        log.info("command.fault", command=ctype.value, mode="no-result")
        return
    if fault == "timeout":
        await asyncio.sleep(mock.cfg.command_timeout)
        res = result("TIMEOUT", "the charge point did not answer in time")
    elif fault == "fail":
        res = result("FAILED", "the charge point failed to execute the command (fault injected)")
    else:
        res = await work()
    log.info("command.result", command=ctype.value, result=str(res.result))
    await simulator.safe(mock.push.post_command_result(response_url, res, party),
                         f"CommandResult {ctype.value}")
    after = getattr(work, "after", None)  # the session starts once the result is out
    if after is not None and str(res.result) == "ACCEPTED":
        await after()


def _locate(mock: Mock, location_id: str, evse_uid: str | None
            ) -> tuple[Location | None, EVSE | None, str | None]:
    loc = mock.state.locations.get(location_id)
    if loc is None:
        return None, None, f"unknown location {location_id}"
    if evse_uid is None:
        return loc, None, None
    found = mock.state.evse(location_id, evse_uid)
    if found is None:
        return loc, None, f"unknown EVSE {evse_uid} at {location_id}"
    return loc, found[1], None


def prepare(mock: Mock, ctype: CommandType, cmd: object
            ) -> tuple[web.Response | None, Work | None, tuple[str, str] | None]:
    """Synchronous checks -> an immediate answer, or the async work to do."""
    t = mock.cfg.command_timeout
    if isinstance(cmd, StartSession):
        loc, evse, err = _locate(mock, cmd.location_id, cmd.evse_uid)
        if err:
            return respond("REJECTED", t, err), None, None
        assert loc is not None
        if evse is not None and not has(evse, Capability.REMOTE_START_STOP_CAPABLE):
            return respond("NOT_SUPPORTED", t, "this EVSE cannot be started remotely"), None, None
        return None, _start_work(mock, cmd, loc, evse), (loc.country_code, loc.party_id)
    if isinstance(cmd, StopSession):
        live = mock.live.get(cmd.session_id)
        if live is None:
            return respond("UNKNOWN_SESSION", t, f"no active session {cmd.session_id}"), None, None
        return None, _stop_work(mock, live), (live.location.country_code, live.location.party_id)
    if isinstance(cmd, ReserveNow):
        loc, evse, err = _locate(mock, cmd.location_id, cmd.evse_uid)
        if err:
            return respond("REJECTED", t, err), None, None
        assert loc is not None
        if evse is not None and not has(evse, Capability.RESERVABLE):
            return respond("NOT_SUPPORTED", t, "this EVSE cannot be reserved"), None, None
        return None, _reserve_work(mock, cmd, loc, evse), (loc.country_code, loc.party_id)
    if isinstance(cmd, CancelReservation):
        return None, _cancel_work(mock, cmd), None
    if isinstance(cmd, UnlockConnector):
        loc, evse, err = _locate(mock, cmd.location_id, cmd.evse_uid)
        if err or evse is None or mock.state.connector(evse, cmd.connector_id) is None:
            return respond("REJECTED", t, err or f"unknown connector {cmd.connector_id}"), None, None
        if not has(evse, Capability.UNLOCK_CAPABLE):
            return respond("NOT_SUPPORTED", t, "this EVSE cannot unlock remotely"), None, None

        async def unlock() -> CommandResult:
            return result("ACCEPTED")

        assert loc is not None
        return None, unlock, (loc.country_code, loc.party_id)
    return respond("NOT_SUPPORTED", t), None, None


def _pick(loc: Location, cap: Capability) -> EVSE | None:
    return next((e for e in loc.evses or [] if e.status == Status.AVAILABLE and has(e, cap)), None)


def _evse_busy(mock: Mock, loc: Location, evse: EVSE, token_uid: str) -> CommandResult | None:
    if evse.status in INOPERATIVE:
        return result("EVSE_INOPERATIVE", f"EVSE {evse.uid} is {evse.status}")
    if evse.status == Status.RESERVED:
        res = mock.state.reservation_on(loc.id, evse.uid)
        if res is None or res.token.uid != token_uid:
            return result("EVSE_OCCUPIED", f"EVSE {evse.uid} is reserved for another driver")
        return None
    if evse.status != Status.AVAILABLE:
        return result("EVSE_OCCUPIED", f"EVSE {evse.uid} is {evse.status}")
    return None


def _start_work(mock: Mock, cmd: StartSession, loc: Location, evse: EVSE | None) -> Work:
    chosen: dict[str, object] = {}

    async def work() -> CommandResult:
        target = evse or _pick(loc, Capability.REMOTE_START_STOP_CAPABLE)
        if target is None:
            return result("EVSE_OCCUPIED", f"no free EVSE at {loc.id}")
        decision = await tokens.authorize(
            mock, uid=cmd.token.uid, token_type=str(cmd.token.type), command_token=cmd.token,
            location_id=loc.id, evse_uid=target.uid, party=(loc.country_code, loc.party_id),
            authorization_reference=cmd.authorization_reference)
        if not decision.allowed:
            return result("REJECTED", f"token refused: {decision.reason}")
        busy = _evse_busy(mock, loc, target, cmd.token.uid)
        if busy is not None:
            return busy
        conn = mock.state.connector(target, cmd.connector_id)
        if conn is None:
            return result("REJECTED", f"unknown connector {cmd.connector_id}")
        ref = decision.authorization_reference
        reservation = mock.state.reservation_on(loc.id, target.uid)
        if reservation is not None:  # the reserving driver arrived: the hold ends
            ref = ref or reservation.authorization_reference
            mock.state.reservations.pop(reservation.reservation_id, None)
            timer = mock.expiry_tasks.pop(reservation.reservation_id, None)
            if timer is not None:
                timer.cancel()
        target.status = Status.CHARGING  # hold it now: the session task PATCHes the eMSP
        chosen.update(evse=target, conn=conn, ref=ref, method=decision.auth_method)
        return result("ACCEPTED")

    async def after() -> None:
        car, mock.next_car = mock.next_car, None
        simulator.start_session(
            mock, loc=loc, evse=chosen["evse"], conn=chosen["conn"],  # type: ignore[arg-type]
            token=cmd.token, auth_method=chosen["method"],  # type: ignore[arg-type]
            authorization_reference=chosen["ref"], car=car)  # type: ignore[arg-type]

    work.after = after  # type: ignore[attr-defined]
    return work


def _stop_work(mock: Mock, live: simulator.LiveSession) -> Work:
    async def work() -> CommandResult:
        if live.key in mock.faults.offline:
            # the charger is offline: the stop never reaches it (overcharge case)
            return result("TIMEOUT", "the charge point is not reachable")
        simulator.request_stop(live, "stopped by the eMSP")
        return result("ACCEPTED")

    return work


def _reserve_work(mock: Mock, cmd: ReserveNow, loc: Location, evse: EVSE | None) -> Work:
    async def work() -> CommandResult:
        now = mock.clock.now()
        if cmd.expiry_date <= now:
            return result("REJECTED", "expiry_date is in the past")
        existing = mock.state.reservations.get(cmd.reservation_id)
        target = evse
        if target is None and existing is not None:
            target = mock.state.evse(existing.location_id, existing.evse_uid)[1]  # type: ignore[index]
        target = target or _pick(loc, Capability.RESERVABLE)
        if target is None:
            return result("EVSE_OCCUPIED", f"no reservable EVSE free at {loc.id}")
        decision = await tokens.authorize(
            mock, uid=cmd.token.uid, token_type=str(cmd.token.type), command_token=cmd.token,
            location_id=loc.id, evse_uid=target.uid, party=(loc.country_code, loc.party_id),
            authorization_reference=cmd.authorization_reference)
        if not decision.allowed:
            return result("REJECTED", f"token refused: {decision.reason}")
        mine = existing is not None and existing.evse_uid == target.uid
        if not mine:
            busy = _evse_busy(mock, loc, target, cmd.token.uid)
            if busy is not None:
                return busy
        mock.state.reservations[cmd.reservation_id] = Reservation(
            reservation_id=cmd.reservation_id, location_id=loc.id, evse_uid=target.uid,
            token=cmd.token, expiry=cmd.expiry_date,
            authorization_reference=decision.authorization_reference,
            response_url=cmd.response_url, created=now)
        old = mock.expiry_tasks.pop(cmd.reservation_id, None)
        if old is not None:
            old.cancel()
        mock.expiry_tasks[cmd.reservation_id] = mock.spawn(
            _expire(mock, cmd.reservation_id, cmd.expiry_date), f"expire-{cmd.reservation_id}")
        target.status = Status.RESERVED
        mock.spawn(simulator.set_evse_status(mock, loc, target, Status.RESERVED),
                   f"reserved-{target.uid}")
        return result("ACCEPTED")

    return work


async def _expire(mock: Mock, reservation_id: str, expiry: datetime) -> None:
    await mock.clock.sleep_until(expiry)
    res = mock.state.reservations.pop(reservation_id, None)
    mock.expiry_tasks.pop(reservation_id, None)
    if res is None:
        return
    found = mock.state.evse(res.location_id, res.evse_uid)
    log.info("reservation.expired", reservation_id=reservation_id)
    if found is not None and found[1].status == Status.RESERVED:
        await simulator.set_evse_status(mock, found[0], found[1], Status.AVAILABLE)


def _cancel_work(mock: Mock, cmd: CancelReservation) -> Work:
    async def work() -> CommandResult:
        res = mock.state.reservations.pop(cmd.reservation_id, None)
        if res is None:
            return result("UNKNOWN_RESERVATION", f"no reservation {cmd.reservation_id}")
        timer = mock.expiry_tasks.pop(cmd.reservation_id, None)
        if timer is not None:
            timer.cancel()
        found = mock.state.evse(res.location_id, res.evse_uid)
        if found is not None and found[1].status == Status.RESERVED:
            mock.spawn(simulator.set_evse_status(mock, found[0], found[1], Status.AVAILABLE),
                       f"cancel-{res.evse_uid}")
        return result("CANCELED_RESERVATION")

    return work


def add_routes(app: web.Application) -> None:
    app.router.add_post("/ocpi/2.2.1/commands/{command}", command)
