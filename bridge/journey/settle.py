"""Settlement of an order against its CDR (or, after a long outage, its last Session).

`journey_settle` is an arq job keyed by the CDR (`job_id=settle:CC:PID:ID`),
so a CDR pushed twice settles once. Every money movement goes to the gateway
under a key derived from the CDR id (the gateway writes the key with the
operation); then one atomic step records the settlement, completes the order
and writes what tells it (the on_update COMPLETED callback and the bill SMS:
the outbox). A worker killed anywhere re-runs the job and repeats nothing: the
gateway answers a repeated key with the first result, and a recorded
settlement, with its callback and SMS, is not recorded again.

After a provisional settlement on the Session (the CDR was late), the CDR's
settlement moves only the difference: more refund, or a top-up request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog

from bridge import metrics
from bridge.crashpoints import crash_point
from bridge.journey.actions import journey
from bridge.journey.common import (
    JourneyDeps,
    NotApplicableNow,
    answer_effect,
    apply,
    tell_effect,
    unsolicited_effect,
    waiting,
)
from bridge.journey.select import bff_of, customer_of
from bridge.mapping.settlement import Payment, PaymentMode, Settlement, settle
from bridge.ocpi.models import CDR, AllowedType, Session, Tariff
from bridge.orders import Event, State
from bridge.store.effects import Effects
from bridge.store.orders import Order, inflight_key

log = structlog.get_logger("bridge.journey.settle")

ENDABLE = {State.ACTIVE, State.INTERRUPTED, State.CONFIRMED, State.RESERVED}


async def order_for(deps: JourneyDeps, cc: str, pid: str, session_id: str | None,
                    authorization_reference: str | None, token_uid: str | None) -> Order | None:
    """The order an OCPI session or CDR belongs to: by session, our reference, or token."""
    if session_id:
        order = await deps.orders.by_session(cc, pid, session_id)
        if order:
            return order
    if authorization_reference:
        order = await deps.orders.by_order_id(authorization_reference)
        if order:
            return order
    if token_uid:
        record = await deps.ocpi.tokens.get("APP_USER", token_uid)
        if record and record.order_id:
            return await deps.orders.by_order_id(record.order_id)
    return None


def payment_of(order: Order) -> Payment:
    p = order.payment
    mode = PaymentMode(p.get("mode", "PREPAID"))
    collected = p.get("status") in ("PAID", "HELD")
    amount = Decimal(p.get("amount", "0")) if collected else Decimal(0)
    if mode is not PaymentMode.POSTPAID and not collected:
        mode = PaymentMode.POSTPAID  # never paid: nothing to refund, bill in full
    return Payment(mode=mode, amount=amount, mandate=bool(p.get("mandate")))


async def _tariff(deps: JourneyDeps, order: Order) -> Tariff | None:
    if order.item is None or not order.item.tariff_id:
        return None
    stored = await deps.ocpi.store.get("tariffs", order.item.cc, order.item.pid, order.item.tariff_id)
    return Tariff.model_validate(stored.data) if stored else None


async def _named_tariffs(deps: JourneyDeps, record: CDR | Session) -> dict[str, Tariff]:
    """The stored tariffs that the record's periods name and a CDR does not carry: a
    session may switch tariffs mid-way (mod_cdrs ChargingPeriod `tariff_id`), and its
    Session's periods name them as its CDR's will."""
    inline = {t.id.lower() for t in record.tariffs or ()} if isinstance(record, CDR) else set()
    out: dict[str, Tariff] = {}
    for tid in dict.fromkeys(p.tariff_id for p in record.charging_periods or () if p.tariff_id):
        if tid is None or tid.lower() in inline:
            continue
        stored = await deps.ocpi.store.get("tariffs", record.country_code, record.party_id, tid)
        if stored is not None:
            out[tid] = Tariff.model_validate(stored.data)
    return out


async def move_money(deps: JourneyDeps, order: Order, s: Settlement) -> dict[str, Any]:
    """Carry out a first settlement `s`: refund, capture and release, or a top-up link."""
    p = order.payment
    key = s.key.lower()
    out: dict[str, Any] = {}
    if s.refund > 0 and p.get("id"):
        out["refund_ref"] = (await deps.gateway.refund(p["id"], s.refund, key=f"{key}:refund")
                             ).reference
    if s.capture > 0 and p.get("id"):
        out["capture_ref"] = (await deps.gateway.capture(p["id"], s.capture, key=f"{key}:capture")
                              ).reference
    if s.release > 0 and p.get("id"):
        out["release_ref"] = (await deps.gateway.release(p["id"], s.release, key=f"{key}:release")
                              ).reference
    if s.top_up > 0:
        link = await deps.gateway.create_link(order.id, s.top_up, s.currency, "PREPAID",
                                              key=f"{key}:top-up")
        out.update(top_up_url=link.url, top_up_payment_id=link.payment_id)
    out.update(refund_now=str(s.refund), top_up_now=str(s.top_up))
    return out


async def adjust_money(deps: JourneyDeps, order: Order, s: Settlement,
                       previous: dict[str, Any]) -> dict[str, Any]:
    """The CDR after a provisional settlement: move only the difference of the two bills.

    A higher bill asks for the difference (a new top-up link); a lower one refunds
    it from what was collected, or lowers the unpaid top-up.
    """
    p = order.payment
    key = s.key.lower()
    before = Decimal(str(previous["final_amount"]))
    delta = s.final_amount - before
    refund = Decimal(str(previous.get("refund", "0")))
    top_up = Decimal(str(previous.get("top_up", "0")))
    out: dict[str, Any] = {
        "capture": previous.get("capture", "0"), "release": previous.get("release", "0"),
        "provisional_key": previous.get("key"), "provisional_final": str(before),
    }
    extra_refund = extra_top_up = Decimal(0)
    if delta > 0:
        extra_top_up = delta
        link = await deps.gateway.create_link(order.id, delta, s.currency, "PREPAID",
                                              key=f"{key}:top-up")
        out.update(top_up_url=link.url, top_up_payment_id=link.payment_id)
    elif delta < 0:
        back = -delta
        unpaid = top_up if previous.get("top_up_status") != "PAID" else Decimal(0)
        lower = min(back, unpaid)
        top_up -= lower
        back -= lower
        if back > 0 and p.get("id") and p.get("status") == "PAID":
            await deps.gateway.refund(p["id"], back, key=f"{key}:refund")
            extra_refund = back
    out.update(refund=str(refund + extra_refund), top_up=str(top_up + extra_top_up),
               refund_now=str(extra_refund), top_up_now=str(extra_top_up))
    out["explanation"] = [*s.explanation, f"provisional bill ₹{before} on the session data; "
                          f"the CDR's bill is ₹{s.final_amount}: "
                          + (f"₹{extra_top_up} more to pay" if extra_top_up else
                             f"₹{extra_refund} refunded" if extra_refund else "no difference")]
    return out


async def settlement_of(deps: JourneyDeps, order: Order, record: CDR | Session, now: datetime
                        ) -> Settlement:
    """What settling `order` on `record` comes to: a function of the order, the record
    and the stored tariffs only, so a settlement run again after a crash (or computed
    by an audit, tests/chaos) comes to the same amounts."""
    assert order.item is not None
    tariff = await _tariff(deps, order)
    # A Session still running is settled on its data so far: up to its last update, not
    # up to "now", so a settlement run again after a crash computes the same amounts
    # (the gateway refuses an idempotency key reused for another amount).
    until = record.last_updated if isinstance(record, Session) else now
    return settle(record, policy=deps.policy, payment=payment_of(order),
                  party=f"{order.item.cc}-{order.item.pid}", time_zone=order.item.time_zone,
                  tariff=tariff if isinstance(record, Session) else None,
                  tariffs=await _named_tariffs(deps, record),
                  location_id=order.item.location_id, customer=customer_of(order),
                  buyer_finder_fee=bff_of(order), now=until)


async def settle_order(deps: JourneyDeps, order: Order, record: CDR | Session, now: datetime
                       ) -> Order | None:
    s = await settlement_of(deps, order, record, now)
    previous = order.settlement if order.settlement and order.settlement.get("provisional") else None
    if order.settlement and order.settlement.get("key", "").lower() == s.key.lower():
        return None  # already settled by this record
    if order.settlement and not previous and order.settlement.get("key", "").lower().startswith(
            "cdr:"):
        return None  # a final settlement exists (e.g. a second CDR id for one session)
    moved = await (adjust_money(deps, order, s, previous) if previous
                   else move_money(deps, order, s))
    crash_point("settle.money_moved")
    await release_local(deps, order, now)

    def record_it(o: Order) -> Order:
        if (o.settlement or {}).get("key", "").lower() == s.key.lower():
            raise AlreadySettled(s.key)  # another run recorded it (and told) meanwhile
        if o.state in ENDABLE:
            o = apply(o, Event.COMPLETED, now, NotApplicableNow, settlement=s.key)
        # "notified": the bill's callback and SMS are written in this same step
        o.settlement = {**s.to_json(), **moved, "notified": True}
        if isinstance(record, CDR):
            o.cdr_id = record.id
        return o

    try:
        _, order = await deps.orders.update(
            order.transaction_id, record_it,
            effects=lambda before, after: tell_settled(
                deps, after, now, start_unanswered=before.state in (State.CONFIRMED,
                                                                     State.RESERVED)))
    except AlreadySettled:
        return None
    crash_point("settle.recorded")
    return order


class AlreadySettled(Exception):
    pass


def tell_settled(deps: JourneyDeps, order: Order, now: datetime,
                 start_unanswered: bool = False) -> Effects:
    """The writes that tell the bill, made in the step that records it (finding 3: they
    were queued before the settlement was marked told, twice after a crash): on_update
    COMPLETED (example 17), the answer to the BAP's stop-charging when there was one,
    else unsolicited with a message id of its own (a charge ended by its target, a power
    cut or an offline charger must not reuse the start's message id); the bill by SMS;
    the order out of the set of orders in flight.

    `start_unanswered`: the order is settled without ever having gone ACTIVE here (its
    Session's ACTIVE push lost and the charge over before a pull), so the driver's
    start-charging, answered on ACTIVE, never was: the bill is its answer."""
    fx = Effects()
    asked = waiting(order, "stop_context") + (
        waiting(order, "start_context") if start_unanswered else [])
    for stop_ctx in asked:  # every stop-charging the BAP sent, each with its message id
        answer_effect(fx, deps, stop_ctx, order, now)
    if not asked:
        unsolicited_effect(fx, deps, order, "on_update", now)
    s = order.settlement or {}
    text = (f"Charging complete: {order.session.get('kwh', '?')} kWh, bill ₹{s.get('final_amount')}"
            f" for ORD-{order.id[:8]}.")
    if Decimal(str(s.get("refund_now", s.get("refund", "0")))):
        text += f" Refund ₹{s.get('refund_now', s.get('refund'))}."
    if Decimal(str(s.get("release", "0"))):
        text += f" Hold released ₹{s['release']}."
    if Decimal(str(s.get("top_up_now", "0"))):
        text += f" Please pay the remaining ₹{s['top_up_now']}: {s.get('top_up_url')}"
    tell_effect(fx, order, "bill", text)
    fx.call("ZREM", inflight_key(order.transaction_id), order.transaction_id)
    return fx


async def release_local(deps: JourneyDeps, order: Order, now: datetime) -> None:
    """What ends with the charge on our side: the token stops authorising, the order
    leaves the watchdog's set, the slot is free. Each is safe to do again."""
    if order.token_uid:
        await deps.ocpi.tokens.set_allowed("APP_USER", order.token_uid, AllowedType.NOT_ALLOWED, now)
    await deps.orders.unmark_active(order.transaction_id)
    if order.item:
        await deps.orders.release_slot(order.item, order.id)


async def journey_settle(ctx: dict[str, Any], cc: str, pid: str, cdr_id: str) -> str:
    deps = journey(ctx)
    now = datetime.now(UTC)
    stored = await deps.ocpi.store.get("cdrs", cc, pid, cdr_id)
    if stored is None:
        return "unknown CDR"
    cdr = CDR.model_validate(stored.data)
    order = await order_for(deps, cc, pid, cdr.session_id, cdr.authorization_reference,
                            cdr.cdr_token.uid)
    if order is None:
        log.info("journey.cdr_without_order", cdr_id=cdr_id, party=f"{cc}-{pid}")
        return "not ours"
    if cdr.credit:
        return await _credit(deps, order, cdr, now)
    if order.state in (State.FAILED, State.CANCELLED, State.EXPIRED):
        # The order ended (and was refunded) before this session: a START that got through
        # after we gave up. Its session was stopped on sight; the energy is not billed.
        log.warning("journey.cdr_after_order_ended", order=order.id, cdr_id=cdr_id,
                    state=order.state.value, kwh=str(cdr.total_energy))
        return "order ended before its session: not billed"
    settled = await settle_order(deps, order, cdr, now)
    if settled is None:
        return "already settled"
    s = settled.settlement or {}
    log.info("journey.settled", order=settled.id, cdr_id=cdr_id, final=s.get("final_amount"),
             refund=s.get("refund"), capture=s.get("capture"), release=s.get("release"),
             top_up=s.get("top_up"), discrepancy=s.get("discrepancy"))
    metrics.count_settlement(s)
    return "settled"


async def _credit(deps: JourneyDeps, order: Order, cdr: CDR, now: datetime) -> str:
    """A credit CDR (§10.4: negative amounts) returns money to the driver once."""
    amount = abs(cdr.total_cost.incl_vat if cdr.total_cost.incl_vat is not None
                 else cdr.total_cost.excl_vat).quantize(Decimal("0.01"))
    p = order.payment
    if p.get("id") and p.get("status") == "PAID" and amount:
        await deps.gateway.refund(p["id"], amount, key=f"credit:{cdr.id}".lower())

    crash_point("settle.money_moved")

    def note(o: Order) -> Order:
        credits = (o.settlement or {}).setdefault("credits", []) if o.settlement else []
        if any(c["id"] == cdr.id for c in credits):
            raise AlreadySettled(cdr.id)  # recorded and told by an earlier run
        credits.append({"id": cdr.id, "amount": str(amount), "reference": cdr.credit_reference_id})
        if o.settlement is None:
            o.settlement = {"credits": credits}
        return o

    def told(_before: Order, after: Order) -> Effects:
        fx = Effects()
        unsolicited_effect(fx, deps, after, "on_status", now)
        return fx

    try:
        _, order = await deps.orders.update(order.transaction_id, note, effects=told)
    except AlreadySettled:
        return "already credited"
    log.info("journey.credit_cdr", order=order.id, cdr_id=cdr.id, amount=str(amount))
    metrics.SETTLEMENTS.labels("credit").inc()
    return "credited"


async def estimate_refund(deps: JourneyDeps, order: Order, now: datetime) -> Decimal | None:
    """What would come back if the session ended now: the settlement of the last Session
    state, computed (not carried out) with the same policy lines as the final bill."""
    if order.item is None or not order.session.get("id"):
        return None
    stored = await deps.ocpi.store.get("sessions", order.item.cc, order.item.pid,
                                       order.session["id"])
    if stored is None:
        return None
    session = Session.model_validate(stored.data)
    try:
        s = settle(session, policy=deps.policy,
                   payment=payment_of(order), party=f"{order.item.cc}-{order.item.pid}",
                   time_zone=order.item.time_zone, tariff=await _tariff(deps, order),
                   tariffs=await _named_tariffs(deps, session),
                   location_id=order.item.location_id, customer=customer_of(order),
                   buyer_finder_fee=bff_of(order), now=now)
    except ValueError:
        return None
    return s.refund + s.release


async def end_on_session_data(deps: JourneyDeps, order: Order, now: datetime) -> str:
    """A long outage: end the order on the last Session state (provisional settlement)."""
    if order.item is None or not order.session.get("id"):
        return "no session"
    stored = await deps.ocpi.store.get("sessions", order.item.cc, order.item.pid, order.session["id"])
    if stored is None:
        return "no session"
    session = Session.model_validate(stored.data)
    settled = await settle_order(deps, order, session, now)
    if settled is None:
        return "already settled"
    metrics.count_settlement(settled.settlement or {})
    return "ended"
