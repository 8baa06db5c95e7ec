"""The engine beyond the spec's worked examples: time zones and DST, splitting
at every kind of boundary, unpriced dimensions, conveniences and error paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from bridge.mapping.tariff import TariffError, price, price_cdr, price_session
from bridge.ocpi.models import CDR, Session
from tests.pricing.pricing_support import D, fixture, local, make_tariff, period, session

U = lambda s: datetime.fromisoformat(s).replace(tzinfo=UTC)  # noqa: E731


def energy_tariff(restricted: dict[str, Any], peak: str = "1.00", base: str = "0.10") -> Any:
    return make_tariff([
        {"price_components": [{"type": "ENERGY", "price": peak, "step_size": 1}], "restrictions": restricted},
        {"price_components": [{"type": "ENERGY", "price": base, "step_size": 1}]},
    ])


# A reservation FLAT fee of 4 when it expires, 2/h while reserved (own figures).
RESERVATION_WITH_EXPIRY_FEE = [
    {"price_components": [{"type": "FLAT", "price": "4.00", "step_size": 1}],
     "restrictions": {"reservation": "RESERVATION_EXPIRES"}},
    {"price_components": [{"type": "TIME", "price": "2.00", "step_size": 1}],
     "restrictions": {"reservation": "RESERVATION"}},
]


def one_period(start: datetime, end: datetime, **dims: Any) -> dict[str, Any]:
    return {"periods": [period(start, **dims)], "start": start, "end": end}


# Each row: restriction of the "peak" element (1.00/kWh; base 0.10), time zone, a single
# period (UTC) with evenly spread energy, and the kWh expected at the peak price.
SPLITS = [
    ("wrap past midnight", {"start_time": "22:00", "end_time": "06:00"}, "Europe/Berlin",
     "2024-01-15T20:30:00", "2024-01-15T21:30:00", "2", "1"),
    ("end 00:00 is end of day", {"start_time": "23:00", "end_time": "00:00"}, "Europe/Berlin",
     "2024-01-15T21:30:00", "2024-01-15T23:30:00", "4", "2"),
    ("DST spring forward: 02:30 does not exist, window active from 03:00", {"start_time": "02:30",
     "end_time": "04:00"}, "Europe/Amsterdam", "2024-03-31T00:00:00", "2024-03-31T03:00:00", "3", "1"),
    ("DST fall back: 02:00-03:00 happens twice", {"start_time": "02:00", "end_time": "03:00"},
     "Europe/Amsterdam", "2024-10-26T23:00:00", "2024-10-27T03:00:00", "4", "2"),
    ("day_of_week splits at local midnight", {"day_of_week": ["SATURDAY"]}, "Asia/Kolkata",
     "2024-01-19T17:30:00", "2024-01-19T19:30:00", "2", "1"),
    ("start_date inclusive", {"start_date": "2024-01-20"}, "Asia/Kolkata",
     "2024-01-19T17:30:00", "2024-01-19T19:30:00", "2", "1"),
    ("end_date exclusive", {"end_date": "2024-01-20"}, "Asia/Kolkata",
     "2024-01-19T17:30:00", "2024-01-19T19:30:00", "2", "1"),
    ("min_kwh inside one period", {"min_kwh": "10"}, "UTC",
     "2024-01-15T10:00:00", "2024-01-15T12:00:00", "20", "10"),
    ("max_kwh inside one period", {"max_kwh": "5"}, "UTC",
     "2024-01-15T10:00:00", "2024-01-15T12:00:00", "20", "5"),
    ("min_duration inside one period", {"min_duration": 1800}, "UTC",
     "2024-01-15T10:00:00", "2024-01-15T11:00:00", "6", "3"),
    ("max_duration inside one period", {"max_duration": 900}, "UTC",
     "2024-01-15T10:00:00", "2024-01-15T11:00:00", "8", "2"),
    ("time window and weekday together", {"start_time": "18:00", "end_time": "21:00",
     "day_of_week": ["MONDAY"]}, "Asia/Kolkata", "2024-01-15T12:00:00", "2024-01-15T16:30:00", "9", "6"),
    ("no offset in UTC", {"start_time": "10:30", "end_time": "11:00"}, "UTC",
     "2024-01-15T10:00:00", "2024-01-15T12:00:00", "4", "1"),
]


@pytest.mark.parametrize(("name", "restr", "tz", "start", "end", "kwh", "peak_kwh"), SPLITS,
                         ids=[s[0] for s in SPLITS])
def test_period_split_at_boundaries(
    name: str, restr: dict[str, Any], tz: str, start: str, end: str, kwh: str, peak_kwh: str
) -> None:
    s, e = U(start), U(end)
    r = price(energy_tariff(restr), [period(s, energy=kwh)], start=s, end=e, time_zone=tz)
    expected = D(peak_kwh) * 1 + (D(kwh) - D(peak_kwh)) * D("0.10")
    assert r.exact["total_cost"].excl_vat == pytest.approx(expected, abs=D("1e-12"))
    peak = sum((ln.volume for ln in r.lines if ln.element_index == 0), D(0))
    assert peak == pytest.approx(D(peak_kwh), abs=D("1e-12"))


def test_power_and_current_restrictions_need_a_value() -> None:
    """A min_current element does not apply when the period reports no current."""
    t = make_tariff([
        {"price_components": [{"type": "TIME", "price": "5", "step_size": 1}], "restrictions": {"min_current": 32}},
        {"price_components": [{"type": "TIME", "price": "1", "step_size": 1}]},
    ])
    s = U("2024-01-15T10:00:00")
    no_current = price(t, [period(s, time=1)], start=s, end=s + timedelta(hours=1), time_zone="UTC")
    assert no_current.total_cost.excl_vat == D("1.00")
    avg = price(t, [period(s, time=1, current=40)], start=s, end=s + timedelta(hours=1), time_zone="UTC")
    assert avg.total_cost.excl_vat == D("5.00")


def test_min_power_from_session_power_dimension() -> None:
    t = make_tariff([
        {"price_components": [{"type": "ENERGY", "price": "0.5", "step_size": 1}], "restrictions": {"min_power": 50}},
        {"price_components": [{"type": "ENERGY", "price": "0.3", "step_size": 1}]},
    ])
    s = U("2024-01-15T10:00:00")
    periods = [period(s, energy=10, power=60), period(s + timedelta(minutes=10), energy=10, power=20)]
    r = price(t, periods, start=s, end=s + timedelta(minutes=40), time_zone="UTC")
    assert r.total_cost.excl_vat == D("8.00")


def test_dimension_without_component_is_free_and_reported() -> None:
    t = make_tariff([{"price_components": [{"type": "ENERGY", "price": "0.25", "step_size": 1}]}])
    sh = session(local("2024-01-15 10:00"), ("charge", 60, {"energy": 10}), ("park", 30, {}))
    r = price(t, sh.periods, start=sh.start, end=sh.end, time_zone="Europe/Berlin")
    assert r.total_cost.excl_vat == D("2.50")
    assert r.unpriced == {"TIME": D(1), "PARKING_TIME": D("0.5")}
    assert r.time_volume == 1 and r.total_time == D("1.5") and r.billed_time == 0


def test_vat_omitted_means_no_vat_and_zero_vat_is_zero() -> None:
    for vat, incl in ((None, "2.50"), ("0", "2.50"), ("18", "2.95")):
        comp: dict[str, Any] = {"type": "ENERGY", "price": "0.25", "step_size": 1}
        if vat is not None:
            comp["vat"] = vat
        s = U("2024-01-15T10:00:00")
        r = price(make_tariff([{"price_components": [comp]}]), [period(s, energy=10)],
                  start=s, end=s + timedelta(hours=1), time_zone="UTC")
        assert r.total_cost.incl_vat == D(incl)


def test_step_size_zero_bills_exact_amounts() -> None:
    t = make_tariff([{"price_components": [{"type": "ENERGY", "price": "1", "step_size": 0}]}])
    s = U("2024-01-15T10:00:00")
    r = price(t, [period(s, energy="0.0001")], start=s, end=s + timedelta(hours=1), time_zone="UTC")
    assert r.exact["total_cost"].excl_vat == D("0.0001")




def test_zero_length_period_still_prices_its_volumes() -> None:
    t = make_tariff([{"price_components": [{"type": "ENERGY", "price": "0.25", "step_size": 1}]}])
    s = U("2024-01-15T10:00:00")
    r = price(t, [period(s, energy=4)], start=s, end=s, time_zone="UTC")
    assert r.total_cost.excl_vat == D("1.00")


def test_flat_with_a_time_window_is_charged_once_when_active() -> None:
    t = make_tariff([
        {"price_components": [{"type": "FLAT", "price": "2", "step_size": 1}],
         "restrictions": {"start_time": "18:00", "end_time": "21:00"}},
        {"price_components": [{"type": "ENERGY", "price": "1", "step_size": 1}]},
    ])
    s = local("2024-01-15 17:00", "UTC")
    sh = session(s, ("charge", 60, {"energy": 1}), ("charge", 60, {"energy": 1}), ("charge", 60, {"energy": 1}))
    r = price(t, sh.periods, start=sh.start, end=sh.end, time_zone="UTC")
    assert r.total_fixed_cost.excl_vat == D("2.00") and r.total_cost.excl_vat == D("5.00")
    early = price(t, sh.periods[:1], start=sh.start, end=sh.start + timedelta(hours=1), time_zone="UTC")
    assert early.total_fixed_cost.excl_vat == 0


def test_min_price_without_incl_vat_keeps_the_vat_rate() -> None:
    t = make_tariff([{"price_components": [{"type": "ENERGY", "price": "1", "vat": "10", "step_size": 1}]}],
                    min_price={"excl_vat": "5"})
    s = U("2024-01-15T10:00:00")
    r = price(t, [period(s, energy=1)], start=s, end=s + timedelta(hours=1), time_zone="UTC")
    assert (r.total_cost.excl_vat, r.total_cost.incl_vat) == (D("5.00"), D("5.50"))
    assert r.min_max_adjustment.excl_vat == D(4)












def test_tariff_validity_is_warned_about() -> None:
    t = make_tariff([{"price_components": [{"type": "ENERGY", "price": "1", "step_size": 1}]}],
                    end_date_time="2019-06-30T23:59:59Z", start_date_time="2019-01-01T00:00:00Z")
    s = U("2024-01-15T10:00:00")
    r = price(t, [period(s, energy=1)], start=s, end=s, time_zone="UTC")
    assert any("ended" in w for w in r.warnings)
    early = price(t, [period(U("2018-01-01T00:00:00"), energy=1)], start=U("2018-01-01T00:00:00"),
                  end=U("2018-01-01T00:00:00"), time_zone="UTC")
    assert any("becomes active" in w for w in early.warnings)


def test_unknown_time_zone_is_an_error() -> None:
    t = make_tariff([{"price_components": [{"type": "ENERGY", "price": "1", "step_size": 1}]}])
    s = U("2024-01-15T10:00:00")
    with pytest.raises(TariffError, match="Mars/Olympus"):
        price(t, [period(s, energy=1)], start=s, end=s, time_zone="Mars/Olympus")


# ----------------------------------------------------------------------- CDR and Session


def cdr_doc(**changes: Any) -> dict[str, Any]:
    doc = fixture("cdr_time.json")
    doc.update(changes)
    return doc


def test_price_cdr_without_time_zone_warns() -> None:
    r = price_cdr(CDR.model_validate(cdr_doc()))
    assert r.total_cost.excl_vat == D("240.00")
    assert any("UTC" in w for w in r.warnings)


def test_price_cdr_currency_mismatch_warns() -> None:
    r = price_cdr(CDR.model_validate(cdr_doc(currency="EUR")), "Asia/Kolkata")
    assert any("currency" in w for w in r.warnings)


@pytest.mark.parametrize(("changes", "message"), [
    ({"tariffs": None}, "has no tariffs"),
    ({"tariffs": [fixture("tariff_time_step60.json") | {"id": "99"}]}, "not in tariffs"),
])
def test_price_cdr_errors(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(TariffError, match=message):
        price_cdr(CDR.model_validate(cdr_doc(**changes)), "Asia/Kolkata")


def test_price_cdr_with_several_tariffs() -> None:
    doc = cdr_doc()
    second = dict(doc["charging_periods"][0], tariff_id="13", start_date_time="2026-01-12T05:09:09Z")
    doc["charging_periods"] = [doc["charging_periods"][0], second]
    with pytest.raises(TariffError, match="tariff_id '13' is not in tariffs"):
        price_cdr(CDR.model_validate(doc), "Asia/Kolkata")
    doc = cdr_doc(tariffs=[doc["tariffs"][0], doc["tariffs"][0] | {"id": "13"}])
    doc["charging_periods"] = [{k: v for k, v in doc["charging_periods"][0].items() if k != "tariff_id"}]
    with pytest.raises(TariffError, match="lists several tariffs"):
        price_cdr(CDR.model_validate(doc), "Asia/Kolkata")


def test_price_cdr_with_an_explicit_tariff_and_expired_reservation_inferred() -> None:
    doc = cdr_doc(charging_periods=[{"start_date_time": "2026-01-12T04:09:09Z",
                                     "dimensions": [{"type": "RESERVATION_TIME", "volume": 1}]}])
    t = make_tariff(RESERVATION_WITH_EXPIRY_FEE)
    r = price_cdr(CDR.model_validate(doc), "Asia/Kolkata", tariff=t)
    assert r.total_cost.excl_vat == D("6.00")  # FLAT 4 + 1 h at 2/h


def session_doc(**changes: Any) -> dict[str, Any]:
    doc = fixture("session_active.json")
    doc.update(changes)
    return doc


def test_price_session_active_uses_now() -> None:
    t = make_tariff(fixture("tariff_time_step60.json")["elements"])
    s = Session.model_validate(session_doc())
    now = s.start_date_time + timedelta(minutes=90)
    r = price_session(s, t, "Asia/Kolkata", now)
    assert r.total_cost.excl_vat == D("180.00")  # no periods: its duration as charging time


def test_price_session_with_periods() -> None:
    t = make_tariff([{"price_components": [{"type": "ENERGY", "price": "0.25", "step_size": 1}]}])
    doc = session_doc(charging_periods=[{"start_date_time": session_doc()["start_date_time"],
                                         "dimensions": [{"type": "ENERGY_IMPORT", "volume": 8}]}])
    s = Session.model_validate(doc)
    r = price_session(s, t, "Asia/Kolkata", s.start_date_time + timedelta(hours=1))
    assert r.total_cost.excl_vat == D("2.00")


def test_negative_energy_is_not_billed() -> None:
    t = make_tariff([{"price_components": [{"type": "ENERGY", "price": "1", "step_size": 1}]}])
    s = U("2024-01-15T10:00:00")
    periods = [period(s, energy=-2), period(s + timedelta(minutes=30), energy=3)]
    r = price(t, periods, start=s, end=s + timedelta(hours=1), time_zone="UTC")
    assert r.total_cost.excl_vat == D("3.00") and r.total_energy == 3


def test_results_are_exact_decimals() -> None:
    t = make_tariff([{"price_components": [{"type": "TIME", "price": "1", "step_size": 1}]}])
    s = U("2024-01-15T10:00:00")
    r = price(t, [period(s, time=D(1) / 3)], start=s, end=s + timedelta(minutes=20), time_zone="UTC")
    assert isinstance(r.total_cost.excl_vat, Decimal) and r.total_cost.excl_vat == D("0.33")
