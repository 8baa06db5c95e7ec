"""settle(): the seed's under- and overcharge figures, discrepancies, sessions, cancellations."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from structlog.testing import capture_logs

from bridge.mapping.policy import DiscrepancyWinner, RefundTerm, parse_policy
from bridge.mapping.projection import ChargingModel
from bridge.mapping.quote import quote_request
from bridge.mapping.settlement import Payment, PaymentMode, cancellation_refund, settle
from bridge.ocpi.models import Session
from tests.pricing.pricing_support import D, fixture, inr_cdr, inr_tariff, local, period

TZ = "Asia/Kolkata"
PLAIN = parse_policy('currency = "INR"\n')
FEE10 = parse_policy('currency = "INR"\n[parties."IN-TPC"]\nservice_fee = "10"\n')
PRE, HOLD, POST = PaymentMode.PREPAID, PaymentMode.HOLD, PaymentMode.POSTPAID


def cdr_for(kwh: str, unit: str = "16", total: str | None = None, start: str = "2025-07-30 12:00") -> Any:
    """A CDR of `kwh` at ₹`unit`/kWh whose total_cost is the engine's price unless `total` is given."""
    t = inr_tariff({"price_components": [{"type": "ENERGY", "price": unit, "step_size": 1}]})
    s = local(start, TZ)
    amount = total or str((D(kwh) * D(unit)).quantize(D("0.01")))
    return inr_cdr([period(s, energy=kwh, time="0.5")], s + timedelta(minutes=30), amount, tariff=t)


# The seed's figures: (name, policy, CDR kWh, ₹/kWh, payment) -> final, refund, capture, release, top_up
SEED = [
    ("completed charging: prepaid 100, final 78 (68 + service fee 10)", FEE10, "3.4", "20",
     Payment(PRE, D(100)), "78", "22", "0", "0", "0"),
    ("undercharge: prepaid 500, power cut after ₹212", PLAIN, "13.25", "16",
     Payment(PRE, D(500)), "212", "288", "0", "0", "0"),
    ("overcharge with a hold: hold 550, CDR 520", PLAIN, "32.5", "16",
     Payment(HOLD, D(550)), "520", "0", "520", "30", "0"),
    ("overcharge prepaid without mandate: 500, CDR 520 -> top-up 20", PLAIN, "32.5", "16",
     Payment(PRE, D(500)), "520", "0", "0", "0", "20"),
    ("overcharge prepaid with a mandate: capture the 20", PLAIN, "32.5", "16",
     Payment(PRE, D(500), mandate=True), "520", "0", "20", "0", "0"),
    ("hold too small, no mandate: capture the hold, top-up the rest", PLAIN, "32.5", "16",
     Payment(HOLD, D(500)), "520", "0", "500", "0", "20"),
    ("hold too small with a mandate: capture it all", PLAIN, "32.5", "16",
     Payment(HOLD, D(500), mandate=True), "520", "0", "520", "0", "0"),
    ("postpaid: payment request for the bill", PLAIN, "5", "16", Payment(POST), "80", "0", "0", "0", "80"),
    ("postpaid with a mandate: capture", PLAIN, "5", "16", Payment(POST, mandate=True), "80", "0", "80", "0", "0"),
    ("exact prepayment: nothing moves", PLAIN, "5", "16", Payment(PRE, D(80)), "80", "0", "0", "0", "0"),
]


@pytest.mark.parametrize(
    ("name", "policy", "kwh", "unit", "payment", "final", "refund", "capture", "release", "top_up"),
    SEED, ids=[row[0] for row in SEED],
)
def test_seed_settlements(name: str, policy: Any, kwh: str, unit: str, payment: Payment, final: str,
                          refund: str, capture: str, release: str, top_up: str) -> None:
    st = settle(cdr_for(kwh, unit), policy=policy, payment=payment, party="IN-TPC", time_zone=TZ)
    assert (st.final_amount, st.refund, st.capture, st.release, st.top_up) == (
        D(final), D(refund), D(capture), D(release), D(top_up))
    assert st.discrepancy is None and not st.provisional
    assert sum(ln.amount for ln in st.lines) == st.final_amount


def test_seed_completed_charging_lines() -> None:
    st = settle(cdr_for("3.4", "20"), policy=FEE10, payment=Payment(PRE, D(100)), party="IN-TPC", time_zone=TZ)
    assert [(ln.title, ln.amount) for ln in st.lines] == [
        ("Charging session cost (3.4 kWh)", D("68.00")), ("Service fee", D("10.00"))]
    assert "refund ₹22.00" in st.explanation


def test_congestion_on_the_final_energy_5_2_kwh() -> None:
    policy = parse_policy("""currency = "INR"
[[default.surcharges]]
id = "congestion"
title = "Congestion fee"
per_kwh = "1"
start_time = "18:00"
end_time = "21:00"
""")
    st = settle(cdr_for("5.2", "16", start="2025-07-30 18:25"), policy=policy, payment=Payment(PRE, D(100)),
                party="IN-TPC", time_zone=TZ)
    assert [ln.amount for ln in st.lines] == [D("83.20"), D("5.20")]
    assert (st.final_amount, st.refund) == (D("88.40"), D("11.60"))


def test_offer_follows_the_final_energy_not_the_quote() -> None:
    policy = parse_policy("""currency = "INR"
[[offers]]
id = "o"
title = "₹20 off above 5 kWh"
amount_off = "20"
min_kwh = "5"
""")
    t = inr_tariff({"price_components": [{"type": "ENERGY", "price": "10", "step_size": 1}]})
    quoted = quote_request(t, policy, start=local("2025-07-30 12:00", TZ), model=ChargingModel(D(30)),
                           party="IN-TPC", time_zone=TZ, energy_kwh=D(6))
    assert quoted.total == D("40.00")
    short = settle(cdr_for("3.2", "10"), policy=policy, payment=Payment(PRE, D(40)), party="IN-TPC",
                   time_zone=TZ, quoted=quoted)
    assert (short.final_amount, short.refund) == (D("32.00"), D("8.00"))
    assert any("not applied" in n for n in short.final.notes)
    longer = settle(cdr_for("7", "10"), policy=policy, payment=Payment(PRE, D(40)), party="IN-TPC",
                    time_zone=TZ, quoted=quoted)
    assert (longer.final_amount, longer.top_up) == (D("50.00"), D("10.00"))
    assert "quoted ₹40.00" in longer.explanation


@pytest.mark.parametrize(("cdr_total", "flagged"), [("80.00", False), ("80.01", False), ("80.02", True),
                                                     ("79.98", True)])
def test_discrepancy_beyond_one_minor_unit(cdr_total: str, flagged: bool) -> None:
    with capture_logs() as logs:
        st = settle(cdr_for("5", total=cdr_total), policy=PLAIN, payment=Payment(PRE, D(100)), party="IN-TPC",
                    time_zone=TZ)
    assert (st.discrepancy is not None) is flagged
    assert st.final_amount == D(cdr_total)  # the CDR wins by default
    events = [e for e in logs if e["event"] == "settlement.discrepancy"]
    assert bool(events) is flagged
    if flagged:
        assert events[0]["cdr_total"] == cdr_total and events[0]["engine_total"] == "80.00"
        assert st.discrepancy is not None and st.discrepancy.winner is DiscrepancyWinner.CDR


def test_engine_wins_when_policy_says_so() -> None:
    policy = parse_policy('currency = "INR"\ndiscrepancy_winner = "ENGINE"\n')
    st = settle(cdr_for("5", total="95.00"), policy=policy, payment=Payment(PRE, D(100)), party="IN-TPC",
                time_zone=TZ)
    assert st.discrepancy is not None and st.discrepancy.difference == D("15.00")
    assert (st.final_amount, st.refund) == (D("80.00"), D("20.00"))


def test_settlement_is_deterministic_and_keyed_by_the_cdr() -> None:
    cdr = cdr_for("5")
    a = settle(cdr, policy=FEE10, payment=Payment(PRE, D(100)), party="IN-TPC", time_zone=TZ)
    b = settle(cdr, policy=FEE10, payment=Payment(PRE, D(100)), party="IN-TPC", time_zone=TZ)
    assert a.key == "CDR:IN:TPC:CDR-1" and a.to_json() == b.to_json()


def test_cdr_the_engine_cannot_price_settles_on_the_cdr() -> None:
    cdr = cdr_for("5").model_copy(update={"tariffs": None})
    with capture_logs() as logs:
        st = settle(cdr, policy=PLAIN, payment=Payment(PRE, D(100)), party="IN-TPC", time_zone=TZ)
    assert st.final_amount == D("80.00") and st.engine is None and st.discrepancy is None
    assert logs[0]["event"] == "settlement.engine_cannot_price"


def session_for(**changes: Any) -> Session:
    doc = fixture("session_finished.json")
    doc.update(country_code="IN", party_id="TPC", currency="INR", charging_periods=None, **changes)
    return Session.model_validate(doc)


def test_late_cdr_settles_provisionally_on_the_session() -> None:
    s = session_for(total_cost={"excl_vat": "64.00", "incl_vat": "64.00"}, kwh="4")
    st = settle(s, policy=PLAIN, payment=Payment(HOLD, D(100)), party="IN-TPC", time_zone=TZ)
    assert st.provisional and st.key.startswith("SESSION:IN:TPC:")
    assert (st.capture, st.release) == (D("64.00"), D("36.00"))


def test_session_without_cost_is_priced_by_the_engine() -> None:
    s = session_for(total_cost=None, kwh="4")
    st = settle(s, policy=PLAIN, payment=Payment(PRE, D(100)), party="IN-TPC", time_zone=TZ,
                tariff=inr_tariff())
    assert st.final_amount == D("64.00") and st.refund == D("36.00")


def test_session_settlement_errors() -> None:
    with pytest.raises(ValueError, match="nothing to settle on"):
        settle(session_for(total_cost=None), policy=PLAIN, payment=Payment(PRE, D(1)), party="IN-TPC",
               time_zone=TZ)
    active = session_for(total_cost=None, end_date_time=None, status="ACTIVE")
    with pytest.raises(ValueError, match="needs `now`"):
        settle(active, policy=PLAIN, payment=Payment(PRE, D(1)), party="IN-TPC", time_zone=TZ,
               tariff=inr_tariff())


TERMS = (RefundTerm(min_hours_before=D(4), percent=D(85)), RefundTerm(min_hours_before=D(0), percent=D(0)))


@pytest.mark.parametrize(("hours_before", "refund"), [
    (5, "85.00"), (4, "85.00"), (Decimal("3.99"), "0.00"), (0, "0.00"), (-1, "0.00")])
def test_cancellation_refund(hours_before: Decimal, refund: str) -> None:
    slot = local("2025-07-30 18:00", TZ)
    cancelled = slot - timedelta(hours=float(hours_before))
    assert cancellation_refund(D(100), slot_start=slot, cancelled_at=cancelled, terms=TERMS,
                               currency="INR") == D(refund)
