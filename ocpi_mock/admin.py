"""Admin HTTP API of the mock (not OCPI, no auth: bind it to loopback).

    GET  /admin/health | /admin/state | /admin/faults
    POST /admin/invite                 -> {"token": token A for an eMSP to register with us}
    POST /admin/connect                {versions_url, token} -> register with an eMSP, push network
    POST /admin/push                   push the whole network again
    POST /admin/sessions/start         {evse, connector_id?, token_uid, token_type?, car?}
    POST /admin/sessions/{id}/stop     the driver stops / unplugs
    GET  /admin/sessions/{id}          the Session and its CDR
    POST /admin/next-car               {battery_kwh, soc, target_soc, max_kw} for the next start
    POST /admin/faults/{kind}          see faults.KINDS and docs/mock-cpo.md
    DELETE /admin/faults               clear every fault switch
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from aiohttp import web

from bridge.ocpi.errors import OcpiClientError
from bridge.ocpi.models import Token, TokenType, WhitelistType
from ocpi_mock import actions, registration, simulator, tokens
from ocpi_mock.faults import COMMAND_MODES, KINDS, CommandFault
from ocpi_mock.ocpi_routes import mock_of
from ocpi_mock.pusher import NotRegistered
from ocpi_mock.state import new_token


def reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, default=_default), status=status,
                        content_type="application/json")


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    if hasattr(obj, "to_json_dict"):
        return obj.to_json_dict()
    raise TypeError(type(obj).__name__)


def fail(message: str, status: int = 400) -> web.Response:
    return reply({"error": message}, status)


async def body_of(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json(loads=orjson.loads)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"body is not JSON: {exc}") from exc
    return data if isinstance(data, dict) else {}


async def health(request: web.Request) -> web.Response:
    return reply({"ok": True, "now": mock_of(request).clock.now().isoformat()})


async def state(request: web.Request) -> web.Response:
    mock = mock_of(request)
    st = mock.state
    return reply({
        "now": mock.clock.now().isoformat(), "speed": mock.clock.speed,
        "registered": st.peer is not None,
        "emsp": [f"{r.country_code}-{r.party_id}" for r in st.peer.roles] if st.peer else [],
        "parties": [f"{cc}-{pid}" for cc, pid in st.own_parties()],
        "locations": len(st.locations), "tariffs": len(st.tariffs),
        "active_sessions": sorted(mock.live), "sessions": len(st.sessions), "cdrs": len(st.cdrs),
        "tokens": len(st.tokens),
        "reservations": {r.reservation_id: {"evse_uid": r.evse_uid, "expiry": r.expiry.isoformat()}
                         for r in st.reservations.values()},
        "pushes": {"sent": mock.push.sent, "failed": mock.push.failed},
    })


async def invite(request: web.Request) -> web.Response:
    token = new_token()
    mock_of(request).state.invites.add(token)
    return reply({"token": token, "versions_url": mock_of(request).versions_url})


async def connect(request: web.Request) -> web.Response:
    mock = mock_of(request)
    body = await body_of(request)
    if not body.get("versions_url") or not body.get("token"):
        return fail("versions_url and token are required")
    try:
        info = await registration.connect(mock, str(body["versions_url"]), str(body["token"]))
    except registration.ConnectError as exc:
        return fail(str(exc), 502)
    if body.get("push", True):
        try:
            info["pushed"] = await mock.push_network()
        except (OcpiClientError, NotRegistered) as exc:
            return fail(f"registered, but pushing the network failed: {exc}", 502)
    return reply(info)


async def push(request: web.Request) -> web.Response:
    try:
        return reply(await mock_of(request).push_network())
    except NotRegistered as exc:
        return fail(str(exc), 409)


def _car(spec: dict[str, Any] | None) -> simulator.Car | None:
    if not spec:
        return None
    try:
        return simulator.Car(
            battery_kwh=Decimal(str(spec.get("battery_kwh", 40))),
            soc=Decimal(str(spec.get("soc", "0.5"))),
            target_soc=Decimal(str(spec.get("target_soc", "0.9"))),
            max_kw=Decimal(str(spec.get("max_kw", 60))))
    except InvalidOperation as exc:
        raise web.HTTPBadRequest(text=f"bad car: {exc}") from exc


async def next_car(request: web.Request) -> web.Response:
    mock = mock_of(request)
    mock.next_car = _car(await body_of(request))
    return reply({"next_car": vars(mock.next_car) if mock.next_car else None})


async def session_start(request: web.Request) -> web.Response:
    """A driver at the charger: scans the QR / taps an RFID card (token_uid)."""
    mock = mock_of(request)
    body = await body_of(request)
    found = mock.state.find_evse_uid(str(body.get("evse", "")))
    if found is None:
        return fail(f"unknown EVSE {body.get('evse')!r} (give its uid or evse_id)", 404)
    loc, evse = found
    conn = mock.state.connector(evse, body.get("connector_id"))
    if conn is None:
        return fail(f"unknown connector {body.get('connector_id')}", 404)
    uid = str(body.get("token_uid") or "")
    if not uid:
        return fail("token_uid is required")
    token_type = str(body.get("token_type", "RFID"))
    decision = await tokens.authorize(mock, uid=uid, token_type=token_type, command_token=None,
                                      location_id=loc.id, evse_uid=evse.uid,
                                      party=(loc.country_code, loc.party_id))
    if not decision.allowed:
        return reply({"error": f"token refused: {decision.reason}", "allowed": decision.reason},
                     403)
    from ocpi_mock.commands import _evse_busy

    busy = _evse_busy(mock, loc, evse, uid)
    if busy is not None:
        return reply({"error": str(busy.result)}, 409)
    token = decision.token or Token(
        country_code=loc.country_code, party_id=loc.party_id, uid=uid, type=TokenType(token_type),
        contract_id=uid, issuer="unknown", valid=True, whitelist=WhitelistType.NEVER,
        last_updated=mock.clock.now())
    reservation = mock.state.reservation_on(loc.id, evse.uid)
    if reservation is not None:
        mock.state.reservations.pop(reservation.reservation_id, None)
        timer = mock.expiry_tasks.pop(reservation.reservation_id, None)
        if timer is not None:
            timer.cancel()
    evse.status = simulator.Status.CHARGING
    live = simulator.start_session(mock, loc=loc, evse=evse, conn=conn, token=token,
                                   auth_method=decision.auth_method,
                                   authorization_reference=decision.authorization_reference,
                                   car=_car(body.get("car")))
    return reply({"session_id": live.session.id, "auth_method": str(decision.auth_method),
                  "location_id": loc.id, "evse_uid": evse.uid})


async def session_stop(request: web.Request) -> web.Response:
    mock = mock_of(request)
    live = mock.live.get(request.match_info["session_id"])
    if live is None:
        return fail("no active session with this id", 404)
    simulator.request_stop(live, "stopped at the charger")
    return reply({"ok": True})


async def session_get(request: web.Request) -> web.Response:
    mock = mock_of(request)
    sid = request.match_info["session_id"]
    session = mock.state.sessions.get(sid)
    if session is None:
        return fail("unknown session", 404)
    cdr = mock.state.cdrs.get(f"CDR-{sid}")
    return reply({"session": session.to_json_dict(), "cdr": cdr.to_json_dict() if cdr else None,
                  "active": sid in mock.live})


async def faults_get(request: web.Request) -> web.Response:
    return reply(mock_of(request).faults.describe())


async def faults_clear(request: web.Request) -> web.Response:
    mock_of(request).faults.clear()
    return reply({"ok": True})


async def fault(request: web.Request) -> web.Response:
    mock = mock_of(request)
    kind = request.match_info["kind"]
    body = await body_of(request)
    f = mock.faults
    count = int(body.get("count", 1))
    try:
        if kind == "power-cut":
            out = await actions.power_cut(mock, str(body.get("location_id")),
                                          float(body.get("duration", 600)),
                                          str(body.get("outcome", "resume")),
                                          str(body.get("status", "UNKNOWN")))
        elif kind == "offline-charger":
            found = mock.state.find_evse_uid(str(body.get("evse", body.get("evse_uid", ""))))
            if found is None:
                return fail("give evse (uid or evse_id) of the charger", 404)
            out = actions.offline_charger(mock, found[0].id, found[1].uid,
                                          float(body.get("cdr_delay", 1800)))
        elif kind == "command":
            mode = str(body.get("mode", "reject"))
            if mode not in COMMAND_MODES:
                return fail(f"mode must be one of {', '.join(COMMAND_MODES)}")
            cmd = body.get("command")
            f.commands.append(CommandFault(mode, str(cmd).upper() if cmd else None, count))
            out = {"commands": [vars(c) for c in f.commands]}
        elif kind == "duplicate-patches":
            key = str(body.get("session_id", "*"))
            f.duplicate_patches[key] = f.duplicate_patches.get(key, 0) + count
            out = {"duplicate_patches": f.duplicate_patches}
        elif kind == "out-of-order-patches":
            key = str(body.get("session_id", "*"))
            f.out_of_order[key] = f.out_of_order.get(key, 0) + count
            out = {"out_of_order": f.out_of_order}
        elif kind == "unknown-session-patch":
            out = await actions.unknown_session_patch(mock, body.get("party_id"))
        elif kind == "duplicate-cdr":
            out = await actions.duplicate_cdr(mock, body.get("session_id"), count)
        elif kind == "slow-emsp":
            f.emsp_delay = float(body.get("delay", 2.0))
            out = {"emsp_delay": f.emsp_delay}
        elif kind == "lost-active-push":
            f.lost_active += count
            out = {"lost_active": f.lost_active}
        elif kind == "slow-mock":
            f.mock_delay = float(body.get("delay", 2.0))
            out = {"mock_delay": f.mock_delay}
        else:
            return fail(f"unknown fault {kind!r}; known: {', '.join(KINDS)}", 404)
    except actions.FaultError as exc:
        return fail(str(exc), 404)
    except (TypeError, ValueError) as exc:
        return fail(f"bad fault parameters: {exc}")
    except NotRegistered as exc:
        return fail(str(exc), 409)
    return reply({"fault": kind, **out})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/health", health)
    r.add_get("/admin/state", state)
    r.add_post("/admin/invite", invite)
    r.add_post("/admin/connect", connect)
    r.add_post("/admin/push", push)
    r.add_post("/admin/next-car", next_car)
    r.add_post("/admin/sessions/start", session_start)
    r.add_post("/admin/sessions/{session_id}/stop", session_stop)
    r.add_get("/admin/sessions/{session_id}", session_get)
    r.add_get("/admin/faults", faults_get)
    r.add_delete("/admin/faults", faults_clear)
    r.add_post("/admin/faults/{kind}", fault)
