"""quote(): the seed's worked figures and every policy feature, as tables where they fit."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from bridge.mapping.policy import parse_policy
from bridge.mapping.projection import ChargingModel, Usage
from bridge.mapping.quote import BuyerFinderFee, Customer, LineKind, quote, quote_request
from tests.pricing.pricing_support import D, inr_tariff, local, period

TZ = "Asia/Kolkata"
SEED = parse_policy("""
currency = "INR"
[default]
overage_percent = "10"
buyer_finder_fee_cap_percent = "5"
grace_minutes = 10
idle_fee_per_minute = "2"
refund_terms = [{ min_hours_before = 4, percent = "85" }]
[parties."IN-TPC"]
[[parties."IN-TPC".surcharges]]
id = "congestion"
title = "Congestion fee"
per_kwh = "1"
start_time = "18:00"
end_time = "21:00"
[parties."IN-SF1"]
service_fee = "10"
[parties."IN-PCT"]
service_fee_percent = "5"
[[offers]]
id = "charge-5-save-20"
title = "Offer: ₹20 off above 5 kWh"
amount_off = "20"
min_kwh = "5"
valid_until = "2025-08-03"
parties = ["IN-OFR"]
[[loyalty]]
phone = "+91-9887766554"
program = "GreenCharge Gold"
percent_off = "5"
[[fleets]]
id = "FLEET-ACME-01"
name = "Acme Logistics"
percent_off = "12"
service_fee_waived = true
""")


def at(hhmm: str, day: str = "2025-07-30") -> Any:
    return local(f"{day} {hhmm}", TZ)


def usage(start: str, *kwh_per_10min: str, parking_min: int = 0) -> Usage:
    t = at(start)
    periods = []
    for k in kwh_per_10min:
        periods.append(period(t, energy=k, time=D(1) / 6))
        t += timedelta(minutes=10)
    if parking_min:
        periods.append(period(t, parking=D(parking_min) / 60))
        t += timedelta(minutes=parking_min)
    return Usage(tuple(periods), at(start), t)


def lines(q: Any) -> list[tuple[str, Decimal]]:
    return [(ln.kind.value, ln.amount) for ln in q.lines]


def test_seed_congestion_estimate_5_kwh_is_85() -> None:
    """Seed "Surge Pricing": base ₹16/kWh + congestion ₹1/kWh 18:00-21:00, 5 kWh -> ₹85."""
    q = quote_request(inr_tariff(), SEED, start=at("18:25"), model=ChargingModel(D(30)), party="IN-TPC",
                      time_zone=TZ, energy_kwh=D(5))
    assert lines(q) == [("charge", D("80.00")), ("surcharge", D("5.00"))]
    assert q.total == D("85.00") and q.estimate == D("85.00")
    assert q.lines[1].title == "Congestion fee (₹1.00/kWh × 5 kWh)"
    assert q.end == at("18:35")


def test_seed_congestion_receipt_5_2_kwh_is_88_40() -> None:
    q = quote(inr_tariff(), usage("18:25", "2.6", "2.6"), SEED, party="IN-TPC", time_zone=TZ)
    assert lines(q) == [("charge", D("83.20")), ("surcharge", D("5.20"))]
    assert q.total == D("88.40")
    assert q.lines[0].title == "Charging session cost (5.2 kWh @ ₹16.00/kWh)"
    assert q.lines[1].title == "Congestion fee (₹1.00/kWh × 5.2 kWh)"


def test_congestion_only_for_energy_inside_the_window() -> None:
    q = quote(inr_tariff(), usage("17:50", "1", "1", "1"), SEED, party="IN-TPC", time_zone=TZ)
    assert lines(q) == [("charge", D("48.00")), ("surcharge", D("2.00"))]


def test_seed_offer_60_minus_20_is_40() -> None:
    t = inr_tariff({"price_components": [{"type": "ENERGY", "price": "10", "step_size": 1}]})
    q = quote(t, usage("10:00", "3", "3"), SEED, party="IN-OFR", time_zone=TZ)
    assert lines(q) == [("charge", D("60.00")), ("discount", D("-20.00"))]
    assert q.total == D("40.00") and q.offers_applied == ("charge-5-save-20",)


@pytest.mark.parametrize(("kwh", "day", "applied", "note"), [
    ("5", "2025-07-30", True, None),  # threshold inclusive: "Charge >= 5 kWh to get ₹20 off"
    ("3.2", "2025-07-30", False, "not applied, 3.2 kWh < 5 kWh"),
    ("6", "2025-08-03", True, None),  # valid_until is inclusive
    ("6", "2025-08-04", False, None),
])
def test_offer_threshold_and_validity(kwh: str, day: str, applied: bool, note: str | None) -> None:
    t = inr_tariff({"price_components": [{"type": "ENERGY", "price": "10", "step_size": 1}]})
    u = Usage((period(at("10:00", day), energy=kwh),), at("10:00", day), at("10:30", day))
    q = quote(t, u, SEED, party="IN-OFR", time_zone=TZ)
    assert (q.amount(LineKind.DISCOUNT) == D(-20)) is applied
    if note:
        assert any(note in n for n in q.notes)


def test_offer_only_at_its_parties() -> None:
    t = inr_tariff({"price_components": [{"type": "ENERGY", "price": "10", "step_size": 1}]})
    q = quote(t, usage("10:00", "3", "3"), SEED, party="IN-ZZZ", time_zone=TZ)
    assert q.total == D("60.00")


def test_seed_select_example_5_kwh_at_18_plus_service_fee() -> None:
    t = inr_tariff({"price_components": [{"type": "ENERGY", "price": "18", "step_size": 1}]})
    q = quote(t, usage("10:00", "2.5", "2.5"), SEED, party="IN-SF1", time_zone=TZ)
    assert [(ln.title, ln.amount) for ln in q.lines] == [
        ("Charging session cost (5 kWh @ ₹18.00/kWh)", D("90.00")), ("Service fee", D("10.00"))]
    assert q.total == D("100.00")


def test_service_fee_percent() -> None:
    q = quote(inr_tariff(), usage("10:00", "5"), SEED, party="IN-PCT", time_zone=TZ)
    assert lines(q) == [("charge", D("80.00")), ("fee", D("4.00"))]


def test_peak_window_prices_the_two_parts_differently() -> None:
    """A 5 kWh quote at 17:50 on a tariff whose price changes at 18:00."""
    t = inr_tariff(
        {"price_components": [{"type": "ENERGY", "price": "20", "step_size": 1}],
         "restrictions": {"start_time": "18:00", "end_time": "21:00"}},
        {"price_components": [{"type": "ENERGY", "price": "16", "step_size": 1}]},
    )
    q = quote_request(t, SEED, start=at("17:50"), model=ChargingModel(D(15)), party="IN-SF1",
                      time_zone=TZ, energy_kwh=D(5))
    assert q.charges.total == D("90")  # 2.5 kWh x 16 + 2.5 kWh x 20
    assert q.lines[0].title == "Charging session cost (5 kWh)"


def test_budget_buys_energy_within_the_whole_bill() -> None:
    """Seed: "charge for up to ₹100" with ₹16/kWh and a ₹10 service fee -> 5.625 kWh."""
    q = quote_request(inr_tariff(), SEED, start=at("10:00"), model=ChargingModel(D(30)), party="IN-SF1",
                      time_zone=TZ, budget=D(100))
    assert q.energy_kwh == D("5.625") and q.total == D("100.00")
    assert q.end == at("10:00") + timedelta(minutes=11, seconds=15)


def test_budget_too_small_for_a_session() -> None:
    q = quote_request(inr_tariff(), SEED, start=at("10:00"), model=ChargingModel(D(30)), party="IN-SF1",
                      time_zone=TZ, budget=D(5))
    assert q.energy_kwh == 0 and any("does not cover" in n for n in q.notes)


def test_prepaid_overage_provision_500_plus_50() -> None:
    t = inr_tariff({"price_components": [{"type": "ENERGY", "price": "20", "step_size": 1}]})
    q = quote(t, usage("10:00", "25"), SEED, party="IN-SF2", time_zone=TZ, prepaid=True)
    assert lines(q) == [("charge", D("500.00")), ("overage", D("50.00"))]
    assert (q.estimate, q.total) == (D("500.00"), D("550.00"))
    assert "unused portion refunded" in q.lines[1].title


@pytest.mark.parametrize(("customer", "expected", "note"), [
    (Customer(phone="98877 66554"), [("charge", D("80.00")), ("fee", D("10.00")), ("discount", D("-4.00"))],
     None),
    (Customer(fleet_id="FLEET-ACME-01", fleet_verified=True), [("charge", D("80.00")), ("discount", D("-9.60"))],
     None),
    (Customer(fleet_id="FLEET-ACME-01"), [("charge", D("80.00")), ("fee", D("10.00"))], "not verified"),
    (Customer(fleet_id="NOPE"), [("charge", D("80.00")), ("fee", D("10.00"))], "unknown fleet"),
    (Customer(phone="+91 1111111111"), [("charge", D("80.00")), ("fee", D("10.00"))], None),
])
def test_loyalty_and_fleet(customer: Customer, expected: list[tuple[str, Decimal]], note: str | None) -> None:
    q = quote(inr_tariff(), usage("10:00", "5"), SEED, party="IN-SF1", time_zone=TZ, customer=customer)
    assert lines(q) == expected
    if note:
        assert any(note in n for n in q.notes)


@pytest.mark.parametrize(("declared", "percent", "amount", "capped"), [
    (BuyerFinderFee(percent=D(3)), D(3), D("2.40"), False),
    (BuyerFinderFee(percent=D(10)), D(5), D("4.00"), True),
    (BuyerFinderFee(amount=D(2)), D("2.5"), D("2.00"), False),
    (BuyerFinderFee(amount=D(8)), D(5), D("4.00"), True),
])
def test_buyer_finder_fee_is_shown_and_capped(
    declared: BuyerFinderFee, percent: Decimal, amount: Decimal, capped: bool
) -> None:
    q = quote(inr_tariff(), usage("10:00", "5"), SEED, party="IN-XYZ", time_zone=TZ, buyer_finder_fee=declared)
    f = q.buyer_finder_fee
    assert f is not None and (f.percent, f.amount, f.capped) == (percent, amount, capped)
    assert q.total == D("80.00")  # shown, not added


def test_idle_fee_after_grace() -> None:
    q = quote(inr_tariff(), usage("10:00", "5", parking_min=30), SEED, party="IN-XYZ", time_zone=TZ)
    assert lines(q) == [("charge", D("80.00")), ("fee", D("40.00"))]
    assert q.lines[1].title == "Idle fee (20 min after a 10 min grace period)"


@pytest.mark.parametrize(("parking_hours", "minutes"), [
    (D(10) / 60, 0),  # exactly the 10 min grace period: no fee (issue 12, finding 11)
    (D("0.16666666666666666"), 0),  # the same, as a CDR's JSON number carries it
    (D(601) / 3600, 1),  # one second over: one started minute
    (D(11) / 60, 1),
    (D(30) / 60, 20),
    (D(0), 0),
    ([D(15) / 3600] * 40, 0),  # 40 meter ticks of 15 s: 10 min, with Decimal noise in the sum
    ([D(15) / 3600] * 41, 1),
])
def test_idle_fee_grace_boundary_on_exact_durations(parking_hours: Any, minutes: int) -> None:
    """Parking is compared with the grace period on the exact duration; only the result is
    rounded (up to started minutes), once, as the tariff engine rounds its time."""
    t = at("10:00")
    periods = [period(t, energy="5", time=D(1) / 6)]
    t += timedelta(minutes=10)
    for hours in parking_hours if isinstance(parking_hours, list) else [parking_hours]:
        if hours:
            periods.append(period(t, parking=hours))
            t += timedelta(seconds=float(hours * 3600))
    u = Usage(tuple(periods), at("10:00"), t)
    q = quote(inr_tariff(), u, SEED, party="IN-XYZ", time_zone=TZ)
    idle = [ln for ln in q.lines if ln.code == "idle-fee"]
    if minutes:
        assert [ln.amount for ln in idle] == [D(2) * minutes]
        assert idle[0].title == f"Idle fee ({minutes} min after a 10 min grace period)"
    else:
        assert idle == []


def test_discounts_never_make_the_bill_negative() -> None:
    t = inr_tariff({"price_components": [{"type": "ENERGY", "price": "1", "step_size": 1}]})
    q = quote(t, usage("10:00", "3", "3"), SEED, party="IN-OFR", time_zone=TZ)
    assert lines(q) == [("charge", D("6.00")), ("discount", D("-6.00"))] and q.total == 0


def test_charge_lines_add_up_to_the_rounded_cpo_total() -> None:
    t = inr_tariff({"price_components": [{"type": "ENERGY", "price": "0.333", "vat": "18", "step_size": 1},
                                         {"type": "FLAT", "price": "0.333", "vat": "18", "step_size": 1}]})
    q = quote(t, usage("10:00", "1.5"), SEED, party="IN-XYZ", time_zone=TZ)
    exact = q.charges.total
    assert sum(ln.amount for ln in q.lines) == exact.quantize(D("0.01"))


def test_quote_json_shape() -> None:
    q = quote(inr_tariff(), usage("18:25", "2.6", "2.6"), SEED, party="IN-TPC", time_zone=TZ)
    out = q.to_json()
    assert out["total"] == 88.4 and out["currency"] == "INR"
    assert out["lines"][1] == {"title": "Congestion fee (₹1.00/kWh × 5.2 kWh)", "amount": 5.2,
                               "currency": "INR", "kind": "surcharge", "code": "surcharge:congestion"}
    assert out["refund_terms"] == [{"min_hours_before": 4, "percent": 85}]


def test_quote_needs_a_price_source() -> None:
    with pytest.raises(ValueError, match="needs a tariff"):
        quote(None, usage("10:00", "1"), SEED, party="IN-XYZ", time_zone=TZ)
