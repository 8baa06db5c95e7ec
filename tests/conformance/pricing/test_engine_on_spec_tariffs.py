"""The tariff engine on the OCPI 2.2.1 example tariffs (read from the spec directory)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bridge.mapping.tariff import compile_tariff, price
from bridge.ocpi.models import ReservationRestrictionType
from tests.pricing.pricing_support import D, example, local, make_tariff, session

U = lambda s: datetime.fromisoformat(s).replace(tzinfo=UTC)  # noqa: E731


def test_unsorted_periods_are_priced_in_time_order() -> None:
    t = tariff14 = make_tariff(example("tariff_14_step_size.json")["elements"])
    sh = session(local("2024-01-15 16:55"), ("charge", 10, {}), ("park", 2, {}))
    ordered = price(tariff14, sh.periods, start=sh.start, end=sh.end, time_zone="Europe/Berlin")
    shuffled = price(t, list(reversed(sh.periods)), start=sh.start, end=sh.end, time_zone="Europe/Berlin")
    assert ordered.exact == shuffled.exact


def test_reservation_inferred_from_reservation_time() -> None:
    sh = session(local("2024-01-15 10:00"), ("reserve", 15, {}), ("charge", 60, {"energy": 20}))
    t = make_tariff(example("tariff_15_reservation_5_euro_per_hour.json")["elements"])
    r = price(t, sh.periods, start=sh.start, end=sh.end, time_zone="Europe/Berlin")
    assert r.total_cost.excl_vat == D("6.75") and r.total_reservation_cost.excl_vat == D("1.25")
    assert [ln.reservation for ln in r.lines] == [True, False, False]


def test_expired_reservation_without_periods_charges_the_expiry_fee() -> None:
    t = make_tariff(example("tariff_17_reservation_with_expire_fee.json")["elements"])
    s = U("2024-01-15T10:00:00")
    r = price(t, [], start=s, end=s + timedelta(hours=1), time_zone="UTC",
              reservation=ReservationRestrictionType.RESERVATION_EXPIRES)
    assert r.total_cost.excl_vat == D("4.00")


def test_free_tariff_with_no_periods_costs_nothing() -> None:
    t = make_tariff(example("tariff_5_free_of_charge.json")["elements"])
    s = U("2024-01-15T10:00:00")
    assert price(t, [], start=s, end=s, time_zone="UTC").total_cost.excl_vat == 0


def test_compiled_tariff_and_model_give_the_same_result() -> None:
    t = make_tariff(example("tariff_4_complex.json")["elements"])
    sh = session(local("2024-01-15 09:30"), ("charge", 165, {"max_current": 16}), ("park", 42, {}))
    a = price(t, sh.periods, start=sh.start, end=sh.end, time_zone="Europe/Berlin")
    b = price(compile_tariff(t), sh.periods, start=sh.start, end=sh.end, time_zone="Europe/Berlin")
    assert a.exact == b.exact and a.to_json() == b.to_json()


def test_to_json_is_json_with_numbers() -> None:
    t = make_tariff(example("tariff_3_alt_url.json")["elements"])
    sh = session(local("2024-01-15 10:00"), ("charge", 60, {"energy": "20.45"}))
    out = json.loads(json.dumps(price(t, sh.periods, start=sh.start, end=sh.end,
                                      time_zone="Europe/Berlin").to_json()))
    assert out["total_cost"] == {"excl_vat": 5.63, "incl_vat": 6.24}
    assert out["total_energy_cost"] == {"excl_vat": 5.13, "incl_vat": 5.64}
    assert out["billed"]["ENERGY"] == 20.5
    assert [ln["dimension"] for ln in out["lines"]] == ["ENERGY", "FLAT"]
