"""Projection: what a session of a given shape will cost, and what a budget buys.

Used by quotes (Beckn `select` / `init`): "charge 5 kWh" -> cost and end time;
"charge for up to ₹100" -> energy and end time. A simple charging model turns
the request into OCPI charging periods, which the tariff engine prices like
any CDR, so peak windows, step sizes and min/max prices apply exactly as they
will on the final bill.

Charging model: constant power `min(connector, car)` up to `taper_from_percent`
state of charge, then (when the battery's capacity and the starting state of
charge are known) power falling linearly to `taper_floor` of the maximum at
100%, in 1% steps. Each period carries ENERGY, TIME and POWER, so power
restrictions of the tariff see the modelled power.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from bridge.mapping.money import ZERO
from bridge.mapping.tariff import (
    CompiledTariff,
    TariffResult,
    assign_tariffs,
    compile_tariff,
    price,
    price_by_period,
)
from bridge.ocpi.models import (
    CDR,
    CdrDimension,
    CdrDimensionType,
    ChargingPeriod,
    ReservationRestrictionType,
    Session,
    Tariff,
)

__all__ = ["ChargingModel", "Projection", "ProjectionError", "Usage", "budget_projection", "project"]

_HOUR_US = Decimal(3_600_000_000)
_WH = Decimal("0.001")
_MAX_HOURS = Decimal(48)  # a projection never runs longer than this


class ProjectionError(ValueError):
    """The request cannot be projected (no power, no target...)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """A session's shape: charging periods between `start` and `end` (a CDR, a Session, a projection)."""

    periods: tuple[ChargingPeriod, ...]
    start: datetime
    end: datetime
    reservation: ReservationRestrictionType | None = None

    @property
    def energy_kwh(self) -> Decimal:
        return sum(
            (d.volume for p in self.periods for d in p.dimensions if d.type is CdrDimensionType.ENERGY), ZERO
        )

    @property
    def parking_hours(self) -> Decimal:
        return sum(
            (d.volume for p in self.periods for d in p.dimensions if d.type is CdrDimensionType.PARKING_TIME),
            ZERO,
        )

    @classmethod
    def from_cdr(cls, cdr: CDR) -> Usage:
        return cls(tuple(cdr.charging_periods), cdr.start_date_time, cdr.end_date_time)

    @classmethod
    def from_session(cls, session: Session, now: datetime) -> Usage:
        periods = tuple(session.charging_periods or ())
        return cls(periods, session.start_date_time, session.end_date_time or now)

    def priced(self, tariff: Tariff | CompiledTariff | Mapping[str, Tariff], time_zone: str) -> TariffResult:
        """The usage under one tariff (every period), or under the tariffs its periods
        name (`tariff_id`, mod_cdrs) looked up in a mapping by id: a CDR that switched
        tariffs is priced period by period (`price_by_period`)."""
        if isinstance(tariff, Mapping):
            return price_by_period(assign_tariffs(self.periods, tariff), self.periods, start=self.start,
                                   end=self.end, time_zone=time_zone, reservation=self.reservation)
        return price(tariff, self.periods, start=self.start, end=self.end, time_zone=time_zone,
                     reservation=self.reservation)


@dataclass(frozen=True, slots=True)
class ChargingModel:
    """How fast the car charges: connector power, car limit, optional battery and state of charge."""

    power_kw: Decimal  # the connector / EVSE maximum
    car_max_kw: Decimal | None = None
    battery_kwh: Decimal | None = None
    soc_start_percent: Decimal | None = None
    taper_from_percent: Decimal = Decimal(80)
    taper_floor: Decimal = Decimal("0.2")  # share of max power left at 100% state of charge

    @property
    def max_kw(self) -> Decimal:
        kw = self.power_kw if self.car_max_kw is None else min(self.power_kw, self.car_max_kw)
        if kw <= 0:
            raise ProjectionError("charging power must be positive")
        return kw

    def room_kwh(self) -> Decimal | None:
        """Energy the battery can still take, if known."""
        if self.battery_kwh is None or self.soc_start_percent is None:
            return None
        return max(self.battery_kwh * (100 - self.soc_start_percent) / 100, ZERO)

    def segments(self) -> list[tuple[Decimal, Decimal]]:
        """[(energy kWh, power kW)] from the start to a full battery (one open segment if unknown)."""
        kw = self.max_kw
        room = self.room_kwh()
        if room is None or self.battery_kwh is None or self.soc_start_percent is None:
            return [(Decimal("Infinity"), kw)]
        soc = self.soc_start_percent
        out: list[tuple[Decimal, Decimal]] = []
        taper = self.taper_from_percent
        if soc < taper:
            out.append((self.battery_kwh * (taper - soc) / 100, kw))
            soc = taper
        per_step = self.battery_kwh / 100
        while soc < 100:
            nxt = min(Decimal(int(soc) + 1), Decimal(100))
            midpoint = (soc + nxt) / 2
            share = 1 - (1 - self.taper_floor) * (midpoint - taper) / (100 - taper) if taper < 100 else 1
            out.append((per_step * (nxt - soc), kw * share))
            soc = nxt
        return out


@dataclass(frozen=True, slots=True)
class Projection:
    """A projected session: its energy, end and price."""

    usage: Usage
    energy_kwh: Decimal
    end: datetime
    result: TariffResult
    limited_by: str  # "energy", "duration", "budget", "battery"
    affordable: bool = True  # False when even the smallest session costs more than the budget
    notes: tuple[str, ...] = field(default=())

    @property
    def start(self) -> datetime:
        return self.usage.start

    @property
    def duration(self) -> timedelta:
        return self.usage.end - self.usage.start


def _periods(
    model: ChargingModel, start: datetime, *, energy: Decimal | None, hours: Decimal | None
) -> tuple[list[ChargingPeriod], Decimal, datetime, bool]:
    """Periods delivering `energy` kWh or lasting `hours`; (periods, kWh, end, battery_full)."""
    periods: list[ChargingPeriod] = []
    t = start
    delivered = ZERO
    elapsed = ZERO
    full = False
    for seg_kwh, kw in model.segments():
        want = seg_kwh
        if energy is not None:
            want = min(want, energy - delivered)
        if hours is not None:
            want = min(want, (hours - elapsed) * kw)
        if want <= 0:
            break
        h = want / kw
        periods.append(
            ChargingPeriod(
                start_date_time=t,
                dimensions=[
                    CdrDimension(type=CdrDimensionType.ENERGY, volume=want),
                    CdrDimension(type=CdrDimensionType.TIME, volume=h),
                    CdrDimension(type=CdrDimensionType.POWER, volume=kw),
                ],
            )
        )
        t = t + timedelta(microseconds=int((h * _HOUR_US).to_integral_value(ROUND_HALF_UP)))
        delivered += want
        elapsed += h
        if want < seg_kwh:
            break
    else:
        full = model.room_kwh() is not None
    return periods, delivered, t, full


def project(
    tariff: Tariff | CompiledTariff,
    start: datetime,
    model: ChargingModel,
    time_zone: str,
    *,
    energy_kwh: Decimal | None = None,
    duration: timedelta | None = None,
    budget: Decimal | None = None,
    cost: Callable[[TariffResult, Usage], Decimal] | None = None,
) -> Projection:
    """What a session starting at `start` costs, given exactly one target.

    `energy_kwh`: deliver this much (capped by the battery). `duration`: charge
    this long. `budget`: the most energy whose `cost` (default: the tariff's
    total incl. VAT) is within the budget (see `budget_projection`).
    """
    targets = [x is not None for x in (energy_kwh, duration, budget)]
    if sum(targets) != 1:
        raise ProjectionError("give exactly one of energy_kwh, duration and budget")
    compiled = tariff if isinstance(tariff, CompiledTariff) else compile_tariff(tariff)
    if budget is not None:
        return budget_projection(compiled, start, model, time_zone, budget, cost=cost)
    if energy_kwh is not None and energy_kwh < 0:
        raise ProjectionError("energy_kwh must not be negative")
    hours = None if duration is None else Decimal(duration // timedelta(microseconds=1)) / _HOUR_US
    if hours is not None and hours < 0:
        raise ProjectionError("duration must not be negative")
    return _project(compiled, start, model, time_zone, energy_kwh, hours)


def _project(
    compiled: CompiledTariff, start: datetime, model: ChargingModel, time_zone: str,
    energy: Decimal | None, hours: Decimal | None,
) -> Projection:
    if energy is None and hours is None:  # pragma: no cover - guarded by callers
        raise ProjectionError("no target")
    if hours is None:
        hours = _MAX_HOURS
    periods, delivered, end, full = _periods(model, start, energy=energy, hours=hours)
    usage = Usage(tuple(periods), start, end)
    result = usage.priced(compiled, time_zone)
    if energy is not None and delivered < energy:
        limited = "battery" if full else "duration"
    else:
        limited = "energy" if energy is not None else ("battery" if full else "duration")
    notes = (f"battery full after {delivered.quantize(_WH)} kWh",) if limited == "battery" else ()
    return Projection(usage, delivered, end, result, limited, notes=notes)


def _default_cost(result: TariffResult, usage: Usage) -> Decimal:
    return result.exact["total_cost"].incl_vat


def budget_projection(
    tariff: Tariff | CompiledTariff,
    start: datetime,
    model: ChargingModel,
    time_zone: str,
    budget: Decimal,
    *,
    cost: Callable[[TariffResult, Usage], Decimal] | None = None,
) -> Projection:
    """The inverse: the most energy (to the Wh) whose cost is within `budget`.

    Cost grows with energy for any sensible tariff, so the search doubles an
    upper bound and then bisects on whole Wh. `cost` lets a quote add the
    eMSP's fees; it gets the tariff result and the projected usage.
    """
    compiled = tariff if isinstance(tariff, CompiledTariff) else compile_tariff(tariff)
    cost_of = cost or _default_cost
    room = model.room_kwh()
    cap = (room if room is not None else model.max_kw * _MAX_HOURS).quantize(_WH)

    def at(kwh: Decimal) -> tuple[Projection, bool]:
        pr = _project(compiled, start, model, time_zone, kwh, None)
        return pr, cost_of(pr.result, pr.usage) <= budget

    zero, ok = at(ZERO)
    if not ok:
        return Projection(zero.usage, ZERO, zero.end, zero.result, "budget", affordable=False,
                          notes=(f"even an empty session costs more than {budget}",))
    lo_wh, hi_wh = 0, 1000
    best = zero
    while True:
        kwh = min(Decimal(hi_wh) * _WH, cap)
        pr, ok = at(kwh)
        if not ok:
            break
        best, lo_wh = pr, int(kwh / _WH)
        if kwh >= cap:
            return Projection(pr.usage, pr.energy_kwh, pr.end, pr.result, "battery" if room is not None
                              else "duration", notes=pr.notes)
        hi_wh *= 2
    hi_wh = int(min(Decimal(hi_wh) * _WH, cap) / _WH)
    while hi_wh - lo_wh > 1:
        mid = (lo_wh + hi_wh) // 2
        pr, ok = at(Decimal(mid) * _WH)
        if ok:
            best, lo_wh = pr, mid
        else:
            hi_wh = mid
    return Projection(best.usage, best.energy_kwh, best.end, best.result, "budget")


def periods_energy(periods: Sequence[ChargingPeriod]) -> Decimal:
    """Total ENERGY of periods (kWh)."""
    return sum((d.volume for p in periods for d in p.dimensions if d.type is CdrDimensionType.ENERGY), ZERO)
