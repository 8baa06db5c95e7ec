"""The mock's pricing: step sizes, the CDR rules, local time, thresholds (the spec's worked
examples are in tests/conformance/pricing/test_mock_on_spec_tariffs.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from bridge.ocpi.models import Tariff
from ocpi_mock.pricing import Kind, Period, periods_from_charging_periods, price, round_money

MONDAY = datetime(2024, 1, 1, tzinfo=UTC)  # 2024-01-01 is a Monday
SATURDAY = datetime(2024, 1, 6, tzinfo=UTC)


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
