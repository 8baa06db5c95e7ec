"""Settlement: from "what was paid or held" and "what the CDR says" to money movements.

`settle()` builds the final bill with the same `quote()` as the estimate, but
on the real usage (so offers, surcharges and the service fee follow the final
energy, not the quoted one) and on the CPO's charges: the CDR's `total_cost`
(the CPO's legal record) unless policy makes the engine the winner. The CDR is
also priced by the tariff engine; a difference of more than the policy's
tolerance (default one minor unit) is returned as a `discrepancy` and logged
with both figures.

Payment modes (the seed's under- and overcharge scenarios):

- PREPAID: the amount was captured. Final below it -> `refund` the rest;
  above it -> `capture` the difference through a mandate if there is one,
  else a `top_up` request.
- HOLD (authorisation hold / UPI mandate): `capture` the final amount up to
  the hold and `release` the rest; above the hold -> capture through the
  mandate, else a `top_up` request for the difference.
- POSTPAID: nothing collected yet: `capture` through a mandate, else `top_up`
  (a payment request) for the final amount.

A settlement is keyed by the CDR (`key`) and is a pure function of its inputs,
so applying it twice is the caller's idempotent store of that key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

import structlog

from bridge.mapping.money import HUNDRED, ZERO, decimal_to_json, minor_unit
from bridge.mapping.policy import DiscrepancyWinner, PricingPolicy, RefundTerm
from bridge.mapping.projection import Usage
from bridge.mapping.quote import BuyerFinderFee, Charges, Customer, Quote, QuoteLine, money_text, quote
from bridge.mapping.tariff import TariffError, TariffResult, price_cdr, price_session
from bridge.ocpi.models import CDR, Session, Tariff

__all__ = [
    "Discrepancy",
    "Payment",
    "PaymentMode",
    "Settlement",
    "cancellation_refund",
    "settle",
]

log = structlog.get_logger(__name__)


class PaymentMode(StrEnum):
    PREPAID = "PREPAID"
    HOLD = "HOLD"
    POSTPAID = "POSTPAID"


@dataclass(frozen=True, slots=True)
class Payment:
    """What the buyer paid (PREPAID), has on hold (HOLD) or nothing yet (POSTPAID)."""

    mode: PaymentMode
    amount: Decimal = ZERO
    mandate: bool = False  # a UPI mandate / stored instrument may be debited for more


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """The CDR's total and the engine's price of the same CDR differ."""

    cdr_total: Decimal
    engine_total: Decimal
    difference: Decimal  # cdr - engine
    basis: str  # "incl_vat" or "excl_vat"
    winner: DiscrepancyWinner

    def to_json(self) -> dict[str, Any]:
        return {
            "cdr_total": decimal_to_json(self.cdr_total),
            "engine_total": decimal_to_json(self.engine_total),
            "difference": decimal_to_json(self.difference),
            "basis": self.basis,
            "winner": self.winner.value,
        }


@dataclass(frozen=True, slots=True)
class Settlement:
    key: str  # "cdr:IN:TPC:<id>" (or "session:..." when settled on the last session state)
    currency: str
    final_amount: Decimal
    paid: Decimal  # captured (PREPAID) or held (HOLD) before settlement
    refund: Decimal
    capture: Decimal
    release: Decimal
    top_up: Decimal
    lines: tuple[QuoteLine, ...]  # the final bill
    explanation: tuple[str, ...]
    discrepancy: Discrepancy | None
    provisional: bool  # settled on a Session because the CDR is late
    final: Quote
    quoted_total: Decimal | None = None
    engine: TariffResult | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "currency": self.currency,
            "final_amount": decimal_to_json(self.final_amount),
            "paid": decimal_to_json(self.paid),
            "refund": decimal_to_json(self.refund),
            "capture": decimal_to_json(self.capture),
            "release": decimal_to_json(self.release),
            "top_up": decimal_to_json(self.top_up),
            "lines": [ln.to_json() for ln in self.lines],
            "explanation": list(self.explanation),
            "discrepancy": None if self.discrepancy is None else self.discrepancy.to_json(),
            "provisional": self.provisional,
            "quoted_total": None if self.quoted_total is None else decimal_to_json(self.quoted_total),
        }


def settle(
    record: CDR | Session,
    *,
    policy: PricingPolicy,
    payment: Payment,
    party: str,
    time_zone: str,
    tariff: Tariff | None = None,
    tariffs: Mapping[str, Tariff] | None = None,
    location_id: str | None = None,
    customer: Customer | None = None,
    buyer_finder_fee: BuyerFinderFee | None = None,
    quoted: Quote | None = None,
    now: datetime | None = None,
) -> Settlement:
    """Settle a finished session from its CDR (or, provisionally, its last Session state).

    `tariff` is the tariff to check the CDR against (default: the tariffs its
    periods name, found in `tariffs` by id, e.g. the store's, then in the CDR's
    own `tariffs`: a CDR that switched tariffs is priced period by period);
    `now` is only needed for an ACTIVE session without an end.
    """
    if isinstance(record, CDR):
        key = f"cdr:{record.country_code}:{record.party_id}:{record.id}".upper()
        usage = Usage.from_cdr(record)
        reported: Charges | None = Charges.from_cdr(record)
        reported_basis = "incl_vat" if record.total_cost.incl_vat is not None else "excl_vat"
        engine = _engine_cdr(record, tariff, tariffs, time_zone)
        location_id = location_id or record.cdr_location.id
        provisional = False
    else:
        key = f"session:{record.country_code}:{record.party_id}:{record.id}".upper()
        end = record.end_date_time or now
        if end is None:
            raise ValueError("settling an unfinished session needs `now`")
        usage = Usage.from_session(record, end)
        reported = None
        reported_basis = "incl_vat"
        if record.total_cost is not None:
            total = record.total_cost
            reported = Charges(currency=record.currency.upper(),
                               total=total.incl_vat if total.incl_vat is not None else total.excl_vat,
                               energy_kwh=record.kwh, source="cdr")
            reported_basis = "incl_vat" if total.incl_vat is not None else "excl_vat"
        engine = _engine_session(record, tariff, tariffs, time_zone, end)
        location_id = location_id or record.location_id
        provisional = True

    if reported is None and engine is None:
        raise ValueError(f"{key}: no total_cost and no tariff: nothing to settle on")
    discrepancy = _discrepancy(key, reported, reported_basis, engine, policy)
    if reported is None or (discrepancy is not None and discrepancy.winner is DiscrepancyWinner.ENGINE):
        assert engine is not None
        charges = Charges.from_result(engine)
    else:
        charges = reported
    final = quote(None, usage, policy, party=party, time_zone=time_zone, location_id=location_id,
                  customer=customer, buyer_finder_fee=buyer_finder_fee, charges=charges)
    return _payments(key, final, payment, discrepancy, provisional, quoted, engine)


def _engine_cdr(cdr: CDR, tariff: Tariff | None, tariffs: Mapping[str, Tariff] | None,
                time_zone: str) -> TariffResult | None:
    try:
        return price_cdr(cdr, time_zone, tariff=tariff, tariffs=tariffs)
    except TariffError as exc:
        log.warning("settlement.engine_cannot_price", cdr_id=cdr.id, reason=str(exc))
        return None


def _engine_session(session: Session, tariff: Tariff | None, tariffs: Mapping[str, Tariff] | None,
                    time_zone: str, end: datetime) -> TariffResult | None:
    """The engine's price of a Session: with `tariff` (or the one of `tariffs` its first
    named period names), each period priced with the tariff it names when `tariffs` are
    given (a Session may switch tariffs as its CDR will). A period naming a tariff found
    nowhere: the engine cannot price it (as for a CDR), rather than price it with another."""
    named = [p.tariff_id for p in session.charging_periods or () if p.tariff_id]
    if tariff is None and tariffs and named:
        by_id = {k.lower(): t for k, t in tariffs.items()}
        tariff = by_id.get(named[0].lower())
    if tariff is None:
        return None
    try:
        return price_session(session, tariff, time_zone, end, tariffs=tariffs)
    except TariffError as exc:
        log.warning("settlement.engine_cannot_price", session_id=session.id, reason=str(exc))
        return None


def _discrepancy(
    key: str, reported: Charges | None, basis: str, engine: TariffResult | None, policy: PricingPolicy
) -> Discrepancy | None:
    if reported is None or engine is None:
        return None
    engine_total = getattr(engine.total_cost, basis)
    diff = reported.total - engine_total
    tolerance = minor_unit(reported.currency) * policy.discrepancy_tolerance_minor_units
    if abs(diff) <= tolerance:
        return None
    log.warning(
        "settlement.discrepancy", key=key, cdr_total=str(reported.total), engine_total=str(engine_total),
        difference=str(diff), basis=basis, winner=policy.discrepancy_winner.value,
    )
    return Discrepancy(reported.total, engine_total, diff, basis, policy.discrepancy_winner)


def _payments(
    key: str, final: Quote, payment: Payment, discrepancy: Discrepancy | None, provisional: bool,
    quoted: Quote | None, engine: TariffResult | None,
) -> Settlement:
    cur = final.currency
    amount = final.total
    paid = payment.amount
    refund = capture = release = top_up = ZERO
    says = [f"final bill {money_text(amount, cur)}"]
    if payment.mode is PaymentMode.PREPAID:
        says.append(f"prepaid {money_text(paid, cur)}")
        if amount <= paid:
            refund = paid - amount
        elif payment.mandate:
            capture = amount - paid
        else:
            top_up = amount - paid
    elif payment.mode is PaymentMode.HOLD:
        says.append(f"held {money_text(paid, cur)}")
        if amount <= paid:
            capture, release = amount, paid - amount
        elif payment.mandate:
            capture = amount
        else:
            capture, top_up = paid, amount - paid
    else:
        if payment.mandate:
            capture = amount
        else:
            top_up = amount
    for label, value in (("refund", refund), ("capture", capture), ("release", release),
                         ("top-up request", top_up)):
        if value:
            says.append(f"{label} {money_text(value, cur)}")
    if quoted is not None and quoted.total != amount:
        says.append(f"quoted {money_text(quoted.total, cur)}")
    if discrepancy is not None:
        cdr_text = money_text(discrepancy.cdr_total, cur)
        engine_text = money_text(discrepancy.engine_total, cur)
        says.append(f"CDR {cdr_text} vs engine {engine_text}: {discrepancy.winner.value.lower()} wins")
    return Settlement(
        key=key, currency=cur, final_amount=amount, paid=paid, refund=refund, capture=capture,
        release=release, top_up=top_up, lines=final.lines, explanation=tuple(says),
        discrepancy=discrepancy, provisional=provisional, final=final,
        quoted_total=None if quoted is None else quoted.total, engine=engine,
    )


def cancellation_refund(
    paid: Decimal,
    *,
    slot_start: datetime,
    cancelled_at: datetime,
    terms: Sequence[RefundTerm],
    currency: str,
) -> Decimal:
    """The refund for a cancelled booking: the term with the largest `min_hours_before` that
    the cancellation meets (e.g. 85% at least 4 h before the slot); nothing if none does."""
    hours_before = Decimal((slot_start - cancelled_at) // timedelta(microseconds=1)) / Decimal(3_600_000_000)
    eligible = [t for t in terms if hours_before >= t.min_hours_before]
    if not eligible:
        return ZERO
    term = max(eligible, key=lambda t: t.min_hours_before)
    return (paid * term.percent / HUNDRED).quantize(minor_unit(currency), ROUND_HALF_UP)
