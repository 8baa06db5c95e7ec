"""A session that switches tariffs (mod_cdrs ChargingPeriod `tariff_id`; mod_tariffs
Tariff `start_date_time` / `end_date_time`): each period priced with the tariff it
names, step_size once per session and not at the switch, min/max price per tariff,
one rounding. One test per rule; the chapter's own examples where it has them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from bridge.mapping.projection import Usage
from bridge.mapping.tariff import TariffError, assign_tariffs, price, price_by_period, price_cdr
from bridge.ocpi.models import CDR, ChargingPeriod, Tariff
from tests.pricing.pricing_support import D, fixture, local, make_tariff, session

BERLIN = "Europe/Berlin"


def tariff(tid: str, *components: dict[str, Any], restrictions: dict[str, Any] | None = None,
           **extra: Any) -> Tariff:
    element: dict[str, Any] = {"price_components": list(components)}
    if restrictions:
        element["restrictions"] = restrictions
    return make_tariff([element], id=tid, **extra)


def comp(kind: str, price: str, step: int = 1, vat: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "price": price, "step_size": step}
    if vat is not None:
        out["vat"] = vat
    return out


def named(periods: list[ChargingPeriod], *ids: str | None) -> list[ChargingPeriod]:
    return [p.model_copy(update={"tariff_id": tid}) for p, tid in zip(periods, ids, strict=True)]


def cdr(periods: list[ChargingPeriod], end: datetime, tariffs: list[Tariff], total: str = "0") -> CDR:
    doc = fixture("cdr_time.json")
    doc.update(
        currency="EUR", start_date_time=periods[0].start_date_time, end_date_time=end,
        tariffs=[t.model_dump(mode="json", exclude_none=True) for t in tariffs],
        charging_periods=[p.model_dump(mode="json", exclude_none=True) for p in periods],
        total_cost={"excl_vat": total},
    )
    return CDR.model_validate(doc)


# ------------------------------------------------------------------ the chapter's examples


def test_chapter_time_example_across_a_tariff_switch() -> None:
    # mod_cdrs "step_size": "Time costs € 5 per hour before 17:00 and € 7 per hour after
    # 17:00. Both Price Components have a step_size of 10 minutes. If a driver charges 6
    # minutes before 17:00 and 22 minutes after 17:00, this makes a total of 28 minutes
    # charging. The step_size rounds this up to 30 minutes total, so 24 minutes after
    # 17:00 will be billed." Here the two prices are two Tariffs (the chapter's switch
    # example: a different Charging Preference profile mid-session has another tariff),
    # and "the step_size is not taken into account when switching between two Tariffs".
    regular = tariff("REGULAR", comp("TIME", "5", 600))
    fast = tariff("FAST", comp("TIME", "7", 600))
    sh = session(local("2024-01-15 16:54"), ("charge", 6, {}), ("charge", 22, {}))
    r = price_by_period([regular, fast], sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)
    assert r.billed_time * 60 == 30
    assert r.total_cost.excl_vat == D("3.30")  # 6 min x 5/h + 24 min x 7/h = 0.50 + 2.80
    assert [(ln.tariff_id, ln.quantity * 60) for ln in r.lines] == [("REGULAR", 6), ("FAST", 24)]
    assert r.tariff_ids == ("REGULAR", "FAST")


def test_chapter_energy_example_across_a_tariff_switch() -> None:
    # mod_cdrs "step_size": 0.20/kWh then 0.27/kWh, both step 500 Wh; 4.3 kWh + 1.1 kWh
    # = 5.4 kWh, rounded to 5.5 kWh in total: "It does NOT round the energy used after
    # 17:00 to 1.5 kWh." 4.3 x 0.20 + 1.2 x 0.27 = 0.86 + 0.324 = 1.184.
    before = tariff("A", comp("ENERGY", "0.20", 500))
    after = tariff("B", comp("ENERGY", "0.27", 500))
    sh = session(local("2024-01-15 16:30"), ("charge", 30, {"energy": "4.3"}), ("charge", 20, {"energy": "1.1"}))
    r = price_by_period([before, after], sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)
    assert r.billed_energy == D("5.5")
    assert r.exact["total_cost"].excl_vat == D("1.184") and r.total_cost.excl_vat == D("1.18")


def test_the_first_tariffs_step_size_is_not_applied_at_the_switch() -> None:
    # tariff_14's prices (1.20/h, step 30 min; 2.40/h, step 15 min) as two tariffs: 21 min
    # under the first are not rounded to 30; the session's 31 min are rounded to the last
    # piece's step (15 min): 45 min, the 14 extra at 2.40/h. 0.42 + 0.96 = 1.38.
    a = tariff("A", comp("TIME", "1.20", 1800))
    b = tariff("B", comp("TIME", "2.40", 900))
    sh = session(local("2024-01-15 16:39"), ("charge", 21, {}), ("charge", 10, {}))
    r = price_by_period([a, b], sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)
    assert r.total_cost.excl_vat == D("1.38")
    assert r.billed_time * 60 == 45


def test_charging_under_one_tariff_then_parking_under_another() -> None:
    # "step_size is not taken into account when switching time based paying for charging
    # to paying for parking": charging under A stays 21 min, parking under B 7 -> 10 min.
    a = tariff("A", comp("TIME", "1", 300))
    b = tariff("B", comp("PARKING_TIME", "2", 300))
    sh = session(local("2024-01-15 10:00"), ("charge", 21, {}), ("park", 7, {}))
    r = price_by_period([a, b], sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)
    assert r.billed_time * 60 == 21 and r.billed_parking_time * 60 == 10
    assert r.exact["total_cost"].excl_vat == D("0.35") + D(1) / 3  # 21/60 x 1 + 10/60 x 2


# ------------------------------------------------------------------ per tariff


def test_min_price_bounds_what_its_own_tariff_prices() -> None:
    # mod_tariffs min_price: "a Charging Session with this tariff will at least cost this
    # amount": A (min 2.00) priced 0.50 -> 2.00; B (no limit) priced 1.00; total 3.00.
    a = tariff("A", comp("ENERGY", "0.25"), min_price={"excl_vat": "2.00"})
    b = tariff("B", comp("ENERGY", "0.25"))
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 2}), ("charge", 30, {"energy": 4}))
    r = price_by_period([a, b], sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)
    assert r.total_cost.excl_vat == D("3.00") and r.price_limit == "min_price"
    assert [(s.tariff_id, s.cost.excl_vat, s.price_limit) for s in r.subtotals] == [
        ("A", D("2.00"), "min_price"), ("B", D("1.00"), None)]
    assert r.min_max_adjustment.excl_vat == D("1.50")
    assert r.total_energy_cost.excl_vat == D("1.50")  # the components, before the limits


def test_max_price_bounds_what_its_own_tariff_prices() -> None:
    a = tariff("A", comp("ENERGY", "0.25"))
    b = tariff("B", comp("ENERGY", "0.50"), max_price={"excl_vat": "1.00", "incl_vat": "1.00"})
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 4}), ("charge", 30, {"energy": 4}))
    r = price_by_period([a, b], sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)
    assert r.total_cost.excl_vat == D("2.00") and r.price_limit == "max_price"


def test_each_tariff_charges_its_own_flat_fee_once() -> None:
    a = tariff("A", comp("FLAT", "1.00"), comp("ENERGY", "0.25"))
    b = tariff("B", comp("FLAT", "0.50"), comp("ENERGY", "0.25"))
    sh = session(local("2024-01-15 10:00"), ("charge", 20, {"energy": 2}), ("charge", 20, {"energy": 2}),
                 ("charge", 20, {"energy": 2}))
    r = price_by_period([a, b, b], sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)
    assert r.total_fixed_cost.excl_vat == D("1.50") and r.total_cost.excl_vat == D("3.00")


def test_the_total_is_rounded_once_not_per_tariff() -> None:
    # 0.0125 under each tariff: 0.025 -> 0.03 (half up); rounding each part would give 0.02.
    a = tariff("A", comp("ENERGY", "0.25"))
    b = tariff("B", comp("ENERGY", "0.25"))
    sh = session(local("2024-01-15 10:00"), ("charge", 10, {"energy": "0.05"}), ("charge", 10, {"energy": "0.05"}))
    r = price_by_period([a, b], sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)
    assert r.total_cost.excl_vat == D("0.03")
    assert [s.cost.excl_vat for s in r.subtotals] == [D("0.01"), D("0.01")]  # shown rounded, added exact


def test_restrictions_see_the_session_not_the_tariffs_part() -> None:
    # B's element for energy beyond 10 kWh counts the session's energy, A's 8 kWh included:
    # of B's 4 kWh, 2 are below 10 kWh (0.30) and 2 above (0.20).
    a = tariff("A", comp("ENERGY", "0.25"))
    b = make_tariff([
        {"price_components": [comp("ENERGY", "0.20")], "restrictions": {"min_kwh": 10}},
        {"price_components": [comp("ENERGY", "0.30")]},
    ], id="B")
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 8}), ("charge", 30, {"energy": 4}))
    r = price_by_period([a, b], sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)
    assert r.total_cost.excl_vat == D("3.00")  # 8 x 0.25 + 2 x 0.30 + 2 x 0.20


def test_a_period_naming_no_tariff_is_free_and_reported() -> None:
    # mod_cdrs ChargingPeriod tariff_id: "If not provided, no Tariff is relevant during this period."
    a = tariff("A", comp("ENERGY", "0.25"))
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 4}), ("charge", 30, {"energy": 2}))
    r = price_by_period([a, None], sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)
    assert r.total_cost.excl_vat == D("1.00") and r.unpriced["ENERGY"] == 2 and r.total_energy == 6
    assert any("charging periods 2: no tariff_id, not priced" in w for w in r.warnings)


def test_one_tariff_for_every_period_is_the_one_tariff_price() -> None:
    a = tariff("A", comp("ENERGY", "0.25", 500), comp("TIME", "1", 600))
    sh = session(local("2024-01-15 10:00"), ("charge", 31, {"energy": "4.3"}), ("charge", 7, {"energy": 1}))
    one = price(a, sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)
    each = price_by_period([a, a], sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)
    assert each.exact == one.exact and each.subtotals == ()


def test_tariffs_in_two_currencies_are_refused() -> None:
    a = tariff("A", comp("ENERGY", "0.25"))
    b = tariff("B", comp("ENERGY", "20"), currency="INR")
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 4}), ("charge", 30, {"energy": 4}))
    with pytest.raises(TariffError, match="several currencies"):
        price_by_period([a, b], sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)


def test_a_tariff_used_outside_its_validity_warns() -> None:
    a = tariff("A", comp("ENERGY", "0.25"))
    b = tariff("B", comp("ENERGY", "0.30"), start_date_time="2024-01-15T09:45:00Z")  # 10:45 Berlin
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 4}), ("charge", 30, {"energy": 4}))
    r = price_by_period([a, b], sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)
    assert any("tariff B used from 2024-01-15T09:30:00Z, before it becomes active" in w for w in r.warnings)


# ------------------------------------------------------------------ which tariff: CDRs


def test_cdr_periods_priced_with_the_tariffs_they_name() -> None:
    a = tariff("A", comp("ENERGY", "0.25"))
    b = tariff("B", comp("ENERGY", "0.30"))
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 4}), ("charge", 30, {"energy": 10}))
    record = cdr(named(sh.periods, "A", "B"), sh.end, [b, a])
    r = price_cdr(record, BERLIN)
    assert r.total_cost.excl_vat == D("4.00") and r.tariff_ids == ("A", "B")
    # the caller's tariffs (e.g. the store's) come first: B at 0.20
    cheaper = tariff("B", comp("ENERGY", "0.20"))
    assert price_cdr(record, BERLIN, tariffs={"B": cheaper}).total_cost.excl_vat == D("3.00")
    # and they price a CDR that carries none
    bare = record.model_copy(update={"tariffs": None})
    assert price_cdr(bare, BERLIN, tariffs={"A": a, "B": b}).total_cost.excl_vat == D("4.00")


def test_tariff_ids_compare_case_insensitively() -> None:
    a = tariff("Tariff-A", comp("ENERGY", "0.25"))
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 4}))
    assert assign_tariffs(named(sh.periods, "TARIFF-a"), {"Tariff-A": a}) == [a]


def test_switch_by_validity_when_periods_name_none() -> None:
    # mod_tariffs: end_date_time "Typically used when this tariff is going to be replaced
    # with a different tariff", start_date_time for the new one. Periods name no tariff:
    # each is priced with the one of the CDR's tariffs valid at its start.
    old = tariff("OLD", comp("ENERGY", "0.25"), end_date_time="2024-01-15T17:00:00Z")
    new = tariff("NEW", comp("ENERGY", "0.30"), start_date_time="2024-01-15T17:00:00Z")
    sh = session(local("2024-01-15 17:30"), ("charge", 30, {"energy": 4}), ("charge", 30, {"energy": 10}))
    r = price_cdr(cdr(sh.periods, sh.end, [new, old]), BERLIN)  # 17:30 Berlin = 16:30Z, 18:00 = 17:00Z
    assert r.total_cost.excl_vat == D("4.00") and r.tariff_ids == ("OLD", "NEW")


def test_several_tariffs_none_named_and_validity_cannot_tell_is_refused() -> None:
    a = tariff("A", comp("ENERGY", "0.25"))
    b = tariff("B", comp("ENERGY", "0.30"))
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 4}))
    with pytest.raises(TariffError, match="lists several tariffs and its periods name none: 2 of them valid"):
        price_cdr(cdr(sh.periods, sh.end, [a, b]), BERLIN)


def test_named_tariff_missing_everywhere_is_refused() -> None:
    a = tariff("A", comp("ENERGY", "0.25"))
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 4}), ("charge", 30, {"energy": 4}))
    with pytest.raises(TariffError, match="tariff_id 'B' is not in tariffs"):
        price_cdr(cdr(named(sh.periods, "A", "B"), sh.end, [a]), BERLIN)


# ------------------------------------------------------------------ projection (quotes)


def test_usage_priced_with_the_tariffs_its_periods_name() -> None:
    a = tariff("A", comp("ENERGY", "0.25"))
    b = tariff("B", comp("ENERGY", "0.30"))
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 4}), ("charge", 30, {"energy": 10}))
    usage = Usage.from_cdr(cdr(named(sh.periods, "A", "B"), sh.end, [a, b]))
    assert usage.priced({"A": a, "B": b}, BERLIN).total_cost.excl_vat == D("4.00")
    assert usage.priced(a, BERLIN).total_cost.excl_vat == D("3.50")  # one tariff: every period


def test_decimal_money_stays_exact() -> None:
    a = tariff("A", comp("ENERGY", "0.1"))
    b = tariff("B", comp("ENERGY", "0.2"))
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": "0.1"}), ("charge", 30, {"energy": "0.1"}))
    r = price_by_period([a, b], sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)
    assert r.exact["total_cost"].excl_vat == Decimal("0.03")  # no binary float residue


def test_price_by_period_errors() -> None:
    a = tariff("A", comp("ENERGY", "0.25"))
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 4}), ("charge", 30, {"energy": 4}))
    with pytest.raises(ValueError, match="one tariff"):
        price_by_period([a], sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)
    with pytest.raises(TariffError, match="no charging period names a tariff"):
        price_by_period([None, None], sh.periods, start=sh.start, end=sh.end, time_zone=BERLIN)
    with pytest.raises(TariffError, match="unknown time zone"):
        price_by_period([a, a], sh.periods, start=sh.start, end=sh.end, time_zone="Mars/Olympus")


def test_a_session_that_switched_tariffs() -> None:
    from bridge.mapping.tariff import price_session
    from bridge.ocpi.models import Session

    a = tariff("A", comp("ENERGY", "0.25"))
    b = tariff("B", comp("ENERGY", "0.30"))
    doc = fixture("session_finished.json")
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 4}), ("charge", 30, {"energy": 10}))
    doc.update(currency="EUR", start_date_time=sh.start.isoformat(), end_date_time=sh.end.isoformat(),
               charging_periods=[p.model_dump(mode="json", exclude_none=True)
                                 for p in named(sh.periods, "A", "B")])
    s = Session.model_validate(doc)
    assert price_session(s, a, BERLIN, sh.end, tariffs={"B": b}).total_cost.excl_vat == D("4.00")
    assert price_session(s, a, BERLIN, sh.end).total_cost.excl_vat == D("3.50")  # one tariff: every period


# ------------------------------------------------------------------ settlement and quotes


def switching_session_doc(sh: Any, *ids: str) -> dict[str, Any]:
    doc = fixture("session_finished.json")
    doc.update(currency="EUR", start_date_time=sh.start.isoformat(), end_date_time=sh.end.isoformat(),
               total_cost=None, charging_periods=[p.model_dump(mode="json", exclude_none=True)
                                                  for p in named(sh.periods, *ids)])
    return doc


EUR = 'currency = "EUR"\n'


def test_settle_a_cdr_that_switched_tariffs() -> None:
    # 4 kWh under A at 0.25, then 10 kWh under B at 0.30 (with B's FLAT 1.00): the CDR
    # says 5.00, the engine agrees, the bill is the CDR's and nothing is flagged.
    from bridge.mapping.policy import parse_policy
    from bridge.mapping.settlement import Payment, PaymentMode, settle

    a = tariff("A", comp("ENERGY", "0.25"))
    b = make_tariff([{"price_components": [comp("ENERGY", "0.30"), comp("FLAT", "1.00")]}], id="B")
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 4}), ("charge", 30, {"energy": 10}))
    record = cdr(named(sh.periods, "A", "B"), sh.end, [a, b], total="5.00")
    st = settle(record, policy=parse_policy(EUR), payment=Payment(PaymentMode.PREPAID, D(10)),
                party="DE-ABC", time_zone=BERLIN)
    assert st.engine is not None and st.engine.tariff_ids == ("A", "B")
    assert st.engine.total_cost.excl_vat == D("5.00") and st.discrepancy is None
    assert (st.final_amount, st.refund) == (D("5.00"), D("5.00"))
    # one tariff for every period (the CDR's B missing from the engine's view) would say 4.50
    wrong = record.model_copy(update={"total_cost": record.total_cost.model_copy(
        update={"excl_vat": D("4.50")})})
    flagged = settle(wrong, policy=parse_policy(EUR), payment=Payment(PaymentMode.PREPAID, D(10)),
                     party="DE-ABC", time_zone=BERLIN)
    assert flagged.discrepancy is not None and flagged.discrepancy.engine_total == D("5.00")


def test_settle_a_session_that_switched_tariffs() -> None:
    # A late CDR: the Session is settled provisionally, each period with the tariff it names.
    from bridge.mapping.policy import parse_policy
    from bridge.mapping.settlement import Payment, PaymentMode, settle
    from bridge.ocpi.models import Session

    a = tariff("A", comp("ENERGY", "0.25"))
    b = tariff("B", comp("ENERGY", "0.30"))
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 4}), ("charge", 30, {"energy": 10}))
    s = Session.model_validate(switching_session_doc(sh, "A", "B"))
    st = settle(s, policy=parse_policy(EUR), payment=Payment(PaymentMode.PREPAID, D(10)), party="DE-ABC",
                time_zone=BERLIN, tariff=a, tariffs={"B": b})
    assert st.provisional and st.engine is not None and st.engine.tariff_ids == ("A", "B")
    assert st.final_amount == D("4.00") and st.refund == D("6.00")
    # the tariffs by id alone are enough
    st = settle(s, policy=parse_policy(EUR), payment=Payment(PaymentMode.PREPAID, D(10)), party="DE-ABC",
                time_zone=BERLIN, tariffs={"A": a, "B": b})
    assert st.final_amount == D("4.00")


def test_settle_a_session_naming_a_tariff_found_nowhere() -> None:
    # As for a CDR: the engine cannot price it; the Session's own total (if any) is used,
    # otherwise there is nothing to settle on (an error, not a guess with one tariff).
    from bridge.mapping.policy import parse_policy
    from bridge.mapping.settlement import Payment, PaymentMode, settle
    from bridge.ocpi.models import Session

    a = tariff("A", comp("ENERGY", "0.25"))
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 4}), ("charge", 30, {"energy": 10}))
    doc = switching_session_doc(sh, "A", "B")
    pay = Payment(PaymentMode.PREPAID, D(10))
    with pytest.raises(ValueError, match="nothing to settle on"):
        settle(Session.model_validate(doc), policy=parse_policy(EUR), payment=pay, party="DE-ABC",
               time_zone=BERLIN, tariff=a, tariffs={"A": a})
    doc["total_cost"] = {"excl_vat": "4.20", "incl_vat": "4.20"}
    st = settle(Session.model_validate(doc), policy=parse_policy(EUR), payment=pay, party="DE-ABC",
                time_zone=BERLIN, tariff=a, tariffs={"A": a})
    assert st.engine is None and st.final_amount == D("4.20")


def test_quote_of_a_usage_that_switches_tariffs() -> None:
    from bridge.mapping.policy import parse_policy
    from bridge.mapping.quote import quote

    a = tariff("A", comp("ENERGY", "0.25"))
    b = tariff("B", comp("ENERGY", "0.30"))
    sh = session(local("2024-01-15 10:00"), ("charge", 30, {"energy": 4}), ("charge", 30, {"energy": 10}))
    usage = Usage.from_cdr(cdr(named(sh.periods, "A", "B"), sh.end, [a, b]))
    q = quote({"A": a, "B": b}, usage, parse_policy(EUR), party="DE-ABC", time_zone=BERLIN)
    assert q.total == D("4.00")
