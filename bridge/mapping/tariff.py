"""OCPI 2.2.1 tariff engine: the cost of a session's charging periods.

Spec: module "tariffs" (mod_tariffs, §11.3 Tariff object, §11.4 TariffElement,
PriceComponent, TariffRestrictions) and the `step_size` rules in module "cdrs"
(mod_cdrs, CDR object description, "step_size").

How a session is priced (`price()`):

1. Periods. Charging period *i* runs from its `start_date_time` to the next
   period's start (the last one to `end`). Additive volumes (ENERGY, TIME,
   PARKING_TIME, RESERVATION_TIME) are spread evenly over the period.
2. Splitting. A period that crosses a restriction boundary is split there, as
   the spec's worked examples do: a `start_time`/`end_time` (local time, in the
   location's IANA `time_zone`, DST included), local midnight (for
   `day_of_week`, `start_date`, `end_date`), `start + min_duration` /
   `start + max_duration`, the moment the cumulative energy reaches a
   `min_kwh`/`max_kwh`, and a UTC-offset change of the zone.
3. Selection. For each piece and each dimension, the first element in list
   order that has a component of that dimension and whose restrictions all
   hold prices it (§11.3.1). Restrictions are evaluated at the middle of the
   piece: after splitting they are constant over it. No element -> the piece
   is free for that dimension and is reported in `unpriced`.
4. FLAT is charged once per session phase (charging; reservation), from the
   first piece in time at which a FLAT component is active.
5. step_size (mod_cdrs "step_size"): once per session for ENERGY, and once for
   TIME and PARKING_TIME together: the dimension of the last priced time-based
   piece has its session total (of priced pieces) rounded up to the step_size
   of that last piece's component; the difference is billed at that
   component's price. RESERVATION_TIME is rounded on its own.
6. VAT per component (`vat` omitted = no VAT: incl == excl), then
   `min_price`/`max_price` on excl and incl independently, then one rounding
   to the currency's minor unit.

The hot loop works on integers (UTC microseconds) and `Decimal`, with the
tariff compiled once (`compile_tariff`) and the zone's offsets looked up once
per session, so the CDR/Session pydantic objects are only read, never built.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from math import floor
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.mapping.money import (
    HUNDRED,
    ONE,
    ZERO,
    PriceAmount,
    decimal_to_json,
    minor_unit,
)
from bridge.ocpi.models import (
    CDR,
    CdrDimensionType,
    ChargingPeriod,
    DayOfWeek,
    PriceComponent,
    ReservationRestrictionType,
    Session,
    Tariff,
    TariffDimensionType,
    TariffRestrictions,
)

__all__ = [
    "CompiledTariff",
    "TariffError",
    "TariffLine",
    "TariffResult",
    "TariffSubtotal",
    "assign_tariffs",
    "compile_tariff",
    "price",
    "price_by_period",
    "price_cdr",
    "price_session",
    "zone",
]

US = 1_000_000
DAY_US = 86_400 * US
HOUR_S = Decimal(3600)
_HOUR_US = Decimal(3600 * 1_000_000)
KWH_WH = Decimal(1000)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_FINE = Decimal("1E-6")  # step_size works in Wh / seconds; kill Decimal noise below 1e-6 first
_HALF = Decimal("0.5")
_DOW = {d: i for i, d in enumerate(DayOfWeek)}  # MONDAY=0 .. SUNDAY=6

# Dimension codes of the hot loop.
ENERGY, TIME, PARKING, RES_TIME, FLAT, RES_FLAT = range(6)
_DIM_NAMES = ("ENERGY", "TIME", "PARKING_TIME", "TIME", "FLAT", "FLAT")
_DIM_TYPES = (
    TariffDimensionType.ENERGY,
    TariffDimensionType.TIME,
    TariffDimensionType.PARKING_TIME,
    TariffDimensionType.TIME,
    TariffDimensionType.FLAT,
    TariffDimensionType.FLAT,
)


class TariffError(ValueError):
    """The input cannot be priced (unknown time zone, CDR without a tariff...)."""


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA zone `name` (cached); TariffError if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TariffError(f"unknown time zone {name!r}") from exc


def _to_us(dt: datetime) -> int:
    """Microseconds since the epoch, exactly (whole seconds from the float
    timestamp, which is exact for them, plus the datetime's own microseconds)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return floor(dt.timestamp()) * US + dt.microsecond


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _offset_us(tz: ZoneInfo, us: int) -> int:
    off = _from_us(us).astimezone(tz).utcoffset()
    return 0 if off is None else off // _ONE_US


def _hhmm_us(value: str) -> int:
    return (int(value[:2]) * 3600 + int(value[3:5]) * 60) * US


def _day_number(value: str) -> int:
    return date.fromisoformat(value).toordinal() - _EPOCH_ORDINAL


# --------------------------------------------------------------------------- compiled tariff


class _Restriction:
    """TariffRestrictions (§11.4.6) compiled to integers and Decimals."""

    __slots__ = (
        "day_from",
        "day_to",
        "dows",
        "has_day",
        "has_tod",
        "max_current",
        "max_dur",
        "max_kwh",
        "max_power",
        "min_current",
        "min_dur",
        "min_kwh",
        "min_power",
        "tod_end",
        "tod_start",
    )

    def __init__(self, r: TariffRestrictions) -> None:
        self.has_tod = r.start_time is not None or r.end_time is not None
        self.tod_start = _hhmm_us(r.start_time) if r.start_time else 0
        # "To stop at end of the day use: 00:00" -> end 00:00 means 24:00.
        end = _hhmm_us(r.end_time) if r.end_time else 0
        self.tod_end = end or DAY_US
        self.dows = frozenset(_DOW[d] for d in r.day_of_week) if r.day_of_week else None
        self.day_from = _day_number(r.start_date) if r.start_date else None
        self.day_to = _day_number(r.end_date) if r.end_date else None
        self.has_day = self.dows is not None or self.day_from is not None or self.day_to is not None
        self.min_kwh = r.min_kwh
        self.max_kwh = r.max_kwh
        self.min_current = r.min_current
        self.max_current = r.max_current
        self.min_power = r.min_power
        self.max_power = r.max_power
        self.min_dur = None if r.min_duration is None else r.min_duration * US
        self.max_dur = None if r.max_duration is None else r.max_duration * US

    def active(
        self,
        local_us: int,
        dur_us: int,
        kwh: Decimal,
        cur_lo: Decimal | None,
        cur_hi: Decimal | None,
        pow_lo: Decimal | None,
        pow_hi: Decimal | None,
    ) -> bool:
        """All restrictions hold at this moment (logical AND, §11.4.6).

        `min_*` limits are inclusive and `max_*` exclusive, as the spec words
        them; `end_time` < `start_time` wraps past midnight. A current/power
        limit with no measured value does not hold.
        """
        if self.has_tod:
            tod = local_us % DAY_US
            s, e = self.tod_start, self.tod_end
            if s < e:
                if tod < s or tod >= e:
                    return False
            elif s > e and e <= tod < s:
                return False
        if self.has_day:
            day = local_us // DAY_US
            if self.dows is not None and (day + 3) % 7 not in self.dows:  # 1970-01-01 was a Thursday
                return False
            if self.day_from is not None and day < self.day_from:
                return False
            if self.day_to is not None and day >= self.day_to:
                return False
        if self.min_kwh is not None and kwh < self.min_kwh:
            return False
        if self.max_kwh is not None and kwh >= self.max_kwh:
            return False
        if self.min_dur is not None and dur_us < self.min_dur:
            return False
        if self.max_dur is not None and dur_us >= self.max_dur:
            return False
        if self.min_current is not None and (cur_lo is None or cur_lo < self.min_current):
            return False
        if self.max_current is not None and (cur_hi is None or cur_hi >= self.max_current):
            return False
        if self.min_power is not None and (pow_lo is None or pow_lo < self.min_power):
            return False
        return not (self.max_power is not None and (pow_hi is None or pow_hi >= self.max_power))


class _Candidate:
    """One price component of one element, as a candidate for one dimension."""

    __slots__ = ("code", "comp_index", "element_index", "price", "restriction", "step", "vat", "vat_factor")

    def __init__(
        self, code: int, element_index: int, comp_index: int, comp: PriceComponent,
        restriction: _Restriction | None,
    ) -> None:
        self.code = code
        self.element_index = element_index
        self.comp_index = comp_index
        self.price = comp.price
        self.vat = comp.vat
        self.vat_factor = ONE if comp.vat is None else ONE + comp.vat / HUNDRED
        self.step = comp.step_size
        self.restriction = restriction


@dataclass(frozen=True, slots=True)
class CompiledTariff:
    """A Tariff prepared for fast repeated pricing (see `compile_tariff`)."""

    tariff: Tariff
    charging: tuple[tuple[_Candidate, ...], ...]  # by code ENERGY, TIME, PARKING, -, FLAT
    reservation: tuple[_Candidate, ...]  # TIME candidates of RESERVATION elements
    reservation_flat: tuple[_Candidate, ...]
    expires: tuple[_Candidate, ...]  # TIME candidates of RESERVATION_EXPIRES elements
    expires_flat: tuple[_Candidate, ...]
    tod_cuts: tuple[int, ...]  # local time-of-day boundaries (µs after midnight)
    duration_cuts: tuple[int, ...]  # µs after session start
    kwh_cuts: tuple[Decimal, ...]
    needs_local: bool
    needs_power: bool
    needs_current: bool
    currency: str
    quantum: Decimal  # the currency's minor unit
    # (time zone, first day, last day) -> the local-time split points of those days
    cut_cache: dict[tuple[str, int, int], list[int]] = field(default_factory=dict, compare=False, repr=False)
    # Restrictions on the time of day only (no day, date, duration, energy, power, current):
    # the choice per dimension is a function of the local time of day, tabled per
    # interval between two of its boundaries (see `_tod_table`).
    tod_only: bool = False
    tod_tables: dict[bool, list[list[_Candidate | None]]] = field(
        default_factory=dict, compare=False, repr=False)


def compile_tariff(tariff: Tariff) -> CompiledTariff:
    """Precompute the per-dimension candidate lists and the split points."""
    by_code: list[list[_Candidate]] = [[] for _ in range(5)]
    res_t: list[_Candidate] = []
    res_f: list[_Candidate] = []
    exp_t: list[_Candidate] = []
    exp_f: list[_Candidate] = []
    tods: set[int] = set()
    durs: set[int] = set()
    kwhs: set[Decimal] = set()
    needs_local = needs_power = needs_current = False
    codes = {
        TariffDimensionType.ENERGY: ENERGY,
        TariffDimensionType.TIME: TIME,
        TariffDimensionType.PARKING_TIME: PARKING,
        TariffDimensionType.FLAT: FLAT,
    }
    for ei, element in enumerate(tariff.elements):
        r = element.restrictions
        restriction = _Restriction(r) if r is not None else None
        kind = r.reservation if r is not None else None
        if restriction is not None and r is not None:
            if restriction.has_tod:
                tods.update({restriction.tod_start, restriction.tod_end % DAY_US})
            if restriction.has_day:
                tods.add(0)
            needs_local = needs_local or restriction.has_tod or restriction.has_day
            durs.update(d for d in (restriction.min_dur, restriction.max_dur) if d is not None)
            kwhs.update(k for k in (r.min_kwh, r.max_kwh) if k is not None)
            needs_power = needs_power or r.min_power is not None or r.max_power is not None
            needs_current = needs_current or r.min_current is not None or r.max_current is not None
        for ci, comp in enumerate(element.price_components):
            code = codes[comp.type]
            if kind is None:
                by_code[code].append(_Candidate(code, ei, ci, comp, restriction))
            elif comp.type is TariffDimensionType.TIME:
                target = res_t if kind is ReservationRestrictionType.RESERVATION else exp_t
                target.append(_Candidate(RES_TIME, ei, ci, comp, restriction))
            elif comp.type is TariffDimensionType.FLAT:
                target = res_f if kind is ReservationRestrictionType.RESERVATION else exp_f
                target.append(_Candidate(RES_FLAT, ei, ci, comp, restriction))
            # A reservation element can only price FLAT and TIME (§11.4.6 `reservation`):
            # other components on it are ignored.
    tod_only = not (needs_power or needs_current or kwhs or durs) and not any(
        e.restrictions is not None and (e.restrictions.day_of_week or e.restrictions.start_date
                                        or e.restrictions.end_date)
        for e in tariff.elements)
    return CompiledTariff(
        tod_only=tod_only,
        tariff=tariff,
        charging=tuple(tuple(c) for c in by_code),
        reservation=tuple(res_t),
        reservation_flat=tuple(res_f),
        expires=tuple(exp_t),
        expires_flat=tuple(exp_f),
        tod_cuts=tuple(sorted(tods)),
        duration_cuts=tuple(sorted(durs)),
        kwh_cuts=tuple(sorted(kwhs)),
        needs_local=needs_local,
        needs_power=needs_power,
        needs_current=needs_current,
        currency=tariff.currency.upper(),
        quantum=minor_unit(tariff.currency),
    )


_compiled: dict[int, CompiledTariff] = {}


def _compile_cached(tariff: Tariff) -> CompiledTariff:
    # Keyed by identity; the entry holds the tariff itself, so the id cannot be
    # reused while cached. Tariff objects are treated as immutable.
    hit = _compiled.get(id(tariff))
    if hit is not None and hit.tariff is tariff:
        return hit
    compiled = compile_tariff(tariff)
    if len(_compiled) >= 512:
        _compiled.clear()
    _compiled[id(tariff)] = compiled
    return compiled


# --------------------------------------------------------------------------- result


@dataclass(slots=True)
class TariffLine:
    """What one price component of one element billed over the session (read-only).

    Not frozen: a frozen dataclass costs a microsecond per instance and the
    engine builds a few per evaluation.
    """

    dimension: TariffDimensionType
    reservation: bool  # priced by a RESERVATION / RESERVATION_EXPIRES element
    element_index: int
    component_index: int
    price: Decimal  # per kWh, per hour or per session (FLAT), excl. VAT
    vat: Decimal | None
    step_size: int
    volume: Decimal  # consumed: kWh, hours, or 1 for FLAT
    quantity: Decimal  # billed, after step_size
    cost_exact: PriceAmount
    currency: str
    start_us: int  # first and last instant priced (µs since the epoch, UTC)
    end_us: int
    tariff_id: str = ""  # the tariff this component belongs to

    @property
    def cost(self) -> PriceAmount:
        """`cost_exact` rounded to the minor unit, for display."""
        return self.cost_exact.rounded(self.currency)

    @property
    def start(self) -> datetime:
        return _from_us(self.start_us)

    @property
    def end(self) -> datetime:
        return _from_us(self.end_us)

    def to_json(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension.value,
            "reservation": self.reservation,
            "element_index": self.element_index,
            "component_index": self.component_index,
            "price": decimal_to_json(self.price),
            "vat": None if self.vat is None else decimal_to_json(self.vat),
            "step_size": self.step_size,
            "volume": _qty_json(self.volume),
            "quantity": _qty_json(self.quantity),
            "cost": self.cost.to_json(),
            "start": _iso(self.start),
            "end": _iso(self.end),
            "tariff_id": self.tariff_id,
        }


@dataclass(slots=True)
class TariffSubtotal:
    """What one tariff of a session that switched tariffs priced, after its own
    min_price / max_price (exact; rounded on access)."""

    tariff_id: str
    cost_exact: PriceAmount
    price_limit: str | None
    quantum: Decimal

    @property
    def cost(self) -> PriceAmount:
        return self.cost_exact.quantized(self.quantum)

    def to_json(self) -> dict[str, Any]:
        return {"tariff_id": self.tariff_id, "cost": self.cost.to_json(), "price_limit": self.price_limit}


class TariffResult:
    """The price of a session (amounts rounded to the minor unit on access).

    Read-only by convention. Built once per evaluation on the hot path (a
    `track` update, a quote search), which mostly reads one total: the exact
    per-dimension amounts (`exact`) and the component lines (`lines`) are
    built from the engine's sums only when read.
    """

    __slots__ = (
        "_exact", "_line_src", "_lines", "_raw", "_si", "_sx", "_tot", "billed_s", "consumed_s",
        "currency", "price_limit", "quantum", "session_us", "subtotals", "tariff_id", "tariff_ids",
        "time_zone", "unpriced", "warnings",
    )

    def __init__(  # positional on the hot path (`_finish`), keywords elsewhere
        self, currency: str, tariff_id: str, time_zone: str, quantum: Decimal,
        sx: list[Decimal], si: list[Decimal], total: tuple[Decimal, Decimal], raw: tuple[Decimal, Decimal],
        price_limit: str | None,
        consumed_s: tuple[Decimal, Decimal, Decimal, Decimal],
        billed_s: tuple[Decimal, Decimal, Decimal, Decimal],
        unpriced: dict[str, Decimal],
        line_src: list[tuple[Any, ...]],
        session_us: int,
        tariff_ids: tuple[str, ...] = (),
        subtotals: tuple[TariffSubtotal, ...] = (),
        warnings: tuple[str, ...] = (),
    ) -> None:
        self.currency = currency
        self.tariff_id = tariff_id
        self.time_zone = time_zone
        self.quantum = quantum  # the currency's minor unit
        self._sx = sx  # exact sums per dimension code, excl. / incl. VAT
        self._si = si
        self._tot = total  # exact total after min/max price, excl. / incl. VAT
        self._raw = raw  # exact total of the components, before min/max price
        self.price_limit = price_limit  # "min_price", "max_price" or None
        self.consumed_s = consumed_s  # kWh, TIME s, PARKING s, RESERVATION s
        self.billed_s = billed_s  # priced, after step_size; same units
        self.unpriced = unpriced  # dimension -> volume (kWh / hours) that no element priced
        self._line_src = line_src
        self._lines: tuple[TariffLine, ...] | None = None
        self._exact: dict[str, PriceAmount] | None = None
        self.session_us = session_us  # the session's duration, end - start (µs)
        self.tariff_ids = tariff_ids  # every tariff that priced a period, in order of first use
        self.subtotals = subtotals  # per tariff, when the session switched tariffs
        self.warnings = warnings

    def with_warnings(self, warnings: Sequence[str]) -> TariffResult:
        """The same result with other warnings."""
        return TariffResult(
            currency=self.currency, tariff_id=self.tariff_id, time_zone=self.time_zone,
            quantum=self.quantum, sx=self._sx, si=self._si, total=self._tot, raw=self._raw,
            price_limit=self.price_limit, consumed_s=self.consumed_s, billed_s=self.billed_s,
            unpriced=self.unpriced, line_src=self._line_src, session_us=self.session_us,
            tariff_ids=self.tariff_ids, subtotals=self.subtotals, warnings=tuple(warnings))

    @property
    def exact(self) -> dict[str, PriceAmount]:
        """The amounts unrounded: total_cost, total_energy_cost, ... (keys as the CDR's)."""
        if self._exact is None:
            sx, si = self._sx, self._si
            self._exact = {
                "total_cost": PriceAmount(*self._tot),
                "total_energy_cost": PriceAmount(sx[ENERGY], si[ENERGY]),
                "total_time_cost": PriceAmount(sx[TIME], si[TIME]),
                "total_parking_cost": PriceAmount(sx[PARKING], si[PARKING]),
                "total_fixed_cost": PriceAmount(sx[FLAT], si[FLAT]),
                "total_reservation_cost": PriceAmount(sx[RES_TIME] + sx[RES_FLAT],
                                                      si[RES_TIME] + si[RES_FLAT]),
            }
        return self._exact

    @property
    def min_max_adjustment(self) -> PriceAmount:
        """Exact; what min_price / max_price changed, applied after the components."""
        return PriceAmount(self._tot[0] - self._raw[0], self._tot[1] - self._raw[1])

    @property
    def lines(self) -> tuple[TariffLine, ...]:
        """Per (tariff, element, component): volume, quantity, cost, span; in time order."""
        if self._lines is None:
            cur = self.currency
            out = [
                TariffLine(
                    _DIM_TYPES[c.code], c.code >= RES_TIME and c.code != FLAT, c.element_index, c.comp_index,
                    c.price, c.vat, c.step, volume, quantity, PriceAmount(excl, incl), cur, a, b, tid,
                )
                for c, volume, quantity, excl, incl, a, b, tid in self._line_src
            ]
            if len(out) > 1:
                out.sort(key=_line_order)
            self._lines = tuple(out)
        return self._lines

    # Rounded amounts and hour conversions are computed on access: the hot
    # path (a `track` update, a quote search) often needs only one of them.
    @property
    def total_cost(self) -> PriceAmount:
        return PriceAmount(*self._tot).quantized(self.quantum)

    @property
    def total_energy_cost(self) -> PriceAmount:
        return self.exact["total_energy_cost"].quantized(self.quantum)

    @property
    def total_time_cost(self) -> PriceAmount:
        return self.exact["total_time_cost"].quantized(self.quantum)

    @property
    def total_parking_cost(self) -> PriceAmount:
        return self.exact["total_parking_cost"].quantized(self.quantum)

    @property
    def total_fixed_cost(self) -> PriceAmount:
        return self.exact["total_fixed_cost"].quantized(self.quantum)

    @property
    def total_reservation_cost(self) -> PriceAmount:
        return self.exact["total_reservation_cost"].quantized(self.quantum)

    # Figures named as the CDR object names them (mod_cdrs §10.3.1 CDR object).
    @property
    def total_energy(self) -> Decimal:
        """CDR `total_energy`: kWh charged (all periods)."""
        return self.consumed_s[ENERGY]

    @property
    def total_time(self) -> Decimal:
        """CDR `total_time`: hours of the whole session, charging and not charging
        (end - start), not only the TIME volume."""
        return Decimal(self.session_us) / _HOUR_US if self.session_us > 0 else ZERO

    @property
    def total_parking_time(self) -> Decimal:
        """CDR `total_parking_time`: hours not charging (the PARKING_TIME volumes)."""
        return _hours(self.consumed_s[PARKING])

    @property
    def total_charging_time(self) -> Decimal:
        """The CDR chapter's `total_charging_time = total_time - total_parking_time`
        (its note under the CDR object), never below zero."""
        return max(self.total_time - self.total_parking_time, ZERO)

    # Volumes per CdrDimensionType, as the periods report them.
    @property
    def time_volume(self) -> Decimal:
        """Hours of the TIME dimension ("time charging" as the periods report it):
        what TIME price components price. Differs from `total_charging_time` when
        periods report neither TIME nor PARKING_TIME for part of the session."""
        return _hours(self.consumed_s[TIME])

    @property
    def reservation_time_volume(self) -> Decimal:
        """Hours of the RESERVATION_TIME dimension."""
        return _hours(self.consumed_s[RES_TIME])

    @property
    def billed_energy(self) -> Decimal:
        """kWh billed: priced energy after step_size."""
        return self.billed_s[ENERGY]

    @property
    def billed_time(self) -> Decimal:
        return _hours(self.billed_s[TIME])

    @property
    def billed_parking_time(self) -> Decimal:
        return _hours(self.billed_s[PARKING])

    @property
    def billed_reservation_time(self) -> Decimal:
        return _hours(self.billed_s[RES_TIME])

    def to_json(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "tariff_id": self.tariff_id,
            "tariff_ids": list(self.tariff_ids),
            "time_zone": self.time_zone,
            "total_cost": self.total_cost.to_json(),
            "total_energy_cost": self.total_energy_cost.to_json(),
            "total_time_cost": self.total_time_cost.to_json(),
            "total_parking_cost": self.total_parking_cost.to_json(),
            "total_fixed_cost": self.total_fixed_cost.to_json(),
            "total_reservation_cost": self.total_reservation_cost.to_json(),
            "price_limit": self.price_limit,
            # the CDR object's names (mod_cdrs), and its note's total_charging_time
            "total_energy": _qty_json(self.total_energy),
            "total_time": _qty_json(self.total_time),
            "total_charging_time": _qty_json(self.total_charging_time),
            "total_parking_time": _qty_json(self.total_parking_time),
            # per CdrDimensionType: consumed as the periods report it, and billed (priced,
            # after step_size); kWh for ENERGY, hours otherwise
            "volumes": {
                "ENERGY": _qty_json(self.total_energy),
                "TIME": _qty_json(self.time_volume),
                "PARKING_TIME": _qty_json(self.total_parking_time),
                "RESERVATION_TIME": _qty_json(self.reservation_time_volume),
            },
            "billed": {
                "ENERGY": _qty_json(self.billed_energy),
                "TIME": _qty_json(self.billed_time),
                "PARKING_TIME": _qty_json(self.billed_parking_time),
                "RESERVATION_TIME": _qty_json(self.billed_reservation_time),
            },
            "unpriced": {k: _qty_json(v) for k, v in self.unpriced.items()},
            "lines": [line.to_json() for line in self.lines],
            "subtotals": [t.to_json() for t in self.subtotals],
            "warnings": list(self.warnings),
        }


def _qty_json(value: Decimal) -> float:
    return decimal_to_json(value.quantize(_FINE).normalize() if value else ZERO)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- engine


def _segments(tz: ZoneInfo, lo: int, hi: int) -> list[tuple[int, int]]:
    """[(from_us, utc_offset_us)] covering [lo, hi]: one entry unless the offset changes."""
    off_lo = _offset_us(tz, lo)
    off_hi = _offset_us(tz, hi)
    if off_lo == off_hi and hi - lo < 30 * DAY_US:  # two transitions need months between them
        return [(lo, off_lo)]
    segs = [(lo, off_lo)]
    t, cur = lo, off_lo
    while t < hi:
        nt = min(t + DAY_US, hi)
        o = _offset_us(tz, nt)
        if o != cur:
            a, b = t, nt  # offset(a) == cur, offset(b) != cur: find the first µs of the new offset
            while b - a > 1:
                m = (a + b) // 2
                if _offset_us(tz, m) == cur:
                    a = m
                else:
                    b = m
            segs.append((b, o))
            cur = o
        t = nt
    return segs


def _offset_at(segs: list[tuple[int, int]], us: int) -> int:
    off = segs[0][1]
    for start, o in segs:
        if us >= start:
            off = o
        else:
            break
    return off


def _global_cuts(ct: CompiledTariff, segs: list[tuple[int, int]], lo: int, hi: int, start: int) -> list[int]:
    """Sorted instants strictly inside (lo, hi) where a time restriction may change."""
    cuts: set[int] = set()
    if ct.needs_local:
        tods = ct.tod_cuts
        for si, (s_from, off) in enumerate(segs):
            a = lo if si == 0 else s_from
            b = segs[si + 1][0] if si + 1 < len(segs) else hi
            if si:
                cuts.add(s_from)  # the UTC offset changes: local time jumps
            if a >= b:
                continue
            for day in range((a + off) // DAY_US, (b + off - 1) // DAY_US + 1):
                base = day * DAY_US - off
                for t in tods:
                    u = base + t
                    if a < u < b:
                        cuts.add(u)
    for d in ct.duration_cuts:
        cuts.add(start + d)
    return sorted(u for u in cuts if lo < u < hi)


def _local_cuts(ct: CompiledTariff, time_zone: str, day_lo: int, day_hi: int, lo: int, hi: int) -> list[int]:
    """`_global_cuts` of a tariff without duration cuts, from the days' cuts computed
    once per (tariff, zone, days) and kept on the compiled tariff."""
    key = (time_zone, day_lo, day_hi)
    day_cuts = ct.cut_cache.get(key)
    if day_cuts is None:
        whole = _day_segments(time_zone, day_lo, day_hi)
        day_cuts = _global_cuts(ct, whole, day_lo * DAY_US, (day_hi + 1) * DAY_US, 0)
        if len(ct.cut_cache) >= 1024:
            ct.cut_cache.clear()
        ct.cut_cache[key] = day_cuts
    return day_cuts[bisect_right(day_cuts, lo):bisect_left(day_cuts, hi)]


@lru_cache(maxsize=4096)
def _day_segments(time_zone: str, day_lo: int, day_hi: int) -> list[tuple[int, int]]:
    # A pure function of its arguments, memoised: most sessions share a day.
    return _segments(zone(time_zone), day_lo * DAY_US, (day_hi + 1) * DAY_US)


def _lo_hi(
    avg: Decimal | None, lo: Decimal | None, hi: Decimal | None
) -> tuple[Decimal | None, Decimal | None]:
    """The value a min_* limit and a max_* limit are compared with.

    The period's average (Session CURRENT/POWER) if known, otherwise the
    period's MIN_* for a lower limit and MAX_* for an upper limit (CDR
    periods are split where the value crosses a limit, mod_cdrs §10.4.6).
    """
    if avg is not None:
        return avg, avg
    return (lo if lo is not None else hi), (hi if hi is not None else lo)


def _pick(cands: tuple[_Candidate, ...], local: int, dur: int, kwh: Decimal,
          clo: Decimal | None, chi: Decimal | None, plo: Decimal | None, phi: Decimal | None,
          ) -> _Candidate | None:
    for c in cands:
        r = c.restriction
        if r is None or r.active(local, dur, kwh, clo, chi, plo, phi):
            return c
    return None


_WHOLE = ((ZERO, ONE, 0, 0),)  # one piece: the whole period (a, b set from the period)
_D_ENERGY = CdrDimensionType.ENERGY
_D_TIME = CdrDimensionType.TIME
_D_PARKING = CdrDimensionType.PARKING_TIME
_D_RES = CdrDimensionType.RESERVATION_TIME
_D_IMPORT = CdrDimensionType.ENERGY_IMPORT
_D_LIMITS = {
    CdrDimensionType.CURRENT: 0, CdrDimensionType.MIN_CURRENT: 1, CdrDimensionType.MAX_CURRENT: 2,
    CdrDimensionType.POWER: 3, CdrDimensionType.MIN_POWER: 4, CdrDimensionType.MAX_POWER: 5,
}


def price(
    tariff: Tariff | CompiledTariff,
    periods: Sequence[ChargingPeriod],
    *,
    start: datetime,
    end: datetime,
    time_zone: str,
    reservation: ReservationRestrictionType | None = None,
) -> TariffResult:
    """Price `periods` of a session from `start` to `end` under `tariff`.

    `time_zone` is the Location's IANA `time_zone` (§8.3.1); restrictions are
    evaluated in it. `reservation` says whether the session began with a
    reservation that was used (RESERVATION) or expired unused
    (RESERVATION_EXPIRES); None with RESERVATION_TIME volumes present means
    RESERVATION. Reservation time is priced only by reservation elements and
    charging only by the other elements (§11.4.6 `reservation`).
    """
    ct = tariff if isinstance(tariff, CompiledTariff) else _compile_cached(tariff)
    zone(time_zone)  # an unknown zone is an error even for a tariff without time restrictions
    epoch, one_us = _EPOCH, _ONE_US
    start_us = (start - epoch) // one_us if start.tzinfo is not None else _to_us(start)
    end_us = (end - epoch) // one_us if end.tzinfo is not None else _to_us(end)
    # _to_us inlined: ChargingPeriod datetimes are always aware UTC (models.DateTime),
    # and a timedelta divided by 1 µs is exact.
    starts = [(p.start_date_time - epoch) // one_us for p in periods]
    if starts != sorted(starts):
        order = sorted(range(len(starts)), key=starts.__getitem__)
        periods = [periods[i] for i in order]
        starts = [starts[i] for i in order]
    qty, span, unpriced, last_energy, last_time, last_res = _accumulate(
        ct, periods, starts, start_us, end_us, time_zone, reservation, None)

    # Priced totals per dimension (kWh, s, s, s), from the per-component sums.
    priced = [ZERO, ZERO, ZERO, ZERO]
    for c, q in qty.items():
        if c.code < FLAT:
            priced[c.code] += q
    consumed = [priced[x] + unpriced[x] for x in range(4)]
    billed, extras = _steps(priced, last_energy, last_time, last_res)
    n = len(starts)
    outside = (
        _outside_warnings(starts, start_us, end_us)
        if n and (starts[0] < start_us or starts[-1] > end_us) else ()
    )
    return _finish(((ct, qty),), time_zone, extras, span, consumed, billed, unpriced, start, end,
                   end_us - start_us, outside)


def price_by_period(
    tariffs: Sequence[Tariff | CompiledTariff | None],
    periods: Sequence[ChargingPeriod],
    *,
    start: datetime,
    end: datetime,
    time_zone: str,
    reservation: ReservationRestrictionType | None = None,
) -> TariffResult:
    """Price a session that switches tariffs: period *i* with `tariffs[i]`.

    mod_cdrs ChargingPeriod `tariff_id`: "the Tariff that is relevant for this
    Charging Period. If not provided, no Tariff is relevant during this
    period": a None entry leaves that period unpriced (reported in `unpriced`
    and in a warning). Each tariff prices its own periods as the tariffs
    chapter says for one tariff (its elements, its FLAT once per phase, its
    `min_price` / `max_price` bounding what it prices), with restrictions
    evaluated on the session (durations from its start, energy from its first
    kWh). step_size is applied once per session, not at a switch (mod_cdrs
    "step_size": "not taken into account when switching between two
    Tariffs"): the session's total of each group is rounded up to the step of
    the last priced piece's component, whichever tariff it belongs to. The
    total is rounded once.
    """
    if len(tariffs) != len(periods):
        raise ValueError("one tariff (or None) per charging period")
    zone(time_zone)
    cts = [None if t is None else t if isinstance(t, CompiledTariff) else _compile_cached(t) for t in tariffs]
    distinct: list[CompiledTariff] = []
    for ct in cts:
        if ct is not None and not any(ct is d for d in distinct):
            distinct.append(ct)
    if not distinct:
        raise TariffError("no charging period names a tariff: nothing to price it with")
    if len(distinct) == 1 and None not in cts:
        return price(distinct[0], periods, start=start, end=end, time_zone=time_zone, reservation=reservation)
    start_us = _to_us(start)
    end_us = _to_us(end)
    starts = [_to_us(p.start_date_time) for p in periods]
    order = sorted(range(len(starts)), key=starts.__getitem__)
    periods = [periods[i] for i in order]
    starts = [starts[i] for i in order]
    cts = [cts[i] for i in order]
    distinct.sort(key=lambda d: next(i for i, c in enumerate(cts) if c is d))

    parts: list[tuple[CompiledTariff, dict[_Candidate, Decimal]]] = []
    spans: dict[_Candidate, list[int]] = {}
    unpriced = [ZERO, ZERO, ZERO, ZERO]
    # The last priced piece of each step group over the whole session: (end, period index, candidate).
    last: list[tuple[int, int, _Candidate] | None] = [None, None, None]
    part_starts: list[datetime] = []
    for d in distinct:
        mask = [c is d for c in cts]
        qty, span, unp, le, lt, lr = _accumulate(
            d, periods, starts, start_us, end_us, time_zone, reservation, mask)
        parts.append((d, qty))
        spans.update(span)
        for x in range(4):
            unpriced[x] += unp[x]
        last_i = max(i for i, m in enumerate(mask) if m)
        part_starts.append(_from_us(starts[mask.index(True)]))
        for g, c in enumerate((le, lt, lr)):
            if c is not None:
                key = (span[c][1], last_i, c)
                best = last[g]
                if best is None or key[:2] > best[:2]:
                    last[g] = key
    free = [i for i, c in enumerate(cts) if c is None]
    for i in free:
        vols = _volumes(periods[i])
        for x in range(4):
            unpriced[x] += vols[x]
    priced = [ZERO, ZERO, ZERO, ZERO]
    for _, qty in parts:
        for c, q in qty.items():
            if c.code < FLAT:
                priced[c.code] += q
    consumed = [priced[x] + unpriced[x] for x in range(4)]
    billed, extras = _steps(priced, *(None if g is None else g[2] for g in last))
    outside = starts[0] < start_us or starts[-1] > end_us
    warnings = _outside_warnings(starts, start_us, end_us) if outside else ()
    if free:
        which = ", ".join(str(i + 1) for i in free)
        warnings += (f"charging periods {which}: no tariff_id, not priced "
                     "(mod_cdrs: no Tariff is relevant during such a period)",)
    return _finish(parts, time_zone, extras, spans, consumed, billed, unpriced, start, end,
                   end_us - start_us, warnings, part_starts)


def _volumes(p: ChargingPeriod) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """ENERGY (kWh) and TIME, PARKING_TIME, RESERVATION_TIME (s) of a period, as
    the engine reads them (ENERGY_IMPORT when there is no ENERGY; no negatives)."""
    e = ts = pks = rvs = ZERO
    e_import: Decimal | None = None
    for dim in p.dimensions:
        ty = dim.type
        if ty is _D_ENERGY:
            e = dim.volume
        elif ty is _D_TIME:
            ts = dim.volume * HOUR_S
        elif ty is _D_PARKING:
            pks = dim.volume * HOUR_S
        elif ty is _D_RES:
            rvs = dim.volume * HOUR_S
        elif ty is _D_IMPORT:
            e_import = dim.volume
    if not e and e_import is not None:
        e = e_import
    return max(e, ZERO), max(ts, ZERO), max(pks, ZERO), max(rvs, ZERO)


def _accumulate(
    ct: CompiledTariff,
    periods: Sequence[ChargingPeriod],
    starts: list[int],
    start_us: int,
    end_us: int,
    time_zone: str,
    reservation: ReservationRestrictionType | None,
    mask: Sequence[bool] | None,
) -> tuple[dict[_Candidate, Decimal], dict[_Candidate, list[int]], list[Decimal],
           _Candidate | None, _Candidate | None, _Candidate | None]:
    """Walk the (sorted) periods and sum what each candidate prices.

    With `mask`, only the periods marked True are priced (the others belong to
    another tariff); they still count for the session's cumulative energy, and
    durations count from the session's start, so restrictions see the session.
    Returns (quantities, spans, unpriced volumes, and the candidates of the
    last priced ENERGY, TIME/PARKING_TIME and RESERVATION_TIME pieces).
    """
    n = len(periods)
    lo = min(start_us, starts[0]) if n else start_us
    hi = max(end_us, starts[-1]) if n else end_us
    needs_local = ct.needs_local
    if needs_local:
        segs = _day_segments(time_zone, lo // DAY_US, hi // DAY_US)
        if len(segs) > 1:
            segs = [sg for k, sg in enumerate(segs) if k + 1 == len(segs) or segs[k + 1][0] > lo]
    else:
        segs = [(lo, 0)]
    single_off = segs[0][1] if len(segs) == 1 else None
    if ct.duration_cuts:
        gcuts = _global_cuts(ct, segs, lo, hi, start_us)
    elif needs_local:
        gcuts = _local_cuts(ct, time_zone, lo // DAY_US, hi // DAY_US, lo, hi)
    else:
        gcuts = []
    ncuts = len(gcuts)
    kwh_cuts = ct.kwh_cuts
    charging = ct.charging
    c_energy, c_time, c_parking, c_flat = charging[ENERGY], charging[TIME], charging[PARKING], charging[FLAT]
    expired = reservation is ReservationRestrictionType.RESERVATION_EXPIRES
    if expired:
        # The RESERVATION_EXPIRES element wins for an expired reservation
        # (§11.4.7 note), whatever the order; RESERVATION elements still apply.
        c_res = ct.expires + ct.reservation
        c_res_flat = ct.expires_flat + ct.reservation_flat
    else:
        c_res = ct.reservation
        c_res_flat = ct.reservation_flat
    needs_power = ct.needs_power
    needs_current = ct.needs_current
    # Time-only tariffs: the choice per dimension is constant between two
    # consecutive cuts ("regime"), so it is looked up once per regime.
    time_only = not (kwh_cuts or needs_power or needs_current)
    regimes: list[list[_Candidate | None] | None] = [None] * (ncuts + 1)
    all_cands = (c_energy, c_time, c_parking, c_res, c_flat, c_res_flat)
    if time_only:
        return _accumulate_by_regime(
            ct, periods, starts, start_us, end_us, mask, segs, single_off, gcuts, regimes, all_cands,
            needs_local, expired, reservation)
    lazy = not time_only  # otherwise: pick per piece, only the dimensions it has
    kwh = ZERO

    qty: dict[_Candidate, Decimal] = {}
    span: dict[_Candidate, list[int]] = {}
    unpriced = [ZERO, ZERO, ZERO, ZERO]
    last_energy: _Candidate | None = None
    last_time: _Candidate | None = None
    last_res: _Candidate | None = None
    flat_done = expired or not c_flat  # no charging FLAT after an expired reservation
    res_flat_done = not c_res_flat
    saw_charging = saw_res = False
    cum_kwh = ZERO
    clo = chi = plo = phi = None
    local = 0
    k = 0  # number of global cuts <= the current period's start
    sel: list[_Candidate | None] = [None] * 6

    for i in range(n):
        p = periods[i]
        ps = starts[i]
        pe = starts[i + 1] if i + 1 < n else end_us
        if pe < ps:
            pe = ps
        # ---- volumes of the period (inlined: this loop is the hot path)
        e = ts = pks = rvs = ZERO
        e_import: Decimal | None = None
        limits: list[Decimal | None] | None = None
        for dim in p.dimensions:
            ty = dim.type
            if ty is _D_ENERGY:
                e = dim.volume
            elif ty is _D_TIME:
                ts = dim.volume * HOUR_S
            elif ty is _D_PARKING:
                pks = dim.volume * HOUR_S
            elif ty is _D_RES:
                rvs = dim.volume * HOUR_S
            elif ty is _D_IMPORT:
                e_import = dim.volume
            else:
                li = _D_LIMITS.get(ty)
                if li is not None:
                    if limits is None:
                        limits = [None] * 6
                    limits[li] = dim.volume
        if not e and e_import is not None:
            e = e_import  # Sessions may only report ENERGY_IMPORT
        # Negative volumes (energy fed back to the grid) are not billed by a tariff.
        if e < ZERO or ts < ZERO or pks < ZERO or rvs < ZERO:
            e, ts, pks, rvs = max(e, ZERO), max(ts, ZERO), max(pks, ZERO), max(rvs, ZERO)
        if mask is not None and not mask[i]:
            cum_kwh += e  # another tariff's period: still the session's energy
            continue
        if needs_current:
            clo, chi = _lo_hi(*(limits[0:3] if limits else (None, None, None)))
        if needs_power:
            pw, pmin, pmax = limits[3:6] if limits else (None, None, None)
            if pw is None and pmin is None and pmax is None and e > 0:
                hours = ts / HOUR_S if ts > 0 else Decimal(pe - ps) / (HOUR_S * US)
                pw = e / hours if hours > 0 else None  # average power of the period
            plo, phi = _lo_hi(pw, pmin, pmax)

        # ---- split points inside the period, as (fraction, instant)
        while k < ncuts and gcuts[k] <= ps:
            k += 1
        j = k
        while j < ncuts and gcuts[j] < pe:
            j += 1
        ecuts: list[Decimal] | None = None
        if kwh_cuts and e > 0:
            e1 = cum_kwh + e
            ecuts = [(kc - cum_kwh) / e for kc in kwh_cuts if cum_kwh < kc < e1]
        if j == k and not ecuts:
            pieces: Iterable[tuple[Decimal, Decimal, int, int]] = _WHOLE
            split = False
        else:
            dur = pe - ps
            dd = Decimal(dur)
            marks = {Decimal(u - ps) / dd: u for u in gcuts[k:j]}
            for f in ecuts or ():
                marks.setdefault(f, ps + int(f * dur))
            plist = []
            f0, u0 = ZERO, ps
            for f in sorted(marks):
                u = marks[f]
                plist.append((f0, f, u0, u))
                f0, u0 = f, u
            plist.append((f0, ONE, u0, pe))
            pieces = plist
            split = True

        regime = k
        for f0, f1, a, b in pieces:
            if split:
                se = e * f1 - e * f0 if e else ZERO
                sts = ts * f1 - ts * f0 if ts else ZERO
                spk = pks * f1 - pks * f0 if pks else ZERO
                srv = rvs * f1 - rvs * f0 if rvs else ZERO
            else:
                se, sts, spk, srv, a, b = e, ts, pks, rvs, ps, pe
            if time_only:
                got = regimes[regime]
                if got is None:
                    mid = (a + b) // 2
                    if needs_local:
                        local = mid + (single_off if single_off is not None else _offset_at(segs, mid))
                    d_us = mid - start_us
                    got = [_pick(cs, local, d_us, ZERO, None, None, None, None) for cs in all_cands]
                    regimes[regime] = got
                sel = got
                regime += 1
            else:
                mid = (a + b) // 2
                if needs_local:
                    local = mid + (single_off if single_off is not None else _offset_at(segs, mid))
                d_us = mid - start_us
                kwh = cum_kwh + se * _HALF if se else cum_kwh
            if srv and not (se or sts or spk):
                saw_res = True
            else:
                saw_charging = True
                if not flat_done:
                    c = _pick(c_flat, local, d_us, kwh, clo, chi, plo, phi) if lazy else sel[4]
                    if c is not None:
                        qty[c] = ONE
                        span[c] = [a, b]
                        flat_done = True
            if se:
                c = _pick(c_energy, local, d_us, kwh, clo, chi, plo, phi) if lazy else sel[0]
                if c is None:
                    unpriced[ENERGY] += se
                else:
                    q = qty.get(c)
                    if q is None:
                        qty[c] = se
                        span[c] = [a, b]
                    else:
                        qty[c] = q + se
                        span[c][1] = b
                    last_energy = c
                cum_kwh += se
            if sts:
                c = _pick(c_time, local, d_us, kwh, clo, chi, plo, phi) if lazy else sel[1]
                if c is None:
                    unpriced[TIME] += sts
                else:
                    q = qty.get(c)
                    if q is None:
                        qty[c] = sts
                        span[c] = [a, b]
                    else:
                        qty[c] = q + sts
                        span[c][1] = b
                    last_time = c
            if spk:
                c = _pick(c_parking, local, d_us, kwh, clo, chi, plo, phi) if lazy else sel[2]
                if c is None:
                    unpriced[PARKING] += spk
                else:
                    q = qty.get(c)
                    if q is None:
                        qty[c] = spk
                        span[c] = [a, b]
                    else:
                        qty[c] = q + spk
                        span[c][1] = b
                    last_time = c
            if srv:
                c = _pick(c_res, local, d_us, kwh, clo, chi, plo, phi) if lazy else sel[3]
                if c is None:
                    unpriced[RES_TIME] += srv
                else:
                    q = qty.get(c)
                    if q is None:
                        qty[c] = srv
                        span[c] = [a, b]
                    else:
                        qty[c] = q + srv
                        span[c][1] = b
                    last_res = c
                if not res_flat_done:
                    c = _pick(c_res_flat, local, d_us, kwh, clo, chi, plo, phi) if lazy else sel[5]
                    if c is not None:
                        qty[c] = ONE
                        span[c] = [a, b]
                        res_flat_done = True

    # FLAT of a phase that has no piece of its own: evaluated at the phase's start.
    if not res_flat_done and (reservation is not None) and not saw_res:
        at = start_us
        c = _pick(c_res_flat, at + _offset_at(segs, at), 0, ZERO, None, None, None, None)
        if c is not None:
            qty[c] = ONE
            span[c] = [at, at]
    if not flat_done and not saw_charging:
        at = end_us if (reservation is not None or saw_res) else start_us
        c = _pick(c_flat, at + _offset_at(segs, at), at - start_us, cum_kwh, None, None, None, None)
        if c is not None:
            qty[c] = ONE
            span[c] = [at, at]

    return qty, span, unpriced, last_energy, last_time, last_res


def _tod_table(ct: CompiledTariff, expired: bool,
               all_cands: tuple[tuple[_Candidate, ...], ...]) -> list[list[_Candidate | None]]:
    """For a `tod_only` tariff: the choice per dimension in each interval between two
    consecutive time-of-day boundaries (`tod_cuts`, cyclic over midnight), evaluated at
    the interval's middle. Restrictions are constant inside an interval, so this is the
    choice anywhere in it. Index: bisect_right(tod_cuts, time of day) - 1 (-1: the last)."""
    table = ct.tod_tables.get(expired)
    if table is None:
        cuts = ct.tod_cuts or (0,)
        table = []
        for i, c0 in enumerate(cuts):
            c1 = cuts[i + 1] if i + 1 < len(cuts) else cuts[0] + DAY_US
            mid = (c0 + c1) // 2 % DAY_US
            table.append([_pick(cs, mid, 0, ZERO, None, None, None, None) for cs in all_cands])
        ct.tod_tables[expired] = table
    return table


def _accumulate_by_regime(
    ct: CompiledTariff,
    periods: Sequence[ChargingPeriod],
    starts: list[int],
    start_us: int,
    end_us: int,
    mask: Sequence[bool] | None,
    segs: list[tuple[int, int]],
    single_off: int | None,
    gcuts: list[int],
    regimes: list[list[_Candidate | None] | None],
    all_cands: tuple[tuple[_Candidate, ...], ...],
    needs_local: bool,
    expired: bool,
    reservation: ReservationRestrictionType | None,
) -> tuple[dict[_Candidate, Decimal], dict[_Candidate, list[int]], list[Decimal],
           _Candidate | None, _Candidate | None, _Candidate | None]:
    """`_accumulate` for tariffs whose restrictions are all time-based (the common case).

    The element chosen for each dimension depends only on the stretch between two
    consecutive time boundaries (a "regime"), so consecutive pieces of one regime are
    added up in local variables and recorded once per regime, not per period. Same
    pieces, same choices, same sums as the general walk (a property test compares
    them). This loop is the engine's hot path: names are bound locally on purpose.
    """
    c_flat, c_res_flat = all_cands[4], all_cands[5]
    table = _tod_table(ct, expired, all_cands) if ct.tod_only else None
    tod_cuts = ct.tod_cuts
    qty: dict[_Candidate, Decimal] = {}
    span: dict[_Candidate, list[int]] = {}
    unpriced = [ZERO, ZERO, ZERO, ZERO]
    last_energy: _Candidate | None = None
    last_time: _Candidate | None = None
    last_res: _Candidate | None = None
    flat_done = expired or not c_flat  # no charging FLAT after an expired reservation
    res_flat_done = not c_res_flat
    saw_charging = saw_res = False
    zero = ZERO
    hour = HOUR_S
    d_energy, d_time, d_parking, d_res, d_import = _D_ENERGY, _D_TIME, _D_PARKING, _D_RES, _D_IMPORT
    ncuts = len(gcuts)
    n = len(periods)
    k = 0  # number of global cuts <= the current period's start
    cur = -1  # the regime being summed
    g_e = g_t = g_p = g_r = g_f = g_rf = None  # its choice per dimension
    got: list[_Candidate | None] = [None] * 6
    # The current regime's sums (kWh, hours), the first and last instant of each.
    re = rt = rp = rr = zero
    rea = reb = rta = rtb = rpa = rpb = rra = rrb = 0
    ue = ut = up = ur = zero  # what no element priced (kWh, hours)
    tp_last = 0  # which of TIME (1) / PARKING_TIME (2) was priced last in the regime
    for i in range(n):
        if mask is not None and not mask[i]:
            continue  # another tariff's period (a time-only tariff needs no energy count)
        a = starts[i]
        b = starts[i + 1] if i + 1 < n else end_us
        if b < a:
            b = a
        e = ts = pks = rvs = zero
        e_import: Decimal | None = None
        negative = False
        for dim in periods[i].dimensions:
            ty = dim.type
            v = dim.volume
            if v < zero:
                negative = True
            if ty is d_energy:
                e = v
            elif ty is d_time:
                ts = v  # hours here: a regime's sum is turned into seconds once
            elif ty is d_parking:
                pks = v
            elif ty is d_res:
                rvs = v
            elif ty is d_import:
                e_import = v
        if not e and e_import is not None:
            e = e_import  # Sessions may only report ENERGY_IMPORT
        if negative:  # energy fed back to the grid (negative volumes) is not billed by a tariff
            e, ts, pks, rvs = max(e, zero), max(ts, zero), max(pks, zero), max(rvs, zero)
        while k < ncuts and gcuts[k] <= a:
            k += 1
        j = k
        while j < ncuts and gcuts[j] < b:
            j += 1
        reg = k
        pieces: list[tuple[int, int, Decimal, Decimal, Decimal, Decimal]] | None = None
        if j != k:
            # Split at the boundaries inside the period; volumes spread evenly over it.
            dd = Decimal(b - a)
            pieces = []
            f0, u0 = zero, a
            for u in gcuts[k:j]:
                f = Decimal(u - a) / dd
                pieces.append((u0, u, e * f - e * f0 if e else zero, ts * f - ts * f0 if ts else zero,
                               pks * f - pks * f0 if pks else zero, rvs * f - rvs * f0 if rvs else zero))
                f0, u0 = f, u
            pieces.append((u0, b, e - e * f0 if e else zero, ts - ts * f0 if ts else zero,
                           pks - pks * f0 if pks else zero, rvs - rvs * f0 if rvs else zero))
            a, b, e, ts, pks, rvs = pieces[0]
        piece = 0
        while True:  # the period, or each of its pieces
            if reg != cur:
                if cur >= 0:  # record the regime just ended
                    le, lt, lr = _record_regime(qty, span, got, re, rea, reb, rt, rta, rtb, rp, rpa, rpb,
                                                tp_last, rr, rra, rrb)
                    last_energy = le or last_energy
                    last_time = lt or last_time
                    last_res = lr or last_res
                    re = rt = rp = rr = zero
                cur = reg
                sel = regimes[reg]
                if sel is None:
                    mid = (a + b) // 2
                    local = mid + (single_off if single_off is not None else _offset_at(segs, mid)) \
                        if needs_local else 0
                    if table is not None:
                        sel = table[bisect_right(tod_cuts, local % DAY_US) - 1]
                    else:
                        sel = [_pick(cs, local, mid - start_us, ZERO, None, None, None, None)
                               for cs in all_cands]
                    regimes[reg] = sel
                got = sel
                g_e, g_t, g_p, g_r, g_f, g_rf = sel
            if rvs and not (e or ts or pks):
                saw_res = True
            else:
                saw_charging = True
                if not flat_done and g_f is not None:
                    qty[g_f] = ONE
                    span[g_f] = [a, b]
                    flat_done = True
            if e:
                if g_e is None:
                    ue += e
                else:
                    if not re:
                        rea = a
                    re += e
                    reb = b
            if ts:
                if g_t is None:
                    ut += ts
                else:
                    if not rt:
                        rta = a
                    rt += ts
                    rtb = b
                    tp_last = 1
            if pks:
                if g_p is None:
                    up += pks
                else:
                    if not rp:
                        rpa = a
                    rp += pks
                    rpb = b
                    tp_last = 2
            if rvs:
                if g_r is None:
                    ur += rvs
                else:
                    if not rr:
                        rra = a
                    rr += rvs
                    rrb = b
                if not res_flat_done and g_rf is not None:
                    qty[g_rf] = ONE
                    span[g_rf] = [a, b]
                    res_flat_done = True
            if pieces is None:
                break
            piece += 1
            if piece == len(pieces):
                break
            a, b, e, ts, pks, rvs = pieces[piece]
            reg += 1
    if cur >= 0:
        le, lt, lr = _record_regime(qty, span, got, re, rea, reb, rt, rta, rtb, rp, rpa, rpb, tp_last,
                                    rr, rra, rrb)
        last_energy = le or last_energy
        last_time = lt or last_time
        last_res = lr or last_res
    if ue or ut or up or ur:
        unpriced = [ue, ut * hour, up * hour, ur * hour]

    # FLAT of a phase that has no piece of its own: evaluated at the phase's start
    # (no charging piece: no energy either).
    if not res_flat_done and (reservation is not None) and not saw_res:
        at = start_us
        c = _pick(c_res_flat, at + _offset_at(segs, at), 0, ZERO, None, None, None, None)
        if c is not None:
            qty[c] = ONE
            span[c] = [at, at]
    if not flat_done and not saw_charging:
        at = end_us if (reservation is not None or saw_res) else start_us
        c = _pick(c_flat, at + _offset_at(segs, at), at - start_us, ZERO, None, None, None, None)
        if c is not None:
            qty[c] = ONE
            span[c] = [at, at]
    return qty, span, unpriced, last_energy, last_time, last_res


def _record_regime(
    qty: dict[_Candidate, Decimal], span: dict[_Candidate, list[int]], got: list[_Candidate | None],
    re: Decimal, rea: int, reb: int, rt: Decimal, rta: int, rtb: int, rp: Decimal, rpa: int, rpb: int,
    tp_last: int, rr: Decimal, rra: int, rrb: int,
) -> tuple[_Candidate | None, _Candidate | None, _Candidate | None]:
    """Record one regime's sums (kWh; hours, recorded in seconds); the candidates of its
    last ENERGY, TIME / PARKING_TIME and RESERVATION_TIME pieces (None where it had none)."""
    le = _record(qty, span, got[0], re, rea, reb) if re else None
    ct_ = _record(qty, span, got[1], rt * HOUR_S, rta, rtb) if rt else None
    cp = _record(qty, span, got[2], rp * HOUR_S, rpa, rpb) if rp else None
    lr = _record(qty, span, got[3], rr * HOUR_S, rra, rrb) if rr else None
    return le, (cp if tp_last == 2 else ct_) if (rt or rp) else None, lr


def _record(qty: dict[_Candidate, Decimal], span: dict[_Candidate, list[int]], c: _Candidate | None,
            amount: Decimal, a: int, b: int) -> _Candidate | None:
    """Add a regime's sum to candidate `c` (first and last instant too); returns `c`."""
    assert c is not None
    q = qty.get(c)
    if q is None:
        qty[c] = amount
        span[c] = [a, b]
    else:
        qty[c] = q + amount
        span[c][1] = b
    return c


def _steps(
    priced: list[Decimal], last_energy: _Candidate | None, last_time: _Candidate | None,
    last_res: _Candidate | None,
) -> tuple[list[Decimal], dict[_Candidate, Decimal]]:
    """step_size (mod_cdrs "step_size"), once per group, on the last priced piece:
    the session total of the group rounded up to that piece's component's step,
    the difference billed at its price."""
    billed = list(priced)
    extras: dict[_Candidate, Decimal] = {}
    if last_energy is not None:
        extras[last_energy] = _step_extra(priced[ENERGY] * KWH_WH, last_energy.step) / KWH_WH
        billed[ENERGY] += extras[last_energy]
    if last_time is not None:
        extras[last_time] = _step_extra(priced[last_time.code], last_time.step)
        billed[last_time.code] += extras[last_time]
    if last_res is not None:
        extras[last_res] = _step_extra(priced[RES_TIME], last_res.step)
        billed[RES_TIME] += extras[last_res]
    return billed, extras


def _step_extra(total: Decimal, step: int) -> Decimal:
    """How much rounding `total` (Wh or s) up to a multiple of `step` adds."""
    if step <= 0:  # step_size 0: bill the exact amount
        return ZERO
    fine = total.quantize(_FINE)
    q, r = divmod(fine, step)
    if not r:
        return ZERO  # already a whole number of steps (to the µs / µWh)
    return (q + 1) * step - total


def _finish(
    parts: Sequence[tuple[CompiledTariff, dict[_Candidate, Decimal]]],
    time_zone: str,
    extras: dict[_Candidate, Decimal],
    span: dict[_Candidate, list[int]],
    consumed: list[Decimal],
    billed: list[Decimal],
    unpriced: list[Decimal],
    start: datetime,
    end: datetime,
    session_us: int,
    more_warnings: tuple[str, ...],
    part_starts: Sequence[datetime] | None = None,
) -> TariffResult:
    """Cost the quantities: per component, per dimension, per tariff (its
    min_price / max_price bound what it prices), then the session's total."""
    first = parts[0][0]
    cur = first.currency
    quantum = first.quantum
    sx = [ZERO] * 6  # exact sums excl / incl VAT per dimension code
    si = [ZERO] * 6
    lines: list[tuple[Any, ...]] = []
    tot_x = tot_i = raw_x = raw_i = ZERO
    limits: list[str] = []
    subtotals: list[TariffSubtotal] = []
    warnings: tuple[str, ...] = ()
    for pi, (ct, qty) in enumerate(parts):
        tid = ct.tariff.id
        px = pi_ = ZERO  # this tariff's exact excl / incl
        for c, used in qty.items():
            code = c.code
            x = extras.get(c)
            q = used if x is None else used + x
            if code == ENERGY:
                excl = q * c.price
                volume, quantity = used, q
            elif code >= FLAT:
                excl = c.price
                volume = quantity = ONE
            else:
                excl = q * c.price / HOUR_S
                volume, quantity = used / HOUR_S, q / HOUR_S
            incl = excl * c.vat_factor
            sx[code] += excl
            si[code] += incl
            px += excl
            pi_ += incl
            a, b = span[c]
            lines.append((c, volume, quantity, excl, incl, a, b, tid))
        tariff = ct.tariff
        if tariff.min_price is None and tariff.max_price is None:
            lx, li, limit = px, pi_, None
        else:
            lx, li, limit = _apply_limits(tariff, px, pi_)
            if limit is not None:
                limits.append(limit)
        raw_x += px
        raw_i += pi_
        tot_x += lx
        tot_i += li
        if len(parts) > 1:
            subtotals.append(TariffSubtotal(tariff.id, PriceAmount(lx, li), limit, quantum))
        if tariff.start_date_time is not None or tariff.end_date_time is not None:
            warnings += _validity_warnings(tariff, part_starts[pi] if part_starts else start)
    if len(parts) > 1:
        for ct, _ in parts:
            if ct.currency != cur:
                raise TariffError(f"tariffs in several currencies ({cur}, {ct.currency}): "
                                  "cannot add them up")
    if len(parts) == 1:
        price_limit = limits[0] if limits else None
        tariff_ids: tuple[str, ...] = (first.tariff.id,)
    else:
        price_limit = None if not limits else limits[0] if len(set(limits)) == 1 else "+".join(limits)
        tariff_ids = tuple(ct.tariff.id for ct, _ in parts)
    return TariffResult(
        cur, first.tariff.id, time_zone, quantum, sx, si, (tot_x, tot_i), (raw_x, raw_i), price_limit,
        (consumed[0], consumed[1], consumed[2], consumed[3]), (billed[0], billed[1], billed[2], billed[3]),
        {_UNPRICED_NAMES[k]: (v if k == ENERGY else v / HOUR_S) for k, v in enumerate(unpriced) if v}
        if (unpriced[0] or unpriced[1] or unpriced[2] or unpriced[3]) else {},
        lines, session_us, tariff_ids, tuple(subtotals), warnings + more_warnings,
    )


_UNPRICED_NAMES = ("ENERGY", "TIME", "PARKING_TIME", "RESERVATION_TIME")
qz = Decimal.quantize
HALF_UP = ROUND_HALF_UP


def _hours(seconds: Decimal) -> Decimal:
    return seconds / HOUR_S if seconds else ZERO


def _line_order(line: TariffLine) -> tuple[int, str]:
    return (line.start_us, line.dimension.value)


def _apply_limits(tariff: Tariff, excl: Decimal, incl: Decimal) -> tuple[Decimal, Decimal, str | None]:
    """min_price / max_price (§11.3.1 notes): excl and incl apply independently.

    A limit without `incl_vat` bounds incl. VAT at the session's own effective
    VAT rate, so incl. VAT never drops below excl. VAT.
    """
    limit: str | None = None
    rate = incl / excl if excl > 0 else ONE
    lo, hi = tariff.min_price, tariff.max_price
    if lo is not None:
        lo_incl = lo.incl_vat if lo.incl_vat is not None else lo.excl_vat * rate
        if excl < lo.excl_vat or incl < lo_incl:
            limit = "min_price"
        excl, incl = max(excl, lo.excl_vat), max(incl, lo_incl)
    if hi is not None:
        hi_incl = hi.incl_vat if hi.incl_vat is not None else hi.excl_vat * rate
        if excl > hi.excl_vat or incl > hi_incl:
            limit = "max_price"
        excl, incl = min(excl, hi.excl_vat), min(incl, hi_incl)
    return excl, incl, limit


def _outside_warnings(starts: list[int], start_us: int, end_us: int) -> tuple[str, ...]:
    """Periods that start before the session's start or after its end (the Rust
    reference engine warns "periods_outside_start_end_date_time"). They are priced
    as given; a duration restriction counts from the session's start."""
    out: list[str] = []
    for i, u in enumerate(starts):
        if u < start_us:
            out.append(f"charging period {i + 1} starts at {_iso(_from_us(u))}, "
                       f"before the session's start_date_time {_iso(_from_us(start_us))}")
        elif u > end_us:
            out.append(f"charging period {i + 1} starts at {_iso(_from_us(u))}, "
                       f"after the session's end_date_time {_iso(_from_us(end_us))}")
    return tuple(out)


def _validity_warnings(tariff: Tariff, used_from: datetime) -> tuple[str, ...]:
    """The tariff's validity (start_date_time / end_date_time) against the moment
    the session started using it."""
    out: list[str] = []
    if tariff.start_date_time is not None and used_from < tariff.start_date_time:
        when = _iso(tariff.start_date_time)
        out.append(f"tariff {tariff.id} used from {_iso(used_from)}, before it becomes active ({when})")
    if tariff.end_date_time is not None and used_from > tariff.end_date_time:
        out.append(f"tariff {tariff.id} used from {_iso(used_from)}, after it ended "
                   f"({_iso(tariff.end_date_time)})")
    return tuple(out)


# --------------------------------------------------------------------------- conveniences


def _reservation_of(periods: Iterable[ChargingPeriod]) -> ReservationRestrictionType | None:
    has_res = has_other = False
    for p in periods:
        for d in p.dimensions:
            if d.type is CdrDimensionType.RESERVATION_TIME:
                has_res = has_res or d.volume > 0
            elif d.type in (CdrDimensionType.ENERGY, CdrDimensionType.TIME, CdrDimensionType.PARKING_TIME):
                has_other = has_other or d.volume > 0
    if not has_res:
        return None
    if has_other:
        return ReservationRestrictionType.RESERVATION
    return ReservationRestrictionType.RESERVATION_EXPIRES


def price_cdr(
    cdr: CDR,
    time_zone: str | None = None,
    *,
    tariff: Tariff | None = None,
    tariffs: Mapping[str, Tariff] | None = None,
    reservation: ReservationRestrictionType | None = None,
) -> TariffResult:
    """Price a CDR with the tariffs its periods name, as the engine sees it.

    Each period's `tariff_id` (mod_cdrs ChargingPeriod) is looked up in
    `tariffs` (by id: tariffs the caller has, e.g. the store's; they come first)
    and then in the CDR's own `tariffs` (see `assign_tariffs`); a CDR whose
    periods name several tariffs is priced period by period
    (`price_by_period`). `tariff` instead prices every period with that one
    tariff. The CDR carries no time zone (CdrLocation has none), so pass the
    Location's; without one, UTC is used and the result says so. Without
    `reservation`, RESERVATION_TIME volumes mean a used reservation if the CDR
    also has charging volumes, an expired one otherwise.
    """
    tz = time_zone or "UTC"
    res = reservation or _reservation_of(cdr.charging_periods)
    if tariff is not None:
        result = price(tariff, cdr.charging_periods, start=cdr.start_date_time, end=cdr.end_date_time,
                       time_zone=tz, reservation=res)
    else:
        known = {**{t.id: t for t in cdr.tariffs or ()}, **(tariffs or {})}
        if not known:
            raise TariffError(f"CDR {cdr.id} has no tariffs: pass the tariff to price it")
        try:
            assigned = assign_tariffs(cdr.charging_periods, known)
        except TariffError as exc:
            raise TariffError(f"CDR {cdr.id}: {exc}") from exc
        result = price_by_period(assigned, cdr.charging_periods, start=cdr.start_date_time,
                                 end=cdr.end_date_time, time_zone=tz, reservation=res)
    warnings = list(result.warnings)
    if time_zone is None:
        warnings.append("no time zone given: restrictions evaluated in UTC")
    if cdr.currency.upper() != result.currency:
        warnings.append(f"CDR currency {cdr.currency} differs from tariff currency {result.currency}")
    if len(warnings) == len(result.warnings):
        return result
    return _with_warnings(result, warnings)


def assign_tariffs(periods: Sequence[ChargingPeriod], known: Mapping[str, Tariff]) -> list[Tariff | None]:
    """The tariff of each period, from `known` (by id).

    - Periods that name tariffs (`tariff_id`): each gets the one it names (an
      unknown id is an error); a period naming none gets None: "If not
      provided, no Tariff is relevant during this period" (mod_cdrs).
    - No period names one: the one tariff known; or, when several are known,
      the one whose validity (`start_date_time` inclusive, `end_date_time`
      exclusive, mod_tariffs Tariff object) holds at the period's start, which
      must be exactly one.
    """
    if any(p.tariff_id for p in periods):
        out: list[Tariff | None] = []
        for p in periods:
            if not p.tariff_id:
                out.append(None)
                continue
            t = known.get(p.tariff_id)
            if t is None:
                t = next((v for k, v in known.items() if k.lower() == p.tariff_id.lower()), None)  # CiString
            if t is None:
                raise TariffError(f"charging period tariff_id {p.tariff_id!r} is not in tariffs")
            out.append(t)
        return out
    if not known:
        raise TariffError("no tariffs to price it with")
    if len(known) == 1:
        only = next(iter(known.values()))
        return [only] * len(periods)
    out = []
    for p in periods:
        at = p.start_date_time
        valid = [t for t in known.values()
                 if (t.start_date_time is None or t.start_date_time <= at)
                 and (t.end_date_time is None or at < t.end_date_time)]
        if len(valid) != 1:
            raise TariffError(f"lists several tariffs and its periods name none: {len(valid)} of them "
                              f"valid at {_iso(at)} ({', '.join(sorted(known))})")
        out.append(valid[0])
    return out


def price_session(session: Session, tariff: Tariff, time_zone: str, now: datetime, *,
                  tariffs: Mapping[str, Tariff] | None = None) -> TariffResult:
    """The cost so far of a (possibly ongoing) Session, for `track`.

    An ACTIVE session ends at `now`; one without charging periods is priced as
    a single period with its `kwh` and its duration as charging time. With
    `tariffs` (by id) and periods that name tariffs (`tariff_id`), each period
    is priced with the one it names, `tariff` among them (`price_by_period`).
    """
    end = session.end_date_time or now
    periods: Sequence[ChargingPeriod] = session.charging_periods or ()
    if not periods:
        hours = max(Decimal(_to_us(end) - _to_us(session.start_date_time)) / (HOUR_S * US), ZERO)
        periods = [
            ChargingPeriod.model_validate(
                {
                    "start_date_time": session.start_date_time,
                    "dimensions": [
                        {"type": "ENERGY", "volume": session.kwh},
                        {"type": "TIME", "volume": hours},
                    ],
                }
            )
        ]
    if tariffs and any(p.tariff_id for p in periods):
        assigned = assign_tariffs(periods, {tariff.id: tariff, **tariffs})
        return price_by_period(assigned, periods, start=session.start_date_time, end=end,
                               time_zone=time_zone, reservation=_reservation_of(periods))
    return price(
        tariff, periods, start=session.start_date_time, end=end, time_zone=time_zone,
        reservation=_reservation_of(periods),
    )


def _with_warnings(result: TariffResult, warnings: list[str]) -> TariffResult:
    return result.with_warnings(warnings)
