"""The mock CPO's own OCPI 2.2.1 tariff pricing (mod_tariffs / mod_cdrs).

Independent of the bridge's engine on purpose: a later test prices every CDR
with both and they must agree to the paisa. Pure functions over pydantic
models; amounts are exact `Decimal`s, rounded only by `round_money` at the end.

The rules, as the spec text states them:
- A session is a list of `Period`s (charging, parking, reservation, idle).
  Periods are split at every instant where a restriction can change: local
  start_time/end_time, local midnight (day_of_week, dates), session duration
  thresholds (min/max_duration) and energy thresholds (min/max_kwh, energy
  assumed linear within a period).
- For each dimension, at each moment, the first TariffElement (list order)
  that has a PriceComponent of that dimension and whose restrictions all hold
  is used. Restrictions are evaluated in the location's `time_zone`.
- FLAT is charged once per session (the first moment a FLAT component
  applies); reservation FLAT separately, once per reservation.
- `step_size` is applied once per session per group: ENERGY (Wh), and TIME
  with PARKING_TIME together (seconds). The total of the dimension of the last
  billed period of the group is rounded up to the step_size of the component
  used in that last period, and the extra is billed at that component's price.
  (So charging time followed by parking is never rounded; reservation time is
  its own group.)
- Expired reservation: elements with `RESERVATION_EXPIRES` are looked up
  first, then `RESERVATION` ones (spec note in ReservationRestrictionType).
- VAT per component, in percent; an omitted `vat` means no VAT is added.
- min_price / max_price clamp excl. and incl. VAT totals independently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from bridge.ocpi.models import (
    ChargingPeriod,
    PriceComponent,
    Tariff,
    TariffDimensionType,
    TariffElement,
    TariffRestrictions,
)

ZERO = Decimal(0)
HOUR = Decimal(3600)
DAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]


class Kind(StrEnum):
    CHARGING = "CHARGING"  # energy flows: ENERGY and TIME
    PARKING = "PARKING"  # plugged in, not charging: PARKING_TIME
    RESERVATION = "RESERVATION"  # EVSE held before the session: TIME of RESERVATION elements
    IDLE = "IDLE"  # no time dimension billed (e.g. a power cut)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    kind: Kind
    energy: Decimal = ZERO  # kWh delivered in this period
    power: Decimal | None = None  # kW, average; derived from energy if absent
    current: Decimal | None = None  # A, sum over phases

    @property
    def seconds(self) -> Decimal:
        return _seconds(self.end - self.start)


@dataclass
class Piece:
    """A stretch of a period in which no restriction changes."""

    start: datetime
    end: datetime
    kind: Kind
    energy: Decimal
    power: Decimal | None  # None: not known (see restrictions_hold)
    current: Decimal | None
    kwh_before: Decimal  # cumulative session energy at `start`
    duration_before: Decimal  # seconds since session (or reservation) start
    components: dict[TariffDimensionType, PriceComponent] = field(default_factory=dict)
    quantity: dict[TariffDimensionType, Decimal] = field(default_factory=dict)

    @property
    def seconds(self) -> Decimal:
        return _seconds(self.end - self.start)


@dataclass(frozen=True)
class Cost:
    excl: Decimal = ZERO
    incl: Decimal = ZERO

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.excl + other.excl, self.incl + other.incl)


@dataclass
class PriceResult:
    total: Cost
    uncapped: Cost
    fixed: Cost
    energy: Cost
    time: Cost
    parking: Cost
    reservation: Cost
    billed_kwh: Decimal
    billed_time_hours: Decimal
    billed_parking_hours: Decimal
    billed_reservation_hours: Decimal
    pieces: list[Piece]


def _seconds(delta: timedelta) -> Decimal:
    return Decimal(delta // timedelta(microseconds=1)) / Decimal(1_000_000)


def round_money(value: Decimal, places: int = 2) -> Decimal:
    """Rounding happens once, at the end: half-up to the currency's minor unit."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _hhmm(value: str) -> time:
    h, m = value.split(":")
    return time(int(h), int(m))


# ----------------------------------------------------------------------------- splitting


def _boundaries(tariff: Tariff) -> tuple[set[time], set[int], set[Decimal]]:
    times: set[time] = {time(0, 0)}  # local midnight: day_of_week and dates change
    durations: set[int] = set()
    kwhs: set[Decimal] = set()
    for el in tariff.elements:
        r = el.restrictions
        if r is None:
            continue
        for t in (r.start_time, r.end_time):
            if t:
                times.add(_hhmm(t))
        for d in (r.min_duration, r.max_duration):
            if d is not None:
                durations.add(d)
        for k in (r.min_kwh, r.max_kwh):
            if k is not None:
                kwhs.add(Decimal(k))
    return times, durations, kwhs


def _split(period: Period, tz: ZoneInfo, times: set[time], durations: set[int],
           kwhs: set[Decimal], origin: datetime, kwh_before: Decimal) -> list[Piece]:
    a, b = period.start, period.end
    total_us = (b - a) // timedelta(microseconds=1)
    cuts: dict[datetime, Decimal | None] = {}  # instant -> exact energy before it, if known
    if total_us > 0:
        day = a.astimezone(tz).date() - timedelta(days=1)
        last = b.astimezone(tz).date()
        while day <= last:
            for t in times:
                at = datetime.combine(day, t, tzinfo=tz).astimezone(UTC)
                if a < at < b:
                    cuts.setdefault(at, None)
            day += timedelta(days=1)
        if period.kind is not Kind.RESERVATION:
            for d in durations:
                at = origin + timedelta(seconds=d)
                if a < at < b:
                    cuts.setdefault(at, None)
        if period.energy > 0:
            for k in kwhs:
                if kwh_before < k < kwh_before + period.energy:
                    part = k - kwh_before
                    us = int(total_us * part / period.energy)
                    at = a + timedelta(microseconds=us)
                    if a < at < b:
                        cuts[at] = part  # exact energy at the threshold
    power = period.power
    if power is None:
        secs = period.seconds
        # average power of a period that delivers energy; none otherwise (parking, power cut)
        power = period.energy * HOUR / secs if secs > 0 and period.energy > 0 else None
    current = period.current  # None when the period reports no CURRENT
    edges = [a, *sorted(cuts), b]
    pieces = []
    done = ZERO
    for i in range(len(edges) - 1):
        s, e = edges[i], edges[i + 1]
        if i == len(edges) - 2:
            upto = period.energy
        else:
            exact = cuts[e]
            upto = exact if exact is not None else (
                period.energy * Decimal((e - a) // timedelta(microseconds=1)) / Decimal(total_us))
        pieces.append(Piece(
            start=s, end=e, kind=period.kind, energy=upto - done, power=power, current=current,
            kwh_before=kwh_before + done, duration_before=_seconds(s - origin),
        ))
        done = upto
    return pieces


# ----------------------------------------------------------------------------- restrictions


def restrictions_hold(r: TariffRestrictions | None, piece: Piece, tz: ZoneInfo) -> bool:
    if r is None:
        return True
    local = piece.start.astimezone(tz)
    if r.start_time or r.end_time:
        t = local.time().replace(tzinfo=None)
        start = _hhmm(r.start_time) if r.start_time else None
        end = _hhmm(r.end_time) if r.end_time else None
        if end == time(0, 0):
            end = None  # "00:00" as end_time means end of the day
        if start is not None and end is not None and end <= start:  # wraps past midnight
            if not (t >= start or t < end):
                return False
        else:
            if start is not None and t < start:
                return False
            if end is not None and t >= end:
                return False
    day = local.date().isoformat()
    if r.start_date and day < r.start_date:
        return False
    if r.end_date and day >= r.end_date:
        return False
    if r.day_of_week and DAYS[local.weekday()] not in {str(d) for d in r.day_of_week}:
        return False
    if r.min_kwh is not None and piece.kwh_before < r.min_kwh:
        return False
    if r.max_kwh is not None and piece.kwh_before >= r.max_kwh:
        return False
    # mod_tariffs TariffRestrictions: min/max_current and min/max_power make an element
    # active "when the EV is charging with" more/less than the value; the text says
    # nothing of a period whose current or power is unknown (no CURRENT dimension, no
    # energy to derive power from). As the bridge documents (docs/pricing.md, "Current
    # and power"), such a restriction does not hold there: the element is skipped.
    if r.min_current is not None and (piece.current is None or piece.current < r.min_current):
        return False
    if r.max_current is not None and (piece.current is None or piece.current >= r.max_current):
        return False
    if r.min_power is not None and (piece.power is None or piece.power < r.min_power):
        return False
    if r.max_power is not None and (piece.power is None or piece.power >= r.max_power):
        return False
    if r.min_duration is not None and piece.duration_before < r.min_duration:
        return False
    return not (r.max_duration is not None and piece.duration_before >= r.max_duration)


_DIMS: dict[Kind, tuple[TariffDimensionType, ...]] = {
    Kind.CHARGING: (TariffDimensionType.FLAT, TariffDimensionType.ENERGY, TariffDimensionType.TIME),
    Kind.PARKING: (TariffDimensionType.FLAT, TariffDimensionType.PARKING_TIME),
    Kind.RESERVATION: (TariffDimensionType.FLAT, TariffDimensionType.TIME),
    Kind.IDLE: (TariffDimensionType.FLAT,),
}


def _candidates(tariff: Tariff, kind: Kind, expired: bool) -> list[TariffElement]:
    def res(el: TariffElement) -> str | None:
        return str(el.restrictions.reservation) if el.restrictions and el.restrictions.reservation \
            else None

    if kind is not Kind.RESERVATION:
        return [el for el in tariff.elements if res(el) is None]
    plain = [el for el in tariff.elements if res(el) == "RESERVATION"]
    if expired:
        return [el for el in tariff.elements if res(el) == "RESERVATION_EXPIRES"] + plain
    return plain


def _select(tariff: Tariff, piece: Piece, tz: ZoneInfo, expired: bool) -> None:
    elements = _candidates(tariff, piece.kind, expired)
    for dim in _DIMS[piece.kind]:
        for el in elements:
            comp = next((c for c in el.price_components if c.type == dim), None)
            if comp is not None and restrictions_hold(el.restrictions, piece, tz):
                piece.components[dim] = comp
                break


# ----------------------------------------------------------------------------- step size


def _round_up(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def _apply_step(pieces: list[Piece], dims: tuple[TariffDimensionType, ...], unit: Decimal) -> None:
    """Round the session total of the dimension of the last billed piece of
    this group up to that piece's step_size; bill the extra on that piece."""
    billed = [p for p in pieces if any(d in p.components for d in dims)]
    if not billed:
        return
    last = billed[-1]
    dim = next(d for d in dims if d in last.components)
    total = sum((p.quantity[dim] for p in pieces if dim in p.quantity), ZERO)
    step = Decimal(last.components[dim].step_size) * unit
    last.quantity[dim] += _round_up(total, step) - total


# ----------------------------------------------------------------------------- price


def _cost(comp: PriceComponent, quantity: Decimal, per_hour: bool) -> Cost:
    excl = comp.price * quantity / HOUR if per_hour else comp.price * quantity
    incl = excl * (1 + comp.vat / 100) if comp.vat is not None else excl
    return Cost(excl, incl)


def price(tariff: Tariff, periods: Sequence[Period], time_zone: str = "UTC", *,
          reservation_expired: bool = False) -> PriceResult:
    tz = ZoneInfo(time_zone)
    times, durations, kwhs = _boundaries(tariff)
    ordered = sorted(periods, key=lambda p: p.start)
    session = [p for p in ordered if p.kind is not Kind.RESERVATION]
    reserve = [p for p in ordered if p.kind is Kind.RESERVATION]
    pieces: list[Piece] = []
    for group in (reserve, session):
        if not group:
            continue
        origin = group[0].start
        kwh = ZERO
        for period in group:
            for piece in _split(period, tz, times, durations, kwhs, origin, kwh):
                _select(tariff, piece, tz, reservation_expired)
                pieces.append(piece)
            kwh += period.energy

    res_pieces = [p for p in pieces if p.kind is Kind.RESERVATION]
    ses_pieces = [p for p in pieces if p.kind is not Kind.RESERVATION]
    T = TariffDimensionType
    for p in pieces:
        for dim in p.components:
            if dim is T.ENERGY:
                p.quantity[dim] = p.energy
            elif dim in (T.TIME, T.PARKING_TIME):
                p.quantity[dim] = p.seconds
    _apply_step(ses_pieces, (T.ENERGY,), Decimal("0.001"))  # step multiplier: 1 Wh
    _apply_step(ses_pieces, (T.TIME, T.PARKING_TIME), Decimal(1))  # 1 second
    _apply_step(res_pieces, (T.TIME,), Decimal(1))

    fixed = energy = time_cost = parking = reservation = Cost()
    billed = {T.ENERGY: ZERO, T.TIME: ZERO, T.PARKING_TIME: ZERO}
    billed_res = ZERO
    for phase in (res_pieces, ses_pieces):  # FLAT: once per group, first moment it applies
        flat = next((p.components[T.FLAT] for p in phase if T.FLAT in p.components), None)
        if flat is not None:
            c = _cost(flat, Decimal(1), per_hour=False)
            if phase is res_pieces:
                reservation += c
            else:
                fixed += c
    for p in pieces:
        for dim, qty in p.quantity.items():
            comp = p.components[dim]
            if p.kind is Kind.RESERVATION:
                reservation += _cost(comp, qty, per_hour=True)
                billed_res += qty
            elif dim is T.ENERGY:
                energy += _cost(comp, qty, per_hour=False)
                billed[dim] += qty
            elif dim is T.TIME:
                time_cost += _cost(comp, qty, per_hour=True)
                billed[dim] += qty
            else:
                parking += _cost(comp, qty, per_hour=True)
                billed[dim] += qty

    uncapped = fixed + energy + time_cost + parking + reservation
    excl, incl = uncapped.excl, uncapped.incl
    if tariff.min_price is not None:
        excl = max(excl, tariff.min_price.excl_vat)
        if tariff.min_price.incl_vat is not None:
            incl = max(incl, tariff.min_price.incl_vat)
    if tariff.max_price is not None:
        excl = min(excl, tariff.max_price.excl_vat)
        if tariff.max_price.incl_vat is not None:
            incl = min(incl, tariff.max_price.incl_vat)
    return PriceResult(
        total=Cost(excl, incl), uncapped=uncapped, fixed=fixed, energy=energy, time=time_cost,
        parking=parking, reservation=reservation, billed_kwh=billed[T.ENERGY],
        billed_time_hours=billed[T.TIME] / HOUR, billed_parking_hours=billed[T.PARKING_TIME] / HOUR,
        billed_reservation_hours=billed_res / HOUR, pieces=pieces,
    )


# ----------------------------------------------------------------------------- from a CDR


def periods_from_charging_periods(charging_periods: Iterable[ChargingPeriod],
                                  end: datetime) -> list[Period]:
    """Rebuild `Period`s from OCPI ChargingPeriods (each ends where the next
    starts, the last at `end`): how a CDR is priced again from its content."""
    cps = sorted(charging_periods, key=lambda c: c.start_date_time)
    out = []
    for i, cp in enumerate(cps):
        stop = cps[i + 1].start_date_time if i + 1 < len(cps) else end
        dims = {str(d.type): d.volume for d in cp.dimensions}
        if "RESERVATION_TIME" in dims:
            kind = Kind.RESERVATION
        elif "TIME" in dims:
            kind = Kind.CHARGING
        elif "PARKING_TIME" in dims:
            kind = Kind.PARKING
        else:
            kind = Kind.IDLE
        out.append(Period(start=cp.start_date_time, end=stop, kind=kind,
                          energy=dims.get("ENERGY", ZERO), power=dims.get("POWER"),
                          current=dims.get("CURRENT")))
    return out
