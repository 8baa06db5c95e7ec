"""The bridge's tariff engine and the mock CPO's own pricing agree to the paisa (issue 4).

Two independent OCPI 2.2.1 implementations: `bridge.mapping.tariff` (the
bridge's engine) and `ocpi_mock.pricing` (what the mock CPO writes into the
`total_cost` of its Session PATCHes and CDRs). They must give the same
`total_cost` excl. and incl. VAT, and the same per-dimension costs, rounded to
the currency's minor unit, on:

(a) every worked case of TARIFF-CASES.md and every spec example tariff on a set of
    sessions: in the conformance suite (tests/conformance/pricing/
    test_agreement_on_spec_tariffs.py), which reads the spec's files;
(b) every tariff of config/networks/india.toml on sessions generated like the
    mock's simulator generates them (hypothesis);
(c) the CDRs of full sessions run by the mock's simulator over HTTP, priced
    again by `bridge.mapping.tariff.price_cdr`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from types import SimpleNamespace
from typing import Any, cast
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.mapping.tariff import TariffResult, price, price_cdr
from bridge.ocpi.models import (
    CDR,
    EVSE,
    AuthMethod,
    CdrToken,
    ChargingPeriod,
    Connector,
    Location,
    ReservationRestrictionType,
    Session,
    SessionStatus,
    Tariff,
)
from ocpi_mock import pricing as mock_pricing
from ocpi_mock import simulator
from ocpi_mock.app import create_app
from ocpi_mock.clock import SimClock
from ocpi_mock.network import Network, load_network
from ocpi_mock.ocpi_routes import MOCK
from ocpi_mock.runtime import Mock
from tests import spec
from tests.conftest import ROOT, free_port
from tests.mock.conftest import FAST, MockServer
from tests.mock.emsp_double import EmspDouble
from tests.pricing.pricing_support import D, Shape, local, make_tariff, session

RES = ReservationRestrictionType.RESERVATION
EXP = ReservationRestrictionType.RESERVATION_EXPIRES
EU = "Europe/Berlin"
IST = "Asia/Kolkata"
NETWORK = ROOT / "config" / "networks" / "india.toml"
DIMENSIONS = ("total", "energy", "time", "parking", "fixed", "reservation")
Figures = dict[str, tuple[Decimal, Decimal]]


# ----------------------------------------------------------------------------- comparing


def bridge_figures(r: TariffResult) -> Figures:
    amounts = {"total": r.total_cost, "energy": r.total_energy_cost, "time": r.total_time_cost,
               "parking": r.total_parking_cost, "fixed": r.total_fixed_cost,
               "reservation": r.total_reservation_cost}
    return {k: (v.excl_vat, v.incl_vat) for k, v in amounts.items()}


def mock_figures(r: mock_pricing.PriceResult, places: int = 2) -> Figures:
    costs = {"total": r.total, "energy": r.energy, "time": r.time, "parking": r.parking,
             "fixed": r.fixed, "reservation": r.reservation}
    return {k: (mock_pricing.round_money(v.excl, places), mock_pricing.round_money(v.incl, places))
            for k, v in costs.items()}


def price_both(tariff: Tariff, cps: list[ChargingPeriod], start: datetime, end: datetime, tz: str,
               reservation: ReservationRestrictionType | None = None
               ) -> tuple[TariffResult, mock_pricing.PriceResult]:
    """Both engines on the same OCPI charging periods: the bridge reads them as
    they are; the mock rebuilds its own `Period`s from them, as it does for a CDR."""
    ours = price(tariff, cps, start=start, end=end, time_zone=tz, reservation=reservation)
    periods = mock_pricing.periods_from_charging_periods(cps, end)
    theirs = mock_pricing.price(tariff, periods, tz, reservation_expired=reservation is EXP)
    return ours, theirs


def assert_agree(ours: TariffResult, theirs: mock_pricing.PriceResult, what: str = "") -> None:
    exponent = ours.quantum.as_tuple().exponent
    assert isinstance(exponent, int)
    places = -exponent
    b, m = bridge_figures(ours), mock_figures(theirs, places)
    diff = {k: {"bridge": b[k], "mock": m[k]} for k in DIMENSIONS if b[k] != m[k]}
    assert not diff, f"{what}: {diff}"
    # and the unrounded totals too (no disagreement hidden by a lucky rounding); the
    # engines split a period at a kWh threshold to the microsecond differently, hence
    # a tolerance far below the minor unit rather than equality
    ex = ours.exact["total_cost"]
    assert abs(ex.excl_vat - theirs.total.excl) < D("1e-6"), what
    assert abs(ex.incl_vat - theirs.total.incl) < D("1e-6"), what


# ----------------------------------------------------------------------------- (a) spec cases


@cache
def example_tariff(name: str) -> Tariff:
    """An OCPI example tariff: only the conformance suite prices these
    (tests/conformance/pricing/test_agreement_on_spec_tariffs.py)."""
    data = json.loads(spec.require(spec.OCPI_EXAMPLES / name).read_text())
    data.setdefault("last_updated", "2024-01-01T00:00:00Z")  # tariff_put_example lacks it
    return Tariff.model_validate(data)


MON, SAT = "2024-01-15", "2024-01-20"
Step = tuple[str, float | str, dict[str, object]]


def ch(minutes: float | str, **dims: object) -> Step:
    return ("charge", minutes, dims)


def park(minutes: float | str) -> Step:
    return ("park", minutes, {})


def rsv(minutes: float | str) -> Step:
    return ("reserve", minutes, {})


def at(hhmm: str, day: str = MON) -> datetime:
    return local(f"{day} {hhmm}", EU)


@dataclass
class Case:
    name: str
    tariff: Callable[[], Tariff]
    shape: Shape
    reservation: ReservationRestrictionType | None = None


def ex(name: str) -> Callable[[], Tariff]:
    return lambda: example_tariff(name)


def _inline(*elements: dict[str, Any]) -> Callable[[], Tariff]:
    return lambda: make_tariff(list(elements))


def _comp(kind: str, price: str, step: int, vat: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"type": kind, "price": price, "step_size": step}
    if vat is not None:
        c["vat"] = vat
    return c


_E025 = {1: _inline({"price_components": [_comp("ENERGY", "0.25", 1)]}),
         25: _inline({"price_components": [_comp("ENERGY", "0.25", 25)]}),
         500: _inline({"price_components": [_comp("ENERGY", "0.25", 500)]})}


def _tp(step: int) -> Callable[[], Tariff]:
    return _inline({"price_components": [_comp("TIME", "1", step), _comp("PARKING_TIME", "2", step)]})


# The worked cases of TARIFF-CASES.md, as tests/pricing/test_pricing_tariff_cases.py builds
# them, except that currents are the period's CURRENT (what both engines read; the mock's
# own periods carry no MIN/MAX_CURRENT).
TARIFF_CASES = [
    Case("1 tariff_8", ex("tariff_8_simple_025kwh.json"), session(at("10:00"), ch(60, energy=20))),
    Case("2 tariff_9", ex("tariff_9_025kwh_start.json"), session(at("10:00"), ch(60, energy=20))),
    Case("3a tariff_12", ex("tariff_12_025kwh_min_price.json"), session(at("10:00"), ch(60, energy=20))),
    Case("3b tariff_12 min", ex("tariff_12_025kwh_min_price.json"),
         session(at("10:00"), ch(10, energy="1.5"))),
    Case("4 tariff_10", ex("tariff_10_025kwh_parking_start.json"),
         session(at("10:00"), ch(60, energy=20), park(40))),
    Case("5a tariff_6 max", ex("tariff_6_025kwh_start_max_price.json"),
         session(at("10:00"), ch(90, energy=50))),
    Case("5b tariff_6", ex("tariff_6_025kwh_start_max_price.json"), session(at("10:00"), ch(60, energy=30))),
    Case("6 tariff_1", ex("tariff_1_simple_2hour.json"), session(at("10:00"), ch(150, energy=10))),
    Case("7 tariff_13", ex("tariff_13_simple_3hour_5parking.json"),
         session(at("10:00"), ch(150, energy=30), park(42))),
    Case("8 tariff_2", ex("tariff_2_alt_text.json"), session(at("10:00"), ch(150, energy=30))),
    Case("9 tariff_3", ex("tariff_3_alt_url.json"), session(at("10:00"), ch(60, energy="20.45"))),
    Case("10 tariff_4 monday", ex("tariff_4_complex.json"),
         session(at("09:30"), ch(165, energy=20, current=16), park(42))),
    Case("11 tariff_4 saturday", ex("tariff_4_complex.json"),
         session(at("13:30", SAT), ch(114, energy=30, current=43), park(71))),
    Case("12a tariff_5 nothing", ex("tariff_5_free_of_charge.json"), session(at("10:00"))),
    Case("12b tariff_5", ex("tariff_5_free_of_charge.json"),
         session(at("10:00"), ch(300, energy=60), park(60))),
    Case("13 tariff_15", ex("tariff_15_reservation_5_euro_per_hour.json"),
         session(at("10:00"), rsv(15), ch(60, energy=20)), RES),
    Case("14 tariff_16", ex("tariff_16_reservation_2_euro_fee_5_euro_per_hour.json"),
         session(at("10:00"), rsv(13), ch(60, energy=20)), RES),
    Case("15a tariff_17", ex("tariff_17_reservation_with_expire_fee.json"),
         session(at("10:00"), rsv(22), ch(60, energy=20)), RES),
    Case("15b tariff_17 expired", ex("tariff_17_reservation_with_expire_fee.json"),
         session(at("10:00"), rsv(60)), EXP),
    Case("16a tariff_18", ex("tariff_18_reservation_with_expire_time.json"),
         session(at("10:00"), rsv(22), ch(60, energy=20)), RES),
    Case("16b tariff_18 expired", ex("tariff_18_reservation_with_expire_time.json"),
         session(at("10:00"), rsv(90)), EXP),
    Case("17 max_power derived", ex("tariffrestriction_example_max_power.json"),
         session(at("10:00"), ch(10, energy=1), ch(50, energy=40), ch("7.5", energy="0.5"))),
    Case("17b max_power POWER", ex("tariffrestriction_example_max_power.json"),
         session(at("10:00"), ch(10, energy=1, power=6), ch(50, energy=40, power=48),
                 ch("7.5", energy="0.5", power=4))),
    Case("18 max_duration", ex("tariffrestriction_example_max_duration.json"),
         session(at("10:00"), ch(30, energy=5), ch(10, energy="1.2"))),
    Case("19 tariff_14 16:55", ex("tariff_14_step_size.json"),
         session(at("16:55"), ch(10, energy=2), park(2))),
    Case("20 tariff_14 16:35", ex("tariff_14_step_size.json"), session(at("16:35"), ch(35, energy=5))),
    Case("21 tariff_14 19:40", ex("tariff_14_step_size.json"),
         session(at("19:40"), ch(12, energy=2), park(20))),
    Case("22a 115.2 Wh step 1", _E025[1], session(at("10:00"), ch(1, energy="0.1152"))),
    Case("22b 115.2 Wh step 25", _E025[25], session(at("10:00"), ch(1, energy="0.1152"))),
    Case("22c 115.2 Wh step 500", _E025[500], session(at("10:00"), ch(1, energy="0.1152"))),
    Case("23 step 300", _tp(300), session(at("10:00"), ch(21, energy=5), park(7))),
    Case("24 energy step 500 across 17:00", _inline(
        {"price_components": [_comp("ENERGY", "0.20", 500)],
         "restrictions": {"start_time": "00:00", "end_time": "17:00"}},
        {"price_components": [_comp("ENERGY", "0.27", 500)]}),
        session(at("16:00"), ch(60, energy="4.3"), ch(30, energy="1.1"))),
    Case("25 time step 600 across 17:00", _inline(
        {"price_components": [_comp("TIME", "5", 600)], "restrictions": {"end_time": "17:00"}},
        {"price_components": [_comp("TIME", "7", 600)]}),
        session(at("16:54"), ch(28, energy=5))),
    Case("26 step 600", _tp(600), session(at("10:00"), ch(21, energy=5), park(16))),
    Case("27 cdr_example tariff", ex("tariff_put_example.json"),
         session(at("10:00"), ch("118.38", energy="15.342"))),
]


def _example_tariff_names() -> list[str]:
    return sorted(p.name for p in spec.OCPI_EXAMPLES.glob("tariff*.json"))


def _reservation_tariff(name: str) -> bool:
    return any(el.restrictions is not None and el.restrictions.reservation is not None
               for el in example_tariff(name).elements)


# Sessions every example tariff is priced on: daytime, across 17:00/18:00/20:00,
# Saturday, across midnight, high current, short, long, with power and parking, and
# a power cut (a period with only `ENERGY 0`, as the mock's simulator reports one).
SHAPES: dict[str, Shape] = {
    "weekday 10:00 charge+park": session(at("10:00"), ch(47, energy="18.6", current=16), park(23)),
    "weekday 16:40 across 17/18/20h": session(
        at("16:40"), ch(50, energy="22.1", current=40), ch(75, energy="30.05", current=63),
        ch(40, energy="5.5", current=10), park(31)),
    "saturday 09:50 across 10:00/17:00": session(
        at("09:50", SAT), ch(200, energy="41.3", current=45), park(12)),
    "sunday 23:10 across midnight": session(
        at("23:10", "2024-01-21"), ch(95, energy="12.9", current=12), park(65)),
    "short 3 min": session(at("12:00"), ch(3, energy="0.4")),
    "power": session(at("08:00"), ch(20, energy="2", power="6"), ch(30, energy="24", power="48"),
                     park(9)),
    "idle period": session(at("18:30"), ch(15, energy="3"), ("idle", 9, {"energy": 0}),
                           ch(21, energy="4.2"), park(3)),
}


def example_cases() -> list[Case]:
    out = []
    for name in _example_tariff_names():
        short = name.removesuffix(".json")
        for label, shape in SHAPES.items():
            out.append(Case(f"{short} {label}", ex(name), shape))
        if _reservation_tariff(name):
            out.append(Case(f"{short} reserve 17 + charge", ex(name),
                            session(at("17:52"), rsv(17), ch(33, energy="9.9"), park(4)), RES))
            out.append(Case(f"{short} reservation expired", ex(name),
                            session(at("19:10"), rsv(47)), EXP))
    return out



# ----------------------------------------------------------------------------- (b) network


@cache
def network() -> Network:
    return load_network(NETWORK, datetime(2025, 1, 1, tzinfo=UTC))


def network_tariffs() -> list[Tariff]:
    return list(network().tariffs)


def _first_connector(tariff: Tariff) -> tuple[Location, EVSE, Connector]:
    for loc in network().locations:
        if loc.party_id != tariff.party_id:
            continue
        for evse in loc.evses or []:
            for conn in evse.connectors:
                if tariff.id in (conn.tariff_ids or []):
                    return loc, evse, conn
    raise AssertionError(f"no connector uses {tariff.id}")


TICK = 180  # the simulator's meter tick (simulated seconds)
FIRST_DAY = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday


@dataclass
class Drive:
    """What the simulator's `run` loop would meter for one session."""

    start: datetime
    car: simulator.Car
    limit_kw: Decimal
    stop_after: int | None  # ticks, then the eMSP stops the session
    cut_at: int | None  # tick at which the location loses power
    cut_ticks: int
    cut_end: bool  # the power comes back too late: the session ends when it went
    park_ticks: int  # plugged in after the car is full
    max_ticks: int


def meter(d: Drive, conn: Connector) -> tuple[list[mock_pricing.Period], datetime]:
    """The simulator's periods (same rules as `simulator.run`), without the clock."""
    periods: list[mock_pricing.Period] = []
    t = d.start
    full_since: datetime | None = None
    cut_started: datetime | None = None
    for i in range(d.max_ticks):
        t_next = t + timedelta(seconds=TICK)
        in_cut = d.cut_at is not None and d.cut_at <= i < d.cut_at + d.cut_ticks
        if in_cut:
            cut_started = cut_started or t
            periods.append(mock_pricing.Period(t, t_next, mock_pricing.Kind.IDLE))
        elif cut_started is not None and d.cut_end:
            periods = [p for p in periods if p.start < cut_started]
            return periods, cut_started
        else:
            cut_started = None
            energy, power = simulator.tick(d.car, d.limit_kw, TICK)
            if energy > 0:
                periods.append(mock_pricing.Period(t, t_next, mock_pricing.Kind.CHARGING, energy, power,
                                                   simulator.current_for(power, conn)))
            else:
                full_since = full_since or t
                periods.append(mock_pricing.Period(t, t_next, mock_pricing.Kind.PARKING))
        t = t_next
        if in_cut:
            continue
        if d.stop_after is not None and i + 1 >= d.stop_after:
            break
        if full_since is not None and (t - full_since).total_seconds() >= d.park_ticks * TICK:
            break
    return periods, t


@st.composite
def drives(draw: st.DrawFn) -> Drive:
    day = draw(st.integers(0, 13))  # two weeks from a Monday: weekdays and weekends
    # local start: mostly around the 18:00-21:00 peak, sometimes any time of day
    minute = draw(st.one_of(st.integers(15 * 60, 22 * 60), st.integers(0, 24 * 60 - 1)))
    naive = FIRST_DAY.replace(tzinfo=None) + timedelta(days=day, minutes=minute)
    start = simulator.grid_after(local(naive.isoformat(sep=" "), IST), TICK)
    battery = draw(st.sampled_from(["26", "30.2", "40.5", "59", "72.6", "90"]))
    soc = draw(st.integers(5, 95))
    target = draw(st.integers(soc + 1, 100))
    car = simulator.Car(D(battery), D(soc) / 100, D(target) / 100,
                        D(draw(st.sampled_from(["3.3", "7.2", "11", "50", "110", "150"]))))
    limit = D(draw(st.sampled_from(["3.3", "7.4", "15", "22", "30", "50", "60", "120"])))
    cut_at = draw(st.none() | st.integers(0, 40))
    return Drive(
        start=start, car=car, limit_kw=limit,
        stop_after=draw(st.none() | st.integers(1, 80)),
        cut_at=cut_at, cut_ticks=draw(st.integers(1, 12)), cut_end=draw(st.booleans()),
        park_ticks=draw(st.integers(0, 25)), max_ticks=draw(st.integers(1, 160)),
    )


def build_cdr(tariff: Tariff, periods: list[mock_pricing.Period], end: datetime) -> CDR:
    """The CDR the mock would POST for these periods (`simulator.build_cdr`)."""
    loc, evse, conn = _first_connector(tariff)
    start = periods[0].start if periods else end
    sess = Session(
        country_code=loc.country_code, party_id=loc.party_id, id=f"{loc.party_id}-PROP",
        start_date_time=start, end_date_time=end, kwh=sum((p.energy for p in periods), D(0)),
        cdr_token=CdrToken(country_code="IN", party_id="EMS", uid="CARD", type="RFID",
                           contract_id="IN-EMS-C1"),
        auth_method=AuthMethod.WHITELIST, location_id=loc.id, evse_uid=evse.uid,
        connector_id=conn.id, currency=tariff.currency, status=SessionStatus.COMPLETED,
        last_updated=end)
    live = simulator.LiveSession(session=sess, location=loc, evse=evse, connector=conn,
                                 tariff=tariff, car=simulator.Car(D(1), D(1), D(1), D(1)),
                                 periods=periods)
    fake = cast(Mock, SimpleNamespace(clock=SimpleNamespace(now=lambda: end)))
    return simulator.build_cdr(fake, live, end)


def cdr_figures(cdr: CDR) -> Figures:
    zero = (D("0.00"), D("0.00"))

    def pair(p: Any) -> tuple[Decimal, Decimal]:
        return zero if p is None else (p.excl_vat, p.incl_vat)

    return {"total": pair(cdr.total_cost), "energy": pair(cdr.total_energy_cost),
            "time": pair(cdr.total_time_cost), "parking": pair(cdr.total_parking_cost),
            "fixed": pair(cdr.total_fixed_cost), "reservation": pair(cdr.total_reservation_cost)}


def assert_cdr_agrees(cdr: CDR, what: str = "") -> TariffResult:
    ours = price_cdr(cdr, IST)
    b, m = bridge_figures(ours), cdr_figures(cdr)
    diff = {k: {"bridge": b[k], "cdr": m[k]} for k in DIMENSIONS if b[k] != m[k]}
    assert not diff, f"{what} {cdr.id}: {diff}"
    return ours


@pytest.mark.parametrize("tariff", network_tariffs(), ids=lambda t: t.id)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drive=drives(), prefix=st.floats(0, 1))
def test_network_tariffs_agree_on_simulated_sessions(tariff: Tariff, drive: Drive, prefix: float) -> None:
    loc, _, conn = _first_connector(tariff)
    periods, end = meter(replace(drive, car=replace(drive.car)), conn)
    if not periods:
        return
    tid = tariff.id
    cps = [simulator.charging_period(p, conn, tid) for p in periods]
    # the CDR, as the mock builds it, priced again by the bridge
    cdr = build_cdr(tariff, periods, end)
    assert_cdr_agrees(cdr, tid)
    # every figure of both engines on the same periods
    ours, theirs = price_both(tariff, cps, periods[0].start, end, loc.time_zone)
    assert_agree(ours, theirs, tid)
    # a Session PATCH on the way: the cost so far
    n = max(1, round(prefix * len(periods)))
    ours, _ = price_both(tariff, cps[:n], periods[0].start, periods[n - 1].end, loc.time_zone)
    theirs = mock_pricing.price(tariff, periods[:n], loc.time_zone)
    assert_agree(ours, theirs, f"{tid} first {n} periods")


# ----------------------------------------------------------------------------- (c) live mock

SPEED = 7200  # a 3-hour session takes 1.5 s
ALLOWED = "ALLOWED"


@dataclass
class Plug:
    evse: str
    car: dict[str, float]
    stop_after: float | None = None  # real seconds, then the driver stops at the charger


@dataclass
class Scenario:
    name: str
    epoch: datetime
    plugs: list[Plug]
    cuts: list[tuple[float, str, int, str]]  # (real s after start, location, sim s, outcome)


SCENARIOS = [
    # Monday 17:25 IST: sessions cross 18:00 (weekday peak), 40 kWh (TPC min_kwh), 90 min
    # (STK min_duration), 60 min (TPC max_duration); a power cut that resumes, one that ends.
    Scenario("monday evening", datetime(2025, 1, 6, 11, 55, tzinfo=UTC), [
        Plug("TPC-KRM-1", {"battery_kwh": 72.6, "soc": 0.2, "target_soc": 0.95, "max_kw": 150}),
        Plug("TPC-KRM-2", {"battery_kwh": 30.2, "soc": 0.3, "target_soc": 0.9, "max_kw": 11}),
        Plug("ZEO-IND-1", {"battery_kwh": 40.5, "soc": 0.1, "target_soc": 1.0, "max_kw": 50}),
        Plug("ZEO-IND-2", {"battery_kwh": 26, "soc": 0.2, "target_soc": 1.0, "max_kw": 7.2},
             stop_after=0.4),
        Plug("STK-S18-2", {"battery_kwh": 40.5, "soc": 0.2, "target_soc": 0.9, "max_kw": 50}),
        Plug("STK-HBL-2", {"battery_kwh": 26, "soc": 0.2, "target_soc": 1.0, "max_kw": 11}),
        Plug("TPC-WFD-1", {"battery_kwh": 90, "soc": 0.1, "target_soc": 0.9, "max_kw": 50}),
        Plug("TPC-MDR-3", {"battery_kwh": 40.5, "soc": 0.3, "target_soc": 0.9, "max_kw": 50}),
    ], [(0.1, "TPC-BLR-WFD", 900, "resume"), (0.1, "TPC-HWY-MDR", 600, "end")]),
    # Friday 20:35 IST: sessions cross 21:00 and midnight into Saturday (weekend prices).
    Scenario("friday night", datetime(2025, 1, 10, 15, 5, tzinfo=UTC), [
        Plug("TPC-CP-1", {"battery_kwh": 59, "soc": 0.15, "target_soc": 1.0, "max_kw": 110}),
        Plug("TPC-CP-2", {"battery_kwh": 26, "soc": 0.4, "target_soc": 0.9, "max_kw": 3.3}),
        Plug("ZEO-CYB-2", {"battery_kwh": 72.6, "soc": 0.1, "target_soc": 1.0, "max_kw": 150}),
        Plug("ZEO-KHR-1", {"battery_kwh": 40.5, "soc": 0.1, "target_soc": 1.0, "max_kw": 11}),
        Plug("STK-SKT-2", {"battery_kwh": 72.6, "soc": 0.1, "target_soc": 1.0, "max_kw": 150}),
        Plug("STK-BNR-2", {"battery_kwh": 30.2, "soc": 0.2, "target_soc": 1.0, "max_kw": 7.2}),
        Plug("ZEO-KP-2", {"battery_kwh": 30.2, "soc": 0.85, "target_soc": 0.9, "max_kw": 11}),
    ], [(0.1, "ZEO-PNQ-KP", 1200, "resume")]),
]


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture
async def emsp_double() -> AsyncIterator[EmspDouble]:
    double = EmspDouble()
    port = free_port()
    double.base_url = f"http://127.0.0.1:{port}"
    runner = await _serve(double.app(), port)
    yield double
    await runner.cleanup()


async def _run_mock(epoch: datetime) -> tuple[web.AppRunner, MockServer, aiohttp.ClientSession]:
    port = free_port()
    cfg = replace(FAST, port=port, public_url=f"http://127.0.0.1:{port}", speed=SPEED,
                  park_after_full_seconds=600)
    app = create_app(cfg, clock=SimClock(SPEED, epoch=epoch))
    runner = await _serve(app, port)
    http = aiohttp.ClientSession()
    return runner, MockServer(cfg.base_url, app[MOCK], http), http


def _patched_periods(emsp: EmspDouble, sid: str) -> list[tuple[list[ChargingPeriod], dict[str, Any]]]:
    """For each Session PATCH of `sid` that carries a total_cost: the periods so far and the PATCH."""
    seen: list[ChargingPeriod] = []
    out = []
    for s, body in emsp.session_patches:
        if s != sid:
            continue
        seen += [ChargingPeriod.model_validate(cp) for cp in body.get("charging_periods", [])]
        if "total_cost" in body and seen:
            out.append((list(seen), body))
    return out


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_simulated_cdrs_priced_again_by_the_bridge(scenario: Scenario,
                                                         emsp_double: EmspDouble) -> None:
    emsp = emsp_double
    runner, cpo, http = await _run_mock(scenario.epoch)
    try:
        status, data = await cpo.admin("POST", "/admin/connect",
                                       {"versions_url": emsp.versions_url(), "token": emsp.token_a})
        assert status == 200, data
        # The handshake and the network push took wall time: start the scenario at its
        # epoch (at 7200x a slow second here would move it by two simulated hours).
        cpo.mock.clock.restart(scenario.epoch)
        sids = []
        for i, plug in enumerate(scenario.plugs):
            uid = f"CARD{i}"
            emsp.authorize[uid] = ALLOWED
            status, data = await cpo.admin("POST", "/admin/sessions/start", {
                "evse": plug.evse, "token_uid": uid, "token_type": "RFID", "car": plug.car})
            assert status == 200, data
            sids.append(data["session_id"])

        async def stop_later(sid: str, delay: float) -> None:
            await asyncio.sleep(delay)
            await cpo.admin("POST", f"/admin/sessions/{sid}/stop")

        async def cut_later(delay: float, location: str, duration: int, outcome: str) -> None:
            await asyncio.sleep(delay)
            status, data = await cpo.admin("POST", "/admin/faults/power-cut", {
                "location_id": location, "duration": duration, "outcome": outcome})
            assert status == 200, data

        extra = [stop_later(sid, p.stop_after) for sid, p in zip(sids, scenario.plugs, strict=True)
                 if p.stop_after is not None]
        extra += [cut_later(*cut) for cut in scenario.cuts]
        await asyncio.gather(*extra)
        await emsp.wait(lambda: len(emsp.cdrs) == len(sids), limit=15)
    finally:
        await http.close()
        await runner.cleanup()

    cdrs = [CDR.model_validate(doc) for doc in emsp.cdrs]
    assert {c.session_id for c in cdrs} == set(sids)
    tariffs = {t.id: t for t in network().tariffs}
    for cdr in cdrs:
        ours = assert_cdr_agrees(cdr, scenario.name)
        assert ours.total_cost.excl_vat > 0 and not ours.warnings
        # the Session PATCHes on the way carried the same cost as the bridge's
        tariff = tariffs[cdr.tariffs[0].id if cdr.tariffs else ""]
        for periods, body in _patched_periods(emsp, cdr.session_id or ""):
            end = (datetime.fromisoformat(body["end_date_time"]) if "end_date_time" in body
                   else periods[-1].start_date_time + timedelta(seconds=FAST.tick_seconds))
            so_far = price(tariff, periods, start=cdr.start_date_time, end=end, time_zone=IST)
            sent = (D(str(body["total_cost"]["excl_vat"])), D(str(body["total_cost"]["incl_vat"])))
            assert (so_far.total_cost.excl_vat, so_far.total_cost.incl_vat) == sent, \
                (cdr.session_id, len(periods))
    # the scenario did exercise what it is for: a peak boundary crossed, a power cut metered
    hours = [{p.start_date_time.astimezone(ZoneInfo(IST)).hour for p in c.charging_periods} for c in cdrs]
    assert any({17, 18} <= h or {20, 21} <= h for h in hours)
    assert any([str(d.type) for d in p.dimensions] == ["ENERGY"] for c in cdrs for p in c.charging_periods)
