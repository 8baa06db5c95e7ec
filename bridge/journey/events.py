"""The worker side of a charge: what the CPO's OCPI changes mean for the orders.

A consumer group (`journey`) reads the OCPI change stream (`obb:ocpi:events`):

- Session PUT/PATCH: the order follows it. The first ACTIVE answers the
  driver's start (`on_update` ACTIVE, example 12); updates after an
  interruption resume it (`on_status` ACTIVE); each update may go to the
  BAP's tracking callback (example 14, at most once per interval); a session
  that reaches the quoted energy or budget is stopped (STOP_SESSION).
- EVSE status UNKNOWN / OUTOFORDER / INOPERATIVE under an active order:
  `on_status` CONNECTION-INTERRUPTED (example 16) with the estimated refund.
- CDR POST: the settlement job, keyed by the CDR.
- CommandResult: a refused START_SESSION / RESERVE_NOW fails the order.

A watchdog (every `journey.watchdog_every` s) marks orders interrupted whose
session has been silent for `journey.interrupt_after` s and ends them on the
data so far after `journey.outage_end_after` s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from redis.exceptions import ResponseError

from bridge.crashpoints import crash_point
from bridge.journey.actions import fail_order, journey
from bridge.journey.common import (
    JourneyDeps,
    NotApplicableNow,
    answer_effect,
    apply,
    tell_effect,
    unsolicited_effect,
    waiting,
)
from bridge.journey.queue import enqueue, job_effect
from bridge.journey.settle import end_on_session_data, estimate_refund, order_for
from bridge.ocpi.models import Session, SessionStatus
from bridge.orders import TERMINAL, Event, State
from bridge.store import keys, shards
from bridge.store.effects import Effects
from bridge.store.orders import Order, inflight_key

log = structlog.get_logger("bridge.journey.events")

GROUP = "journey"
DOWN = {"UNKNOWN", "OUTOFORDER", "INOPERATIVE"}
FAILED_RESULTS = {"REJECTED", "FAILED", "EVSE_OCCUPIED", "EVSE_INOPERATIVE", "NOT_SUPPORTED",
                  "TIMEOUT", "UNKNOWN_RESERVATION"}


def eta_seconds(order: Order, session: Session, target_kwh: Decimal) -> float | None:
    """Wall-clock seconds until `target_kwh` at the pace of the last two reports, when the
    target falls before the next report (else None: the next report will tell)."""
    snap = order.session
    if not snap.get("prev_seen") or snap.get("prev_kwh") is None:
        return None
    gap = (datetime.fromisoformat(snap["seen"]) - datetime.fromisoformat(snap["prev_seen"])
           ).total_seconds()
    delivered = session.kwh - Decimal(snap["prev_kwh"])
    if gap <= 0 or delivered <= 0:
        return None
    eta = float((target_kwh - session.kwh) / delivered) * gap
    return max(eta, 0.0) if eta <= gap else None


def evse_key(cc: str, pid: str, uid: str) -> str:
    return f"obb:order:evse:{cc.upper()}:{pid.upper()}:{uid.lower()}"


# --------------------------------------------------------------------------- sessions


def session_snapshot(session: Session) -> dict[str, Any]:
    cost = session.total_cost
    return {
        "id": session.id, "status": session.status.value, "kwh": str(session.kwh),
        "cost": str(cost.incl_vat if cost and cost.incl_vat is not None
                    else (cost.excl_vat if cost else 0)),
        "start": session.start_date_time.isoformat(), "currency": session.currency,
        "last_updated": session.last_updated.isoformat(),
        "periods": len(session.charging_periods or []),
        **_last_readings(session),
    }


def _last_readings(session: Session) -> dict[str, str]:
    """The last charging period's POWER (kW) and STATE_OF_CHARGE (%), when reported (the
    guide's on_track shows them: current-power, battery-level)."""
    out: dict[str, str] = {}
    for period in reversed(session.charging_periods or []):
        for d in period.dimensions:
            key = {"POWER": "power_kw", "STATE_OF_CHARGE": "soc"}.get(str(d.type.value))
            if key and key not in out:
                out[key] = str(d.volume)
        if out:
            break
    return out


async def on_session(deps: JourneyDeps, cc: str, pid: str, sid: str, now: datetime) -> str:
    stored = await deps.ocpi.store.get("sessions", cc, pid, sid)
    if stored is None:
        return "gone"
    session = Session.model_validate(stored.data)
    order = await order_for(deps, cc, pid, sid, session.authorization_reference,
                            session.cdr_token.uid)
    if order is None:
        return "not ours"
    before_state = order.state

    def follow(o: Order) -> Order:
        previous = o.session
        o.session = session_snapshot(session)
        o.session["seen"] = now.isoformat()
        if previous.get("kwh") is not None and previous.get("kwh") != o.session["kwh"]:
            o.session["prev_kwh"], o.session["prev_seen"] = previous["kwh"], previous.get("seen")
        else:
            o.session["prev_kwh"] = previous.get("prev_kwh")
            o.session["prev_seen"] = previous.get("prev_seen")
        if session.status is SessionStatus.ACTIVE and o.state in (
                State.CONFIRMED, State.RESERVED, State.INTERRUPTED):
            o = apply(o, Event.SESSION_ACTIVE, now, NotApplicableNow, session=session.id)
            o.interrupted_since = None
        return o

    def told(before: Order, after: Order) -> Effects:
        """Written with the change: the start's answer or the resumption, and the order
        followed until it ends (pulled from the CPO if its pushes stop)."""
        fx = Effects()
        if after.state is State.ACTIVE and before.state in (State.CONFIRMED, State.RESERVED):
            start_effects(fx, deps, after, now)
        elif after.state is State.ACTIVE and before.state is State.INTERRUPTED:
            unsolicited_effect(fx, deps, after, "on_status", now)
            tell_effect(fx, after, "info", "Charging has resumed.")
        if after.state not in TERMINAL and session.status is SessionStatus.ACTIVE:
            fx.call("ZADD", inflight_key(after.transaction_id), "NX", int(
                (now.timestamp() + deps.settings.journey_reconcile_after) * 1000),
                after.transaction_id)
        return fx

    try:
        _, order = await deps.orders.update(order.transaction_id, follow, effects=told)
    except NotApplicableNow:
        return "ignored"
    if order.item and session.status is SessionStatus.ACTIVE:
        await deps.orders.mark_active(order.transaction_id, now)
        await deps.redis.set(evse_key(order.item.cc, order.item.pid, order.item.evse_uid),
                             order.transaction_id, ex=7 * 86400)
    if session.status in (SessionStatus.COMPLETED, SessionStatus.INVALID):
        await deps.orders.unmark_active(order.transaction_id)
    if order.state in (State.FAILED, State.CANCELLED, State.EXPIRED) and session.status in (
            SessionStatus.ACTIVE, SessionStatus.PENDING):
        # A session for an order that already ended and was refunded (a START that got
        # through after we gave up on the CPO): stop it at once.
        log.warning("journey.session_after_end", order=order.id, session=session.id,
                    state=order.state.value)
        await enqueue(deps.redis, "journey_stop_session", order.transaction_id,
                      job_id=f"stop:{order.id}")
        return "stopping"
    await maybe_track(deps, order, now)
    await maybe_stop_at_target(deps, order, session)
    return f"{before_state.value}->{order.state.value}"


def start_effects(fx: Effects, deps: JourneyDeps, order: Order, now: datetime) -> None:
    """on_update ACTIVE as the answer to the driver's start-charging update, and the SMS."""
    asked = waiting(order, "start_context") or waiting(order, "update_context")
    for start_ctx in asked:  # every start-charging the BAP sent, each with its message id
        answer_effect(fx, deps, start_ctx, order, now)
    if not asked:  # started at the charger (RFID) or by the CPO: tell the BAP all the same
        unsolicited_effect(fx, deps, order, "on_update", now)
    tell_effect(fx, order, "info",
                f"Charging started at {order.item.evse_id if order.item else ''}.")


async def maybe_track(deps: JourneyDeps, order: Order, now: datetime) -> None:
    cb = order.track.get("callback")
    if not cb:
        return
    interval = max(float(order.track.get("interval") or deps.settings.journey_track_interval), 0.1)
    bucket = int(now.timestamp() / interval)
    # One job per order and interval: the job id makes repeats within it no-ops.
    await enqueue(deps.redis, "journey_track_push", order.transaction_id,
                  job_id=f"track:{order.id}:{bucket}")


async def maybe_stop_at_target(deps: JourneyDeps, order: Order, session: Session) -> None:
    """Stop when the session reaches what was bought (energy, or the budget's energy/charge)."""
    if order.state is not State.ACTIVE or order.commands.get("stop_requested") or not order.quote:
        return
    target_kwh = Decimal(str(order.quote.get("energy_kwh") or 0))
    charge = sum((Decimal(str(ln["amount"])) for ln in order.quote.get("lines", [])
                  if ln["kind"] == "charge"), Decimal(0))
    cost = Decimal(order.session.get("cost") or 0)
    minutes = order.request.get("minutes")
    over_time = False
    if minutes:
        over_time = (session.last_updated - session.start_date_time) >= timedelta(
            minutes=float(minutes))
    reached = bool((target_kwh and session.kwh >= target_kwh) or (
        order.request.get("budget") and charge and cost >= charge) or over_time)
    if not reached and target_kwh:
        # Chargers report every minute or so; stopping only once the target is passed
        # overshoots by up to one report. Stop when the next report would pass it.
        eta = eta_seconds(order, session, target_kwh)
        if eta is not None:
            await enqueue(deps.redis, "journey_stop_session", order.transaction_id,
                          job_id=f"stop:{order.id}",
                          defer_until=datetime.now(UTC) + timedelta(seconds=eta))
        return
    if reached:
        def stop(o: Order) -> Order:
            o = apply(o, Event.STOP, datetime.now(UTC), NotApplicableNow, reason="target reached")
            o.commands["stop_requested"] = datetime.now(UTC).isoformat()
            return o

        try:
            await deps.orders.update(order.transaction_id, stop, effects=lambda _b, after: job_effect(
                Effects(), "journey_stop_session", after.transaction_id, job_id=f"stop:{after.id}"))
        except NotApplicableNow:
            return


# --------------------------------------------------------------------------- EVSE status


async def on_evse_status(deps: JourneyDeps, cc: str, pid: str, uid: str, status: str,
                         now: datetime) -> str:
    if status not in DOWN:
        return "up"
    txn = await deps.redis.get(evse_key(cc, pid, uid))
    if not txn:
        return "no order"
    return await interrupt(deps, txn.decode(), now, f"charger status {status}")


async def interrupt(deps: JourneyDeps, txn: str, now: datetime, why: str) -> str:
    """INTERRUPTED, with its on_status CONNECTION-INTERRUPTED (example 16) carrying the
    estimated refund, and the SMS, in one step."""
    current = await deps.orders.get(txn)
    if current is None or current.state is not State.ACTIVE:
        return "not active"
    estimate = await estimate_refund(deps, current, now)
    if estimate is None:  # no session data to price: what was paid less the cost so far
        paid = Decimal(current.payment.get("amount", "0")) if current.payment.get("status") in (
            "PAID", "HELD") else Decimal(0)
        estimate = max(paid - Decimal(current.session.get("cost") or 0), Decimal(0))
    estimate = estimate.quantize(Decimal("0.01"))
    extra = {"interruption": {"reason": why, "since": now.isoformat(),
                              "estimated-refund": {"currency": "INR", "value": float(estimate)},
                              "note": "If charging does not resume, you pay only for the energy "
                                      "delivered; the rest is refunded automatically."}}

    def change(o: Order) -> Order:
        if o.state is not State.ACTIVE:
            raise NotApplicableNow("not active")
        o = apply(o, Event.INTERRUPTED, now, NotApplicableNow, reason=why)
        o.interrupted_since = now
        return o

    def told(_before: Order, after: Order) -> Effects:
        fx = Effects()
        unsolicited_effect(fx, deps, after, "on_status", now, extra=extra)
        tell_effect(fx, after, "info", f"Charging interrupted ({why}). If it does not resume "
                                       f"you will be refunded about ₹{estimate}.")
        return fx

    try:
        await deps.orders.update(txn, change, effects=told)
    except NotApplicableNow:
        return "not active"
    return "interrupted"


# --------------------------------------------------------------------------- command results


async def on_command_result(deps: JourneyDeps, fields: dict[str, str], now: datetime) -> str:
    order_id, command, result = fields.get("order"), fields.get("command"), fields.get("result")
    if not order_id:
        return "no order"
    order = await deps.orders.by_order_id(order_id)
    if order is None:
        return "no order"

    def note(o: Order) -> Order:
        o.commands.setdefault("results", []).append(
            {"command": command, "result": result, "at": now.isoformat()})
        return o

    uid = fields.get("id", "")
    start_failed = result in FAILED_RESULTS and command == "START_SESSION"

    def check_later(_before: Order, after: Order) -> Effects | None:
        # Not at once: a FAILED / TIMEOUT result may come while the CPO has a Session for
        # this token all the same (issue 12, 6); the check waits for its push a moment.
        if not start_failed:
            return None
        return job_effect(Effects(), "journey_start_failed", after.transaction_id, uid,
                          result or "", job_id=f"start-failed:{uid}",
                          defer_until=now + timedelta(seconds=deps.settings.journey_command_grace))

    _, order = await deps.orders.update(order.transaction_id, note, effects=check_later)
    if start_failed:
        return "start failure to check"
    if result in FAILED_RESULTS and command == "RESERVE_NOW":
        if order.session.get("id"):
            return "session exists"
        await fail_order(deps, order.transaction_id,
                         f"the charger could not reserve ({result})", now)
        return "failed"
    return "noted"


# --------------------------------------------------------------------------- consumer


async def handle_event(deps: JourneyDeps, fields: dict[str, str], now: datetime) -> str:
    module, op = fields.get("module"), fields.get("op")
    cc, pid, oid = fields.get("cc", ""), fields.get("pid", ""), fields.get("id", "")
    if module == "sessions" and op in ("put", "patch"):
        return await on_session(deps, cc, pid, oid, now)
    if module == "locations" and fields.get("evse_uid") and fields.get("status"):
        return await on_evse_status(deps, cc, pid, fields["evse_uid"], fields["status"], now)
    if module == "cdrs" and op == "put":
        await enqueue(deps.redis, "journey_settle", cc, pid, oid,
                      job_id=f"settle:{cc}:{pid}:{oid}".lower())
        return "settlement queued"
    if module == "commands" and op == "result":
        return await on_command_result(deps, fields, now)
    return "skip"


def coalesce(batch: list[dict[str, str]]) -> list[dict[str, str]]:
    """Keep the order of events, but of several updates of one session only the last:
    `on_session` re-reads the stored session, so the earlier ones add nothing (a busy
    CPO sends meter PATCHes faster than orders need them)."""
    last: dict[tuple[str, str, str], int] = {}
    for i, f in enumerate(batch):
        if f.get("module") == "sessions":
            last[(f.get("cc", ""), f.get("pid", ""), f.get("id", ""))] = i
    return [f for i, f in enumerate(batch)
            if f.get("module") != "sessions"
            or last[(f.get("cc", ""), f.get("pid", ""), f.get("id", ""))] == i]


async def recover(deps: JourneyDeps, now: datetime, days: int = 7) -> int:
    """After missed change events: follow every active order's session again and queue
    the settlement of every recent CDR (settled ones are skipped: keyed by the CDR)."""
    for txn in await deps.orders.silent_since(now + timedelta(days=1)):
        order = await deps.orders.get(txn)
        if order and order.item and order.session.get("id"):
            await on_session(deps, order.item.cc, order.item.pid, order.session["id"], now)
    since = int((now - timedelta(days=days)).timestamp() * 1000)
    refs = [ref for shard in shards.current().shards
            for ref in await deps.redis.zrangebyscore(keys.module_index("cdrs", shard), since,
                                                      "+inf")]
    for ref in refs:
        cc, pid, cid = ref.decode().split(":", 2)
        await enqueue(deps.redis, "journey_settle", cc, pid, cid,
                      job_id=f"settle:{cc}:{pid}:{cid}".lower())
    return len(refs)


async def consume_all(deps: JourneyDeps, consumer: str, stop: asyncio.Event,
                      claim_idle_ms: int = 60_000) -> None:
    """`consume` every shard's change stream (docs/scaling.md), each started again after
    any error."""
    from bridge.worker import keep_running

    def one(shard: int) -> Any:
        return keep_running(f"journey-consumer-{shard}", lambda: consume(
            deps, consumer, stop, claim_idle_ms=claim_idle_ms, shard=shard))

    await asyncio.gather(*(one(s) for s in shards.current().shards))


async def consume(deps: JourneyDeps, consumer: str, stop: asyncio.Event,
                  block_ms: int = 500, claim_idle_ms: int = 60_000, shard: int = 0) -> None:
    """Read a shard's change stream in the `journey` group until `stop`.

    A worker's own unacknowledged entries are re-read when it restarts; entries a
    dead worker (another consumer name) left unacknowledged are claimed once they
    have been idle for `claim_idle_ms`, so no change is lost with a worker."""
    from bridge.beckn.catalog_consumer import fell_behind

    redis = deps.redis
    stream = keys.events(shard)
    with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
        await redis.xgroup_create(stream, GROUP, id="$", mkstream=True)
    if await fell_behind(redis, GROUP, shard):
        log.error("journey.fell_behind", note="OCPI changes were trimmed unread: recovering")
        await redis.xgroup_setid(stream, GROUP, id="$")
        await recover(deps, datetime.now(UTC))
    pending_first = True
    claim_from = "0-0"
    # what dead workers left is looked for every half claim_idle_ms, not only when the
    # stream is quiet: with a CPO's meter PATCHes arriving all the time it never is
    claim_every = max(claim_idle_ms, 100) / 2000
    next_claim = time.monotonic()
    while not stop.is_set():
        # After a crash, first take back what this consumer read but never acknowledged.
        stream_id = "0" if pending_first else ">"
        try:
            batch = await redis.xreadgroup(GROUP, consumer, {stream: stream_id}, count=100,
                                           block=None if pending_first else block_ms)
            entries = batch[0][1] if batch else []
            if pending_first and not entries:
                pending_first = False
                continue
            if not entries or time.monotonic() >= next_claim:
                next_claim = time.monotonic() + claim_every
                claimed = await redis.xautoclaim(stream, GROUP, consumer, claim_idle_ms,
                                                 start_id=claim_from, count=100)
                nxt = claimed[0]
                claim_from = nxt.decode() if isinstance(nxt, bytes) else str(nxt)
                entries = [*entries, *(e for e in claimed[1] if e and e[1])]
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("journey.consume_failed")
            await asyncio.sleep(1)
            continue
        for fields in coalesce([{k.decode(): v.decode() for k, v in raw.items()}
                                for _id, raw in entries]):
            try:
                outcome = await handle_event(deps, fields, datetime.now(UTC))
                log.debug("journey.event", module=fields.get("module"), outcome=outcome)
            except Exception:
                log.exception("journey.event_failed", fields=fields)
        if entries:
            crash_point("journey.event_handled")  # handled, not acknowledged: read again
            await redis.xack(stream, GROUP, *[entry_id for entry_id, _ in entries])


async def watchdog_once(deps: JourneyDeps, now: datetime) -> list[str]:
    s = deps.settings
    out = []
    for txn in await deps.orders.silent_since(now - timedelta(seconds=s.journey_interrupt_after)):
        order = await deps.orders.get(txn)
        if order is None or order.state not in (State.ACTIVE, State.INTERRUPTED):
            await deps.orders.unmark_active(txn)
            continue
        if order.state is State.ACTIVE:
            newer = await _unread_session(deps, order)
            if newer is not None:
                # The CPO was not silent: this worker has not read its pushes yet (it was
                # restarted, or is behind on the change stream). Follow them; an
                # interruption told now would be followed by "resumed" in a moment.
                out.append(await on_session(deps, newer[0], newer[1], newer[2], now))
                continue
            out.append(await interrupt(deps, txn, now, "no updates from the charger"))
        elif order.interrupted_since and now - order.interrupted_since >= timedelta(
                seconds=s.journey_outage_end_after):
            await enqueue(deps.redis, "journey_stop_session", txn, job_id=f"stop:{order.id}")
            out.append(await end_on_session_data(deps, order, now))
    return out


async def _unread_session(deps: JourneyDeps, order: Order) -> tuple[str, str, str] | None:
    """(cc, pid, session id) when the store holds a newer state of the order's Session
    than the order has followed, i.e. a push arrived that the journey has not handled."""
    sid, seen = order.session.get("id"), order.session.get("last_updated")
    if order.item is None or not sid or not seen:
        return None
    stored = await deps.ocpi.store.get("sessions", order.item.cc, order.item.pid, sid)
    if stored is None or stored.lu_ms <= int(
            datetime.fromisoformat(seen).timestamp() * 1000):
        return None
    return order.item.cc, order.item.pid, sid


async def watchdog(deps: JourneyDeps, stop: asyncio.Event) -> None:
    from bridge.journey.reconcile import reconcile_once

    while not stop.is_set():
        try:
            await watchdog_once(deps, datetime.now(UTC))
            await reconcile_once(deps, datetime.now(UTC))  # pushes overdue: pull
        except Exception:
            log.exception("journey.watchdog_failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), deps.settings.journey_watchdog_every)


async def journey_track_push(ctx: dict[str, Any], txn: str) -> str:
    """PATCH the session to the BAP's tracking callback (example 14), signed like a callback."""
    import aiohttp
    import orjson

    from bridge.journey.common import profile_of
    from bridge.journey.wire import track_patch

    deps = journey(ctx)
    order = await deps.orders.get(txn)
    if order is None or not order.track.get("callback") or order.item is None:
        return "no subscription"
    stored = await deps.ocpi.store.get("sessions", order.item.cc, order.item.pid,
                                       order.session.get("id", ""))
    if stored is None:
        return "no session"
    body = orjson.dumps(track_patch(profile_of(deps, order), order, stored.data, datetime.now(UTC)))
    headers = {"Content-Type": "application/json"}
    signer = deps.signer()
    if signer is not None:
        headers["Authorization"] = signer.header(body, time.time())
    try:
        async with deps.ocpi.http().patch(order.track["callback"], data=body, headers=headers,
                                          timeout=aiohttp.ClientTimeout(total=5)) as resp:
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.info("journey.track_push_failed", order=order.id, error=str(exc))
        return "failed"

    def sent(o: Order) -> Order:
        o.track["last_sent"] = datetime.now(UTC).isoformat()
        o.track["sent"] = int(o.track.get("sent", 0)) + 1
        return o

    await deps.orders.update(txn, sent)
    return f"HTTP {status}"
