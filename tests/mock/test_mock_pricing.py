"""The mock's pricing against the spec's worked examples (TARIFF-CASES.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from bridge.ocpi.models import Tariff
from ocpi_mock.pricing import Kind, Period, periods_from_charging_periods, price, round_money

EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "ocpi" / "examples"
MONDAY = datetime(2024, 1, 1, tzinfo=UTC)  # 2024-01-01 is a Monday
SATURDAY = datetime(2024, 1, 6, tzinfo=UTC)


def tariff(name: str) -> Tariff:
    data = json.loads((EXAMPLES / name).read_text())
    data.setdefault("last_updated", "2024-01-01T00:00:00Z")
    return Tariff.model_validate(data)


def inline(*elements: dict, **extra: object) -> Tariff:
    return Tariff.model_validate({"country_code": "DE", "party_id": "ALL", "id": "x",
                                  "currency": "EUR", "elements": list(elements),
                                  "last_updated": "2024-01-01T00:00:00Z", **extra})


def at(day: datetime, hhmm: str) -> datetime:
    h, m = hhmm.split(":")
    return day.replace(hour=int(h), minute=int(m))


def charge(start: datetime, minutes: float, kwh: str = "0", **kw: object) -> Period:
    return Period(start, start + timedelta(minutes=minutes), Kind.CHARGING, D(kwh), **kw)


def park(start: datetime, minutes: float) -> Period:
    return Period(start, start + timedelta(minutes=minutes), Kind.PARKING)


def session(start: datetime, *parts: tuple[str, float, str]) -> list[Period]:
    """parts: (kind, minutes, kwh) laid end to end from start."""
    out, t = [], start
    for kind, minutes, kwh in parts:
        end = t + timedelta(minutes=minutes)
        out.append(Period(t, end, Kind(kind), D(kwh)))
        t = end
    return out


T0 = at(MONDAY, "10:00")
C, P, R = "CHARGING", "PARKING", "RESERVATION"

CASES = [
    # (case, tariff, periods, kwargs, expected excl, expected incl (None: not checked))
    ("1 tariff_8", tariff("tariff_8_simple_025kwh.json"), session(T0, (C, 60, "20")), {},
     "5.00", "5.50"),
    ("2 tariff_9", tariff("tariff_9_025kwh_start.json"), session(T0, (C, 60, "20")), {},
     "5.50", "6.10"),
    ("3a tariff_12", tariff("tariff_12_025kwh_min_price.json"), session(T0, (C, 60, "20")), {},
     "5.00", "5.50"),
    ("3b tariff_12 min", tariff("tariff_12_025kwh_min_price.json"), session(T0, (C, 20, "1.5")),
     {}, "0.50", "0.55"),
    ("4 tariff_10", tariff("tariff_10_025kwh_parking_start.json"),
     session(T0, (C, 60, "20"), (P, 40, "0")), {}, "7.00", "7.90"),
    ("5a tariff_6 max", tariff("tariff_6_025kwh_start_max_price.json"),
     session(T0, (C, 120, "50")), {}, "10.00", "11.00"),
    ("5b tariff_6", tariff("tariff_6_025kwh_start_max_price.json"), session(T0, (C, 90, "30")),
     {}, "8.00", "8.85"),
    ("6 tariff_1", tariff("tariff_1_simple_2hour.json"), session(T0, (C, 150, "30")), {},
     "5.00", "5.50"),
    ("7 tariff_13", tariff("tariff_13_simple_3hour_5parking.json"),
     session(T0, (C, 150, "30"), (P, 42, "0")), {}, "11.25", "12.75"),
    ("8 tariff_2", tariff("tariff_2_alt_text.json"), session(T0, (C, 150, "30")), {},
     "4.75", "5.00"),
    ("9 tariff_3", tariff("tariff_3_alt_url.json"), session(T0, (C, 60, "20.45")), {},
     "5.63", "6.24"),
    ("10 tariff_4 monday", tariff("tariff_4_complex.json"),
     [charge(at(MONDAY, "09:30"), 165, "20", current=D(16)), park(at(MONDAY, "12:15"), 42)], {},
     "9.00", "10.30"),
    ("11 tariff_4 saturday", tariff("tariff_4_complex.json"),
     [charge(at(SATURDAY, "13:30"), 114, "30", current=D(43)), park(at(SATURDAY, "15:24"), 71)],
     {}, "12.375", "13.975"),
    ("12 tariff_5 free", tariff("tariff_5_free_of_charge.json"),
     session(T0, (C, 60, "20"), (P, 10, "0")), {}, "0.00", "0.00"),
    ("13 tariff_15", tariff("tariff_15_reservation_5_euro_per_hour.json"),
     session(T0, (R, 15, "0"), (C, 60, "20")), {}, "6.75", "7.60"),
    ("14 tariff_16", tariff("tariff_16_reservation_2_euro_fee_5_euro_per_hour.json"),
     session(T0, (R, 13, "0"), (C, 60, "20")), {}, "8.75", "10.00"),
    ("15a tariff_17", tariff("tariff_17_reservation_with_expire_fee.json"),
     session(T0, (R, 22, "0"), (C, 60, "20")), {}, "6.50", "7.30"),
    ("15b tariff_17 expired", tariff("tariff_17_reservation_with_expire_fee.json"),
     session(T0, (R, 60, "0")), {"reservation_expired": True}, "6.00", "7.20"),
    ("16a tariff_18", tariff("tariff_18_reservation_with_expire_time.json"),
     session(T0, (R, 22, "0"), (C, 60, "20")), {}, "7.00", "7.90"),
    ("16b tariff_18 expired", tariff("tariff_18_reservation_with_expire_time.json"),
     session(T0, (R, 90, "0")), {"reservation_expired": True}, "9.00", "10.80"),
    ("17 max_power", tariff("tariffrestriction_example_max_power.json"),
     [charge(T0, 10, "1", power=D(6)), charge(T0 + timedelta(minutes=10), 50, "40", power=D(48)),
      charge(T0 + timedelta(minutes=60), 7.5, "0.5", power=D(4))], {}, "20.30", None),
    ("18 max_duration", tariff("tariffrestriction_example_max_duration.json"),
     session(T0, (C, 30, "5"), (C, 10, "1.2")), {}, "0.30", None),
    ("19 tariff_14 16:55", tariff("tariff_14_step_size.json"),
     session(at(MONDAY, "16:55"), (C, 10, "2"), (P, 2, "0")), {}, "0.55", "0.55"),
    ("20 tariff_14 16:35", tariff("tariff_14_step_size.json"),
     session(at(MONDAY, "16:35"), (C, 35, "5")), {}, "1.30", "1.30"),
    ("21 tariff_14 19:40", tariff("tariff_14_step_size.json"),
     session(at(MONDAY, "19:40"), (C, 12, "2"), (P, 20, "0")), {}, "0.73", "0.73"),
    ("27 cdr_example", inline({"price_components": [
        {"type": "TIME", "price": 2.00, "vat": 10.0, "step_size": 300}]}),
     [Period(T0, T0 + timedelta(hours=1.973), Kind.CHARGING, D("15.342"))], {}, "4.00", "4.40"),
]


@pytest.mark.parametrize(("case", "tar", "periods", "kwargs", "excl", "incl"), CASES,
                         ids=[c[0] for c in CASES])
def test_spec_examples(case: str, tar: Tariff, periods: list[Period], kwargs: dict,
                       excl: str, incl: str | None) -> None:
    result = price(tar, periods, "UTC", **kwargs)
    places = max(2, -D(excl).as_tuple().exponent)
    assert round_money(result.total.excl, places) == D(excl)
    if incl is not None:
        assert round_money(result.total.incl, places) == D(incl)


@pytest.mark.parametrize(("step", "expected"), [(1, "0.029"), (25, "0.03125"), (500, "0.125")])
def test_energy_step_size_note(step: int, expected: str) -> None:
    tar = inline({"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": step}]})
    result = price(tar, [charge(T0, 1, "0.1152")])
    assert result.total.excl == D(expected)


def test_cdr_rule_time_and_parking_step() -> None:
    tar = inline({"price_components": [{"type": "TIME", "price": 1, "step_size": 300},
                                       {"type": "PARKING_TIME", "price": 1, "step_size": 300}]})
    result = price(tar, session(T0, (C, 21, "5"), (P, 7, "0")))
    assert result.billed_time_hours * 60 == 21
    assert result.billed_parking_hours * 60 == 10


def test_cdr_rule_energy_step_after_1700() -> None:
    tar = inline(
        {"price_components": [{"type": "ENERGY", "price": 0.20, "step_size": 500}],
         "restrictions": {"end_time": "17:00"}},
        {"price_components": [{"type": "ENERGY", "price": 0.27, "step_size": 500}]})
    result = price(tar, session(at(MONDAY, "16:30"), (C, 30, "4.3"), (C, 20, "1.1")))
    assert result.billed_kwh == D("5.5")
    assert result.energy.excl == D("4.3") * D("0.20") + D("1.2") * D("0.27")


def test_cdr_rule_time_step_after_1700() -> None:
    tar = inline(
        {"price_components": [{"type": "TIME", "price": 5, "step_size": 600}],
         "restrictions": {"end_time": "17:00"}},
        {"price_components": [{"type": "TIME", "price": 7, "step_size": 600}]})
    result = price(tar, session(at(MONDAY, "16:54"), (C, 28, "5")))
    assert result.time.excl == D(5) * 6 / 60 + D(7) * 24 / 60


def test_cdr_rule_parking_rounds_total_41_minutes() -> None:
    tar = inline({"price_components": [{"type": "TIME", "price": 1, "step_size": 600},
                                       {"type": "PARKING_TIME", "price": 2, "step_size": 600}]})
    result = price(tar, session(T0, (C, 21, "5"), (P, 16, "0")))
    assert (result.billed_time_hours + result.billed_parking_hours) * 60 == 41


def test_local_time_zone_peak_window() -> None:
    tar = inline(
        {"price_components": [{"type": "ENERGY", "price": 24, "vat": 18, "step_size": 1}],
         "restrictions": {"start_time": "18:00", "end_time": "21:00"}},
        {"price_components": [{"type": "ENERGY", "price": 20, "vat": 18, "step_size": 1}]},
        currency="INR")
    # 12:00 UTC is 17:30 IST: 30 min off-peak then 30 min peak, 10 kWh each
    start = at(MONDAY, "12:00")
    result = price(tar, [charge(start, 60, "20")], "Asia/Kolkata")
    assert result.energy.excl == D(200) + D(240)
    assert round_money(result.total.incl) == D("519.20")


def test_min_kwh_threshold_splits_energy_exactly() -> None:
    tar = inline(
        {"price_components": [{"type": "ENERGY", "price": 18, "step_size": 1}],
         "restrictions": {"min_kwh": 40}},
        {"price_components": [{"type": "ENERGY", "price": 21, "step_size": 1}]})
    result = price(tar, [charge(T0, 60, "50")])
    assert result.energy.excl == 40 * 21 + 10 * 18


def test_periods_from_charging_periods_roundtrip() -> None:
    from bridge.ocpi.models import ChargingPeriod

    cps = [ChargingPeriod.model_validate(
        {"start_date_time": "2024-01-01T10:00:00Z",
         "dimensions": [{"type": "ENERGY", "volume": 5}, {"type": "TIME", "volume": 0.5}]}),
        ChargingPeriod.model_validate(
        {"start_date_time": "2024-01-01T10:30:00Z",
         "dimensions": [{"type": "PARKING_TIME", "volume": 0.25}]})]
    periods = periods_from_charging_periods(cps, datetime(2024, 1, 1, 10, 45, tzinfo=UTC))
    assert [p.kind for p in periods] == [Kind.CHARGING, Kind.PARKING]
    assert periods[1].seconds == 900
