"""Quotes: the CPO's OCPI price plus the eMSP's commercial policy, as Beckn-ready lines.

`quote()` takes a session's usage (projected for `select`/`init`, or real for
the final bill), the CPO charges for it (the tariff engine's price, or the
CDR's own totals) and the policy terms of the CPO/location, and returns line
items (title, amount, currency, kind) whose sum is the total, in the order:
CPO charges, surcharges, fees, discounts, overage provision.

Each line is rounded to the currency's minor unit (half up) and the totals are
the sums of the lines, so the Beckn breakup always adds up to the price. The
CPO charge lines are rounded so that they add up to the CPO's rounded total.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Any

from bridge.mapping.money import HUNDRED, ZERO, decimal_to_json, minor_unit
from bridge.mapping.policy import PricingPolicy, RefundTerm, Surcharge, Terms
from bridge.mapping.projection import ChargingModel, Projection, Usage, budget_projection, project
from bridge.mapping.tariff import CompiledTariff, TariffResult, compile_tariff, price, zone
from bridge.ocpi.models import CDR, Price, Tariff, TariffDimensionType

__all__ = [
    "BuyerFinderFee",
    "Charges",
    "Customer",
    "FinderFee",
    "LineKind",
    "Quote",
    "QuoteLine",
    "quote",
    "quote_request",
]

_KWH = Decimal("0.001")


class LineKind(StrEnum):
    """The Beckn breakup kind of a line."""

    CHARGE = "charge"  # the CPO's price (OCPI tariff)
    SURCHARGE = "surcharge"  # eMSP surcharge, e.g. congestion fee
    FEE = "fee"  # eMSP service fee, idle fee
    DISCOUNT = "discount"  # offers, loyalty, fleet rate (negative amounts)
    OVERAGE = "overage"  # prepaid provision, refunded when unused


@dataclass(frozen=True, slots=True)
class QuoteLine:
    title: str
    amount: Decimal  # rounded to the minor unit; negative for discounts
    currency: str
    kind: LineKind
    code: str  # machine-readable: "energy", "surcharge:congestion", "offer:charge-5-save-20"...

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "amount": decimal_to_json(self.amount),
            "currency": self.currency,
            "kind": self.kind.value,
            "code": self.code,
        }


@dataclass(frozen=True, slots=True)
class Customer:
    """What `init` tells about the buyer."""

    phone: str | None = None
    fleet_id: str | None = None
    fleet_verified: bool = False  # the fleet id passed its OTP check


@dataclass(frozen=True, slots=True)
class BuyerFinderFee:
    """The BAP's declared finder fee (Beckn `buyer_finder_fee`): a percent or an amount."""

    percent: Decimal | None = None
    amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class FinderFee:
    """The finder fee the bridge accepts: shown, not added to the price, capped by policy."""

    percent: Decimal
    amount: Decimal
    capped: bool


@dataclass(frozen=True, slots=True)
class Charges:
    """The CPO's charges for a session, incl. VAT, unrounded, per OCPI dimension."""

    currency: str
    total: Decimal
    energy: Decimal = ZERO
    time: Decimal = ZERO
    parking: Decimal = ZERO
    fixed: Decimal = ZERO
    reservation: Decimal = ZERO
    energy_kwh: Decimal = ZERO
    charging_hours: Decimal = ZERO  # the time the TIME dimension prices: charging, not the session
    parking_hours: Decimal = ZERO
    energy_unit_price: Decimal | None = None  # incl. VAT, when one ENERGY price applied
    source: str = "engine"  # "engine" or "cdr"

    @classmethod
    def from_result(cls, r: TariffResult) -> Charges:
        x = r.exact
        energy_lines = [ln for ln in r.lines if ln.dimension is TariffDimensionType.ENERGY and ln.quantity]
        unit = None
        if len({(ln.price, ln.vat) for ln in energy_lines}) == 1:
            unit = energy_lines[0].cost_exact.incl_vat / energy_lines[0].quantity
        return cls(
            currency=r.currency,
            total=x["total_cost"].incl_vat,
            energy=x["total_energy_cost"].incl_vat,
            time=x["total_time_cost"].incl_vat,
            parking=x["total_parking_cost"].incl_vat,
            fixed=x["total_fixed_cost"].incl_vat,
            reservation=x["total_reservation_cost"].incl_vat,
            energy_kwh=r.total_energy,
            charging_hours=r.time_volume,
            parking_hours=r.total_parking_time,
            energy_unit_price=unit,
        )

    @classmethod
    def from_cdr(cls, cdr: CDR) -> Charges:
        """The CDR's own totals (OCPI `total_*_cost`, incl. VAT where given)."""

        def incl(p: Price | None) -> Decimal:
            if p is None:
                return ZERO
            return p.incl_vat if p.incl_vat is not None else p.excl_vat

        return cls(
            currency=cdr.currency.upper(),
            total=incl(cdr.total_cost),
            energy=incl(cdr.total_energy_cost),
            time=incl(cdr.total_time_cost),
            parking=incl(cdr.total_parking_cost),
            fixed=incl(cdr.total_fixed_cost),
            reservation=incl(cdr.total_reservation_cost),
            energy_kwh=cdr.total_energy,
            # mod_cdrs: total_time is the whole session; its note gives the charging time
            # as total_time - total_parking_time.
            charging_hours=max(cdr.total_time - (cdr.total_parking_time or ZERO), ZERO),
            parking_hours=cdr.total_parking_time or ZERO,
            source="cdr",
        )


@dataclass(frozen=True, slots=True)
class Quote:
    currency: str
    lines: tuple[QuoteLine, ...]
    estimate: Decimal  # everything but the overage provision
    total: Decimal  # the sum of all lines: what to collect or hold
    energy_kwh: Decimal
    charges: Charges
    offers_applied: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    buyer_finder_fee: FinderFee | None = None
    refund_terms: tuple[RefundTerm, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    projection: Projection | None = field(default=None, compare=False, repr=False)

    def amount(self, kind: LineKind) -> Decimal:
        return sum((ln.amount for ln in self.lines if ln.kind is kind), ZERO)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "currency": self.currency,
            "total": decimal_to_json(self.total),
            "estimate": decimal_to_json(self.estimate),
            "energy_kwh": decimal_to_json(self.energy_kwh.quantize(_KWH)),
            "lines": [ln.to_json() for ln in self.lines],
            "offers_applied": list(self.offers_applied),
            "notes": list(self.notes),
            "refund_terms": [
                {
                    "min_hours_before": decimal_to_json(t.min_hours_before),
                    "percent": decimal_to_json(t.percent),
                }
                for t in self.refund_terms
            ],
        }
        if self.buyer_finder_fee is not None:
            f = self.buyer_finder_fee
            out["buyer_finder_fee"] = {
                "percent": decimal_to_json(f.percent),
                "amount": decimal_to_json(f.amount),
                "capped": f.capped,
            }
        if self.start is not None and self.end is not None:
            out["start"] = self.start.isoformat()
            out["end"] = self.end.isoformat()
        return out


_SYMBOLS = {"INR": "₹", "EUR": "€", "USD": "$", "GBP": "£"}


def money_text(amount: Decimal, currency: str) -> str:
    sym = _SYMBOLS.get(currency.upper())
    text = f"{amount.quantize(minor_unit(currency), ROUND_HALF_UP):,}"
    return f"{sym}{text}" if sym else f"{text} {currency.upper()}"


def kwh_text(kwh: Decimal) -> str:
    q = kwh.quantize(_KWH, ROUND_HALF_UP).normalize()
    return f"{q:f}"


def _duration_text(hours: Decimal) -> str:
    minutes = int((hours * 60).to_integral_value(ROUND_HALF_UP))
    h, m = divmod(minutes, 60)
    return f"{h} h {m} min" if h else f"{m} min"


@lru_cache(maxsize=256)
def _surcharge_tariff(surcharge: Surcharge, currency: str) -> CompiledTariff:
    return compile_tariff(surcharge.as_tariff(currency))


def _charge_lines(c: Charges, q: Decimal) -> list[QuoteLine]:
    cur = c.currency
    parts: list[tuple[str, str, Decimal]] = []
    if c.energy:
        unit = f" @ {money_text(c.energy_unit_price, cur)}/kWh" if c.energy_unit_price is not None else ""
        parts.append(("energy", f"Charging session cost ({kwh_text(c.energy_kwh)} kWh{unit})", c.energy))
    if c.time:
        parts.append(("time", f"Charging time ({_duration_text(c.charging_hours)})", c.time))
    if c.parking:
        parts.append(("parking", f"Parking time ({_duration_text(c.parking_hours)})", c.parking))
    if c.fixed:
        parts.append(("fixed", "Session fee", c.fixed))
    if c.reservation:
        parts.append(("reservation", "Reservation", c.reservation))
    rest = c.total - sum((p[2] for p in parts), ZERO)
    if not parts:
        title = f"Charging session cost ({kwh_text(c.energy_kwh)} kWh)"
        parts.append(("energy", title, c.total))
    elif rest:
        # min_price / max_price of the tariff, or a CDR total that is more than its parts
        parts.append(("price-limit", "Minimum / maximum price adjustment", rest))
    rounded = [p[2].quantize(q, ROUND_HALF_UP) for p in parts]
    # Make the rounded lines add up to the rounded CPO total: the largest line absorbs the paisa.
    diff = c.total.quantize(q, ROUND_HALF_UP) - sum(rounded, ZERO)
    if diff:
        k = max(range(len(parts)), key=lambda i: abs(parts[i][2]))
        rounded[k] += diff
    return [
        QuoteLine(title, amount, cur, LineKind.CHARGE, code)
        for (code, title, _), amount in zip(parts, rounded, strict=True)
        if amount or len(parts) == 1
    ]


def quote(
    tariff: Tariff | CompiledTariff | Mapping[str, Tariff] | None,
    usage: Usage,
    policy: PricingPolicy,
    *,
    party: str,
    time_zone: str,
    location_id: str | None = None,
    customer: Customer | None = None,
    buyer_finder_fee: BuyerFinderFee | None = None,
    prepaid: bool = False,
    charges: Charges | None = None,
    result: TariffResult | None = None,
) -> Quote:
    """Quote `usage` at CPO `party` ("IN-TPC") / `location_id` under `policy`.

    The CPO charges are `charges` if given (e.g. `Charges.from_cdr`), else the
    engine's price of `usage` under `tariff` (or, a mapping by id, the tariffs its periods
    name), or a `result` already computed.
    Offers and their kWh thresholds use the usage's energy; the offer's
    validity uses the local date of the usage's start in `time_zone`.
    """
    customer = customer or Customer()
    terms = policy.terms(party, location_id)
    if charges is None:
        if result is None:
            if tariff is None:
                raise ValueError("quote() needs a tariff, a tariff result or the charges")
            result = usage.priced(tariff, time_zone)
        charges = Charges.from_result(result)
    cur = charges.currency
    q = minor_unit(cur)
    energy_kwh = charges.energy_kwh if charges.source == "cdr" else usage.energy_kwh
    day = usage.start.astimezone(zone(time_zone)).date()
    notes: list[str] = []

    lines = _charge_lines(charges, q)
    base = sum((ln.amount for ln in lines), ZERO)

    for s in terms.surcharges:
        r = price(_surcharge_tariff(s, cur), usage.periods, start=usage.start, end=usage.end,
                  time_zone=time_zone)
        amount = r.exact["total_cost"].incl_vat.quantize(q, ROUND_HALF_UP)
        if amount:
            title = f"{s.title} ({money_text(s.per_kwh, cur)}/kWh × {kwh_text(r.billed_energy)} kWh)"
            lines.append(QuoteLine(title, amount, cur, LineKind.SURCHARGE, f"surcharge:{s.id}"))

    fleet = policy.fleet(customer.fleet_id)
    if customer.fleet_id and fleet is None:
        notes.append(f"unknown fleet id {customer.fleet_id}: no fleet rate")
    elif fleet is not None and not customer.fleet_verified:
        notes.append(f"fleet id {fleet.id} not verified: no fleet rate")
        fleet = None

    lines += _fee_lines(terms, usage, base, cur, q, waived=fleet is not None and fleet.service_fee_waived)
    discounts, applied = _discounts(policy, terms, party, location_id, day, energy_kwh, base, customer,
                                    fleet, cur, q, notes)
    positive = sum((ln.amount for ln in lines), ZERO)
    # Discounts never make the bill negative: the last one is trimmed.
    room = positive
    for d in discounts:
        amount = max(d.amount, -room)
        room += amount
        if amount:
            lines.append(QuoteLine(d.title, amount, d.currency, d.kind, d.code))
    estimate = sum((ln.amount for ln in lines), ZERO)
    if prepaid and terms.overage_percent:
        overage = (estimate * terms.overage_percent / HUNDRED).quantize(q, ROUND_HALF_UP)
        if overage:
            title = f"Overage provision ({terms.overage_percent.normalize():f}%, unused portion refunded)"
            lines.append(QuoteLine(title, overage, cur, LineKind.OVERAGE, "overage"))
    total = sum((ln.amount for ln in lines), ZERO)
    return Quote(
        currency=cur,
        lines=tuple(lines),
        estimate=estimate,
        total=total,
        energy_kwh=energy_kwh,
        charges=charges,
        offers_applied=tuple(applied),
        notes=tuple(notes),
        buyer_finder_fee=_finder_fee(buyer_finder_fee, terms, estimate, q),
        refund_terms=terms.refund_terms,
        start=usage.start,
        end=usage.end,
    )


_MICRO = Decimal("1E-6")


def _fee_lines(
    terms: Terms, usage: Usage, base: Decimal, cur: str, q: Decimal, *, waived: bool
) -> list[QuoteLine]:
    out: list[QuoteLine] = []
    if terms.idle_fee_per_minute:
        # Exact seconds (Decimal noise below a microsecond dropped, as the tariff engine
        # does before its step_size), compared with the grace period; only what is over
        # is rounded, up to started minutes, once. Rounding the parking time up first
        # charged a minute for parking exactly as long as the grace period.
        over_s = (usage.parking_hours * 3600).quantize(_MICRO) - terms.grace_minutes * 60
        minutes = (over_s / 60).to_integral_value(ROUND_CEILING) if over_s > 0 else ZERO
        if minutes > 0:
            amount = (minutes * terms.idle_fee_per_minute).quantize(q, ROUND_HALF_UP)
            title = f"Idle fee ({minutes} min after a {terms.grace_minutes} min grace period)"
            out.append(QuoteLine(title, amount, cur, LineKind.FEE, "idle-fee"))
    if not waived:
        fee = (terms.service_fee + base * terms.service_fee_percent / HUNDRED).quantize(q, ROUND_HALF_UP)
        if fee:
            out.append(QuoteLine("Service fee", fee, cur, LineKind.FEE, "service-fee"))
    return out


def _discounts(
    policy: PricingPolicy, terms: Terms, party: str, location_id: str | None, day: date,
    energy_kwh: Decimal, base: Decimal, customer: Customer, fleet: Any, cur: str, q: Decimal,
    notes: list[str],
) -> tuple[list[QuoteLine], list[str]]:
    out: list[QuoteLine] = []
    applied: list[str] = []
    for offer in policy.offers:
        if not offer.applies(party, location_id, day):
            continue
        if energy_kwh < offer.min_kwh:
            short = f"{kwh_text(energy_kwh)} kWh < {kwh_text(offer.min_kwh)} kWh"
            notes.append(f"{offer.title}: not applied, {short}")
            continue
        amount = _off(offer.amount_off, offer.percent_off, base)
        out.append(QuoteLine(offer.title, -amount.quantize(q, ROUND_HALF_UP), cur, LineKind.DISCOUNT,
                             f"offer:{offer.id}"))
        applied.append(offer.id)
    member = policy.loyalty_for(customer.phone)
    if member is not None:
        amount = _off(member.amount_off, member.percent_off, base)
        out.append(QuoteLine(f"Loyalty discount ({member.program})", -amount.quantize(q, ROUND_HALF_UP), cur,
                             LineKind.DISCOUNT, "loyalty"))
    if fleet is not None and fleet.percent_off:
        amount = base * fleet.percent_off / HUNDRED
        out.append(QuoteLine(f"Fleet rate ({fleet.name}, {fleet.percent_off.normalize():f}% off)",
                             -amount.quantize(q, ROUND_HALF_UP), cur, LineKind.DISCOUNT, f"fleet:{fleet.id}"))
    return [d for d in out if d.amount], applied


def _off(amount: Decimal | None, percent: Decimal | None, base: Decimal) -> Decimal:
    return amount if amount is not None else base * (percent or ZERO) / HUNDRED


def _finder_fee(
    declared: BuyerFinderFee | None, terms: Terms, estimate: Decimal, q: Decimal
) -> FinderFee | None:
    if declared is None or (declared.percent is None and declared.amount is None):
        return None
    cap = terms.buyer_finder_fee_cap_percent
    if declared.percent is not None:
        percent = declared.percent
    else:
        percent = (declared.amount or ZERO) * HUNDRED / estimate if estimate else HUNDRED
    capped = percent > cap
    percent = min(percent, cap)
    amount = (estimate * percent / HUNDRED).quantize(q, ROUND_HALF_UP)
    if declared.amount is not None and not capped:
        amount = declared.amount.quantize(q, ROUND_HALF_UP)
    return FinderFee(percent=percent, amount=amount, capped=capped)


def quote_request(
    tariff: Tariff | CompiledTariff,
    policy: PricingPolicy,
    *,
    start: datetime,
    model: ChargingModel,
    party: str,
    time_zone: str,
    location_id: str | None = None,
    energy_kwh: Decimal | None = None,
    duration: timedelta | None = None,
    budget: Decimal | None = None,
    customer: Customer | None = None,
    buyer_finder_fee: BuyerFinderFee | None = None,
    prepaid: bool = False,
) -> Quote:
    """Project a `select` request ("5 kWh", "1 hour" or "up to ₹100") and quote it.

    For a budget, the whole bill (CPO price, surcharges, fees, discounts, not
    the overage provision) stays within it.
    """
    compiled = tariff if isinstance(tariff, CompiledTariff) else compile_tariff(tariff)
    kwargs: dict[str, Any] = {
        "party": party, "time_zone": time_zone, "location_id": location_id, "customer": customer,
        "buyer_finder_fee": buyer_finder_fee,
    }
    if budget is not None:
        def bill(result: TariffResult, usage: Usage) -> Decimal:
            return quote(None, usage, policy, result=result, **kwargs).estimate

        pr = budget_projection(compiled, start, model, time_zone, budget, cost=bill)
    else:
        pr = project(compiled, start, model, time_zone, energy_kwh=energy_kwh, duration=duration)
    out = quote(None, pr.usage, policy, result=pr.result, prepaid=prepaid, **kwargs)
    notes = out.notes + pr.notes + (() if pr.affordable else (f"budget {budget} does not cover a session",))
    return Quote(
        currency=out.currency, lines=out.lines, estimate=out.estimate, total=out.total,
        energy_kwh=out.energy_kwh, charges=out.charges, offers_applied=out.offers_applied, notes=notes,
        buyer_finder_fee=out.buyer_finder_fee, refund_terms=out.refund_terms, start=pr.start, end=pr.end,
        projection=pr,
    )


def total_of(lines: Sequence[QuoteLine]) -> Decimal:
    return sum((ln.amount for ln in lines), ZERO)
