"""The result's figures under the CDR chapter's names (mod_cdrs CDR object), and the
warnings on charging periods outside the session (issue 17)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from bridge.mapping.policy import parse_policy
from bridge.mapping.settlement import Payment, PaymentMode, settle
from bridge.mapping.tariff import price, price_cdr
from tests.pricing.pricing_support import D, inr_cdr, inr_tariff, local, make_tariff, period, session

TIME_AND_PARKING = make_tariff([
    {"price_components": [{"type": "TIME", "price": "2", "step_size": 1}]},
    {"price_components": [{"type": "PARKING_TIME", "price": "1", "step_size": 1}]},
])


def test_total_time_is_the_whole_session_charging_time_has_its_own_name() -> None:
    # mod_cdrs: total_time "including the duration of charging and not charging";
    # its note: total_charging_time = total_time - total_parking_time.
    sh = session(local("2024-01-15 10:00"), ("charge", 60, {"energy": 10}), ("park", 30, {}))
    r = price(TIME_AND_PARKING, sh.periods, start=sh.start, end=sh.end, time_zone="Europe/Berlin")
    assert r.total_time == D("1.5")
    assert r.total_parking_time == D("0.5")
    assert r.total_charging_time == D(1)
    assert r.time_volume == D(1) and r.total_energy == D(10)
    out = r.to_json()
    assert (out["total_time"], out["total_charging_time"], out["total_parking_time"]) == (1.5, 1, 0.5)
    assert out["volumes"] == {"ENERGY": 10, "TIME": 1, "PARKING_TIME": 0.5, "RESERVATION_TIME": 0}
    assert out["billed"] == {"ENERGY": 0, "TIME": 1, "PARKING_TIME": 0.5, "RESERVATION_TIME": 0}
    assert "total_reservation_time" not in out


def test_periods_reporting_only_energy_still_have_the_session_duration() -> None:
    # The peer's fixtures: one ENERGY-only period from 14:30 to 15:30 has total_time 1.
    s = local("2022-01-13 14:30", "UTC")
    r = price(make_tariff([{"price_components": [{"type": "ENERGY", "price": "0.25", "step_size": 1}]}]),
              [period(s, energy=20)], start=s, end=s + timedelta(hours=1), time_zone="UTC")
    assert r.total_time == 1 and r.total_charging_time == 1 and r.time_volume == 0


def test_periods_outside_the_session_are_priced_with_a_warning() -> None:
    s = local("2025-08-20 12:20:06", "UTC")
    t = make_tariff([{"price_components": [{"type": "ENERGY", "price": "0.25", "step_size": 1}]}])
    early = [period(s - timedelta(minutes=20), energy=4), period(s + timedelta(minutes=40), energy=1)]
    r = price(t, early, start=s, end=s + timedelta(minutes=45), time_zone="UTC")
    assert r.total_cost.excl_vat == D("1.25")
    assert len(r.warnings) == 1
    assert "charging period 1 starts at 2025-08-20T12:00:06Z, before the session's start" in r.warnings[0]
    late = [period(s, energy=4), period(s + timedelta(minutes=50), energy=1)]
    r = price(t, late, start=s, end=s + timedelta(minutes=45), time_zone="UTC")
    assert len(r.warnings) == 1 and "charging period 2" in r.warnings[0] and "after" in r.warnings[0]
    inside = [period(s, energy=4), period(s + timedelta(minutes=45), energy=0)]
    assert price(t, inside, start=s, end=s + timedelta(minutes=45), time_zone="UTC").warnings == ()


def test_price_cdr_warns_on_periods_before_the_cdr_start() -> None:
    s = local("2025-07-30 12:00", "Asia/Kolkata")
    cdr = inr_cdr([period(s, energy="2"), period(s + timedelta(minutes=30), energy="3")],
                  s + timedelta(hours=1), "80")
    cdr = cdr.model_copy(update={"start_date_time": s + timedelta(minutes=10)})
    r = price_cdr(cdr, "Asia/Kolkata")
    assert any("before the session's start_date_time" in w for w in r.warnings)


def test_final_bill_names_the_charging_time_not_the_session_duration() -> None:
    # A CDR of 1 h charging then 30 min parking: total_time 1.5, total_parking_time 0.5.
    # The "Charging time" line is total_time - total_parking_time = 1 h (was 1 h 30 min).
    s = local("2025-07-30 12:00", "Asia/Kolkata")
    t = inr_tariff({"price_components": [{"type": "TIME", "price": "100", "step_size": 1}]},
                   {"price_components": [{"type": "PARKING_TIME", "price": "20", "step_size": 1}]})
    cdr = inr_cdr([period(s, time="1"), period(s + timedelta(hours=1), parking="0.5")],
                  s + timedelta(minutes=90), "110", tariff=t, total_time_cost={"excl_vat": "100"},
                  total_parking_cost={"excl_vat": "10"}, total_parking_time="0.5", total_time="1.5")
    st = settle(cdr, policy=parse_policy('currency = "INR"\n'), payment=Payment(PaymentMode.POSTPAID),
                party="IN-TPC", time_zone="Asia/Kolkata")
    titles = [ln.title for ln in st.lines]
    assert "Charging time (1 h 0 min)" in titles and "Parking time (30 min)" in titles


@pytest.mark.parametrize(("exact", "rounded"), [
    # a true half cent computed as 0.36/3600 * 50 (divided first): 28th-digit noise
    (Decimal("0.36") / Decimal(3600) * 50, Decimal("0.01")),
    (Decimal("0.0049999999999999999999999999"), Decimal("0.01")),
    (Decimal("0.005"), Decimal("0.01")),
    (Decimal("0.004999999"), Decimal("0.00")),  # a real amount under the half: down
    (Decimal("5.625"), Decimal("5.63")),  # the OCPI example: half up
    (Decimal("123456789012345678.905"), Decimal("123456789012345678.91")),  # too big to denoise
])
def test_money_rounds_a_true_half_up_through_decimal_noise(exact: Decimal, rounded: Decimal) -> None:
    from bridge.mapping.money import PriceAmount, round_money

    assert round_money(exact, "EUR") == rounded
    assert PriceAmount(exact, exact).quantized(Decimal("0.01")) == PriceAmount(rounded, rounded)
