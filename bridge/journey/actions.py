"""Worker jobs that act at the CPO for an order: token push, START/STOP_SESSION,
RESERVE_NOW / CANCEL_RESERVATION, and the timers (command time-out, no-show).

Each job loads the order, does one OCPI call through `bridge.ocpi` and records
the outcome on the order. A call that fails at the transport level is retried
by arq with backoff (`Retry`); after the last try the order fails and the BAP
is told, with a full refund of anything collected.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from arq import Retry

from bridge.crashpoints import crash_point
from bridge.journey.common import JourneyDeps, NotApplicableNow, apply
from bridge.journey.queue import enqueue, job_effect
from bridge.journey.release import release_job
from bridge.ocpi.commands import send_command
from bridge.ocpi.errors import OcpiClientError, OcpiError
from bridge.ocpi.models import (
    AllowedType,
    CommandResponse,
    CommandResponseType,
    CommandType,
    format_datetime,
)
from bridge.ocpi.tokens import push_token
from bridge.orders import Event, State, TransitionError
from bridge.store.credentials import Connection
from bridge.store.effects import Effects
from bridge.store.orders import Order

log = structlog.get_logger("bridge.journey.actions")

MAX_TRIES = 5


def now_utc() -> datetime:
    return datetime.now(UTC)


def journey(ctx: dict[str, Any]) -> JourneyDeps:
    deps = ctx["journey"]
    assert isinstance(deps, JourneyDeps)
    return deps


async def _order_and_conn(deps: JourneyDeps, txn: str) -> tuple[Order, Connection] | None:
    order = await deps.orders.get(txn)
    if order is None or order.item is None:
        log.warning("journey.order_missing", txn=txn)
        return None
    conn = await deps.ocpi.creds.connection_for_party(order.item.cc, order.item.pid)
    if conn is None:
        log.warning("journey.cpo_not_registered", party=f"{order.item.cc}-{order.item.pid}")
        return None
    return order, conn


def _retry_or_raise(ctx: dict[str, Any], exc: Exception) -> None:
    tries = int(ctx.get("job_try", 1))
    if tries < MAX_TRIES:
        raise Retry(defer=min(2 ** tries, 30)) from exc


async def fail_order(deps: JourneyDeps, txn: str, reason: str, now: datetime,
                     code: str = "40006") -> None:
    """The CPO refused or never answered: the order fails, and in the same step the job
    that refunds everything and tells the BAP (an error on_update) and the driver
    (bridge/journey/release.py)."""
    def change(o: Order) -> Order:
        o = apply(o, Event.FAIL, now, NotApplicableNow, reason=reason)
        o.request["failure"] = {"reason": reason, "code": code}
        o.request["ended_at"] = now.isoformat()
        return o

    try:
        await deps.orders.update(txn, change,
                                 effects=lambda _b, after: release_job(Effects(), after))
    except (TransitionError, NotApplicableNow):
        return


async def command_uid(deps: JourneyDeps, order: Order, name: str, now: datetime) -> str:
    """The one OCPI command uid of this order step (`start`, `stop`, `reserve`,
    `cancel_reservation`): made once, noted on the order before the command is
    first sent, and reused by every retry, so the CPO can tell a retry from a
    second command (issue 12, 6)."""
    known = (order.commands.get(name) or {}).get("uid")
    if known:
        return str(known)

    def assign(o: Order) -> Order:
        if not (o.commands.get(name) or {}).get("uid"):
            o.commands[name] = {**(o.commands.get(name) or {}), "uid": uuid.uuid4().hex,
                                "first_try": now.isoformat()}
        return o

    _, after = await deps.orders.update(order.transaction_id, assign)
    return str(after.commands[name]["uid"])


async def command_for(ctx: dict[str, Any], deps: JourneyDeps, order: Order, conn: Connection,
                      ctype: CommandType, body: dict[str, Any], name: str, now: datetime,
                      ) -> tuple[str, CommandResponse] | None:
    """Send the OCPI command of step `name` for `order` and note the CPO's answer as
    `order.commands[name]`; returns the command uid and the CommandResponse.

    The uid is the step's own (`command_uid`): a retry after a time-out, a lost
    answer or a killed worker sends the same command again, not a new one. While
    the CPO cannot be reached the job retries with backoff for
    `journey.command_retry_for` seconds from the first try (arq `Retry`); after
    that, None."""
    assert order.item is not None
    uid = await command_uid(deps, order, name, now)
    crash_point("command.uid_recorded")
    try:
        uid, response = await send_command(deps.ocpi, conn, (order.item.cc, order.item.pid),
                                           ctype, body, order_id=order.id, uid=uid, now=now)
    except OcpiClientError as exc:
        current = await deps.orders.get(order.transaction_id) or order
        first = (current.commands.get(name) or {}).get("first_try") or now.isoformat()
        waited = (now - datetime.fromisoformat(first)).total_seconds()
        if waited < deps.settings.journey_command_retry_for:
            tries = int(ctx.get("job_try", 1))
            log.info("journey.command_retry", command=ctype.value, uid=uid, order=order.id,
                     error=str(exc), waited=round(waited, 1))
            raise Retry(defer=min(2 ** min(tries, 5), 30)) from exc
        return None
    crash_point("command.sent")

    def note(o: Order) -> Order:
        o.commands[name] = {**(o.commands.get(name) or {}), "uid": uid,
                            "result": response.result.value, "timeout": response.timeout,
                            "sent": now.isoformat()}
        return o

    await deps.orders.update(order.transaction_id, note)
    return uid, response


def accepted(response: CommandResponse) -> bool:
    return response.result is CommandResponseType.ACCEPTED


# --------------------------------------------------------------------------- jobs


async def journey_push_token(ctx: dict[str, Any], txn: str) -> str:
    """The order was confirmed: its token may charge from now on (what real-time
    authorization answers) and is pushed to the CPO."""
    deps = journey(ctx)
    order = await deps.orders.get(txn)
    record = await deps.ocpi.tokens.get("APP_USER", order.token_uid or "") if order else None
    if order is None or record is None:
        return "no order or token"
    if order.state in (State.CONFIRMED, State.RESERVED, State.ACTIVE, State.INTERRUPTED) and (
            record.allowed is not AllowedType.ALLOWED):
        await deps.ocpi.tokens.set_allowed("APP_USER", record.token.uid, AllowedType.ALLOWED,
                                           now_utc())
        record = await deps.ocpi.tokens.get("APP_USER", record.token.uid) or record
    found = await _order_and_conn(deps, txn)
    if found is None:
        return "no order or CPO"
    order, conn = found
    try:
        await push_token(deps.ocpi, conn, record.token, (order.item.cc, order.item.pid))  # type: ignore[union-attr]
    except OcpiError as exc:  # the CPO has no tokens receiver: real-time authorization only
        return f"not pushed: {exc}"
    except OcpiClientError as exc:
        _retry_or_raise(ctx, exc)
        return f"not pushed: {exc}"
    return "pushed"


async def journey_start_session(ctx: dict[str, Any], txn: str) -> str:
    deps = journey(ctx)
    now = now_utc()
    found = await _order_and_conn(deps, txn)
    if found is None:
        return "no order or CPO"
    order, conn = found
    item = order.item
    assert item is not None
    if order.state not in (State.CONFIRMED, State.RESERVED):
        return f"order is {order.state.value}"
    record = await deps.ocpi.tokens.get("APP_USER", order.token_uid or "")
    if record is None:
        await fail_order(deps, txn, "the order has no charging token", now)
        return "no token"
    if record.allowed is not AllowedType.ALLOWED:  # the token push may not have run yet
        await deps.ocpi.tokens.set_allowed("APP_USER", record.token.uid, AllowedType.ALLOWED, now)
    body = {"token": record.token.model_dump(mode="json", exclude_none=True),
            "location_id": item.location_id, "evse_uid": item.evse_uid,
            "connector_id": item.connector_id, "authorization_reference": order.id}
    sent = await command_for(ctx, deps, order, conn, CommandType.START_SESSION, body,
                             "start", now)
    if sent is None:
        return await start_failed(deps, txn, "the charger's operator could not be reached",
                                  now_utc())
    uid, response = sent
    if not accepted(response):
        return await start_failed(deps, txn, f"the charger refused to start "
                                             f"({response.result.value})", now_utc())
    wait = timedelta(seconds=response.timeout + deps.settings.journey_command_grace)
    await enqueue(deps.redis, "journey_command_timeout", txn, uid, job_id=f"cmd-timeout:{uid}",
                  defer_until=now + wait)
    return "ACCEPTED"


async def journey_stop_session(ctx: dict[str, Any], txn: str) -> str:
    deps = journey(ctx)
    now = now_utc()
    found = await _order_and_conn(deps, txn)
    if found is None:
        return "no order or CPO"
    order, conn = found
    sid = order.session.get("id")
    if not sid:
        if int(ctx.get("job_try", 1)) < MAX_TRIES:
            raise Retry(defer=2)  # the CPO's Session may not have arrived yet
        return "no session to stop"
    sent = await command_for(ctx, deps, order, conn, CommandType.STOP_SESSION,
                             {"session_id": sid}, "stop", now)
    return sent[1].result.value if sent else "unreachable"


async def journey_reserve_now(ctx: dict[str, Any], txn: str) -> str:
    deps = journey(ctx)
    now = now_utc()
    found = await _order_and_conn(deps, txn)
    if found is None:
        return "no order or CPO"
    order, conn = found
    item = order.item
    assert item is not None and order.slot is not None
    if order.state is not State.RESERVED:
        return f"order is {order.state.value}"
    record = await deps.ocpi.tokens.get("APP_USER", order.token_uid or "")
    if record is None:
        return "no token"
    terms = deps.policy.terms(f"{item.cc}-{item.pid}", item.location_id)
    expiry = datetime.fromisoformat(order.slot["start"]) + timedelta(
        minutes=max(terms.grace_minutes, 5))
    body = {"token": record.token.model_dump(mode="json", exclude_none=True),
            "expiry_date": format_datetime(expiry), "reservation_id": order.reservation_id,
            "location_id": item.location_id, "evse_uid": item.evse_uid,
            "authorization_reference": order.id}
    sent = await command_for(ctx, deps, order, conn, CommandType.RESERVE_NOW, body,
                             "reserve", now)
    if sent is None:
        return "unreachable: the slot stays held in our calendar"
    response = sent[1]
    if not accepted(response):
        await fail_order(deps, txn, f"the charger could not be reserved ({response.result.value})",
                         now)
        return response.result.value
    return "ACCEPTED"


async def journey_cancel_reservation(ctx: dict[str, Any], txn: str) -> str:
    deps = journey(ctx)
    found = await _order_and_conn(deps, txn)
    if found is None:
        return "no order or CPO"
    order, conn = found
    if not order.reservation_id or order.item is None:
        return "no reservation"
    if (order.commands.get("reserve") or {}).get("result") != "ACCEPTED":
        return "never reserved at the CPO"  # cancelled before RESERVE_NOW was due, or refused
    sent = await command_for(ctx, deps, order, conn, CommandType.CANCEL_RESERVATION,
                             {"reservation_id": order.reservation_id}, "cancel_reservation",
                             now_utc())
    return sent[1].result.value if sent else "unreachable"


async def journey_command_timeout(ctx: dict[str, Any], txn: str, uid: str) -> str:
    """The CPO accepted a command but its CommandResult never came (§13: `timeout`)."""
    deps = journey(ctx)
    cmd = await deps.ocpi.tokens.get_command(uid)
    order = await deps.orders.get(txn)
    if cmd is None or order is None or cmd.get("result"):
        return "answered"
    if (order.commands.get("start") or {}).get("uid") != uid:
        return "an earlier attempt"  # a later START attempt is under way
    return await start_failed(deps, txn, "the charger did not confirm the start in time",
                              now_utc())


async def start_failed(deps: JourneyDeps, txn: str, reason: str, now: datetime) -> str:
    """A START_SESSION went wrong (refused, never answered, a FAILED / TIMEOUT result,
    the CPO unreachable): the order fails and is refunded in full - unless the CPO
    has a Session for the order's token or reference after all (a retried START that
    did get through, a result lost in a restart). That is not a failure: the order
    follows the Session (issue 12, 6). The CPO's sender list is asked when the store
    has nothing."""
    from bridge.journey.events import on_session
    from bridge.journey.reconcile import find_session

    order = await deps.orders.get(txn)
    if order is None:
        return "no order"
    if order.state not in (State.CONFIRMED, State.RESERVED):
        return f"order is {order.state.value}"
    if order.session.get("id"):
        return "session exists"
    try:
        session = await find_session(deps, order, pull_too=True)
    except OcpiClientError as exc:
        log.info("journey.start_check_unreachable", order=order.id, error=str(exc))
        session = None
    if session is not None and order.item is not None:
        log.info("journey.start_not_failed", order=order.id, session=session.id, reason=reason)
        await on_session(deps, order.item.cc, order.item.pid, session.id, now)
        return "session exists"
    if await retry_start(deps, order, reason, now):
        return "trying again"
    await fail_order(deps, txn, reason, now)
    return "failed"


async def retry_start(deps: JourneyDeps, order: Order, reason: str, now: datetime) -> bool:
    """One more START_SESSION, a new command (attempt n+1, its own uid), when the last one
    failed with no Session anywhere: a CPO may refuse a start because it could not reach
    us for the real-time authorization (our serve restarting). At most
    `journey.start_attempts` attempts, within `journey.command_retry_for` s of the
    driver's request; the attempt and its job are written in one step."""
    start = order.commands.get("start") or {}
    attempt = int(start.get("attempt", 1))
    asked = datetime.fromisoformat(order.commands.get("start_requested") or now.isoformat())
    if attempt >= deps.settings.journey_start_attempts or (
            now - asked).total_seconds() > deps.settings.journey_command_retry_for:
        return False

    def again(o: Order) -> Order:
        current = o.commands.get("start") or {}
        if int(current.get("attempt", 1)) != attempt or o.state not in (State.CONFIRMED,
                                                                         State.RESERVED):
            raise NotApplicableNow("the start moved on")
        o.commands.setdefault("start_attempts", []).append({**current, "failed": reason})
        o.commands["start"] = {"attempt": attempt + 1}
        return o

    try:
        await deps.orders.update(order.transaction_id, again, effects=lambda _b, after: job_effect(
            Effects(), "journey_start_session", after.transaction_id,
            job_id=f"start:{after.id}:{attempt + 1}",
            # a moment later: what made the CPO refuse (our serve restarting) may pass
            defer_until=now + timedelta(seconds=max(deps.settings.journey_command_grace, 2.0))))
    except NotApplicableNow:
        return True  # another run took care of it
    log.info("journey.start_retry", order=order.id, attempt=attempt + 1, reason=reason)
    return True


async def journey_start_failed(ctx: dict[str, Any], txn: str, uid: str, result: str) -> str:
    """A START_SESSION's CommandResult said it failed: decide (see `start_failed`) a moment
    later, when a Session the CPO started all the same has had time to arrive."""
    deps = journey(ctx)
    order = await deps.orders.get(txn)
    if order is not None and (order.commands.get("start") or {}).get("uid") != uid:
        return "an earlier attempt"
    return await start_failed(deps, txn, f"the charger could not start ({result})", now_utc())


async def journey_no_show(ctx: dict[str, Any], txn: str) -> str:
    """The grace period is over and the car never plugged in: the order expires, and in
    the same step the job that gives back what the terms say and frees the charger."""
    deps = journey(ctx)
    now = now_utc()
    order = await deps.orders.get(txn)
    if order is None or order.state not in (State.RESERVED, State.CONFIRMED) or order.session.get(
            "id"):
        return "nothing to do"

    def expire(o: Order) -> Order:
        o = apply(o, Event.EXPIRE, now, NotApplicableNow, reason="no-show")
        o.request["ended_at"] = now.isoformat()
        return o

    try:
        await deps.orders.update(txn, expire,
                                 effects=lambda _b, after: release_job(Effects(), after))
    except NotApplicableNow:
        return "state changed"
    return "expired"
