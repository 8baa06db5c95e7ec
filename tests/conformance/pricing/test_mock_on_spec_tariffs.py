"""The mock CPO's pricing against the spec's worked examples (TARIFF-CASES.md), on the
OCPI 2.2.1 example tariffs read from the spec directory."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal as D

import pytest

from bridge.ocpi.models import Tariff
from ocpi_mock.pricing import Kind, Period, price, round_money
from tests import spec
from tests.mock.test_mock_pricing import MONDAY, SATURDAY, T0, C, P, R, at, charge, inline, park, session


def tariff(name: str) -> Tariff:
    data = json.loads(spec.require(spec.OCPI_EXAMPLES / name).read_text())
    data.setdefault("last_updated", "2024-01-01T00:00:00Z")
    return Tariff.model_validate(data)


CASES = [
    # (case, tariff, periods, kwargs, expected excl, expected incl (None: not checked))
    ("1 tariff_8", "tariff_8_simple_025kwh.json", session(T0, (C, 60, "20")), {},
     "5.00", "5.50"),
    ("2 tariff_9", "tariff_9_025kwh_start.json", session(T0, (C, 60, "20")), {},
     "5.50", "6.10"),
    ("3a tariff_12", "tariff_12_025kwh_min_price.json", session(T0, (C, 60, "20")), {},
     "5.00", "5.50"),
    ("3b tariff_12 min", "tariff_12_025kwh_min_price.json", session(T0, (C, 20, "1.5")),
     {}, "0.50", "0.55"),
    ("4 tariff_10", "tariff_10_025kwh_parking_start.json",
     session(T0, (C, 60, "20"), (P, 40, "0")), {}, "7.00", "7.90"),
    ("5a tariff_6 max", "tariff_6_025kwh_start_max_price.json",
     session(T0, (C, 120, "50")), {}, "10.00", "11.00"),
    ("5b tariff_6", "tariff_6_025kwh_start_max_price.json", session(T0, (C, 90, "30")),
     {}, "8.00", "8.85"),
    ("6 tariff_1", "tariff_1_simple_2hour.json", session(T0, (C, 150, "30")), {},
     "5.00", "5.50"),
    ("7 tariff_13", "tariff_13_simple_3hour_5parking.json",
     session(T0, (C, 150, "30"), (P, 42, "0")), {}, "11.25", "12.75"),
    ("8 tariff_2", "tariff_2_alt_text.json", session(T0, (C, 150, "30")), {},
     "4.75", "5.00"),
    ("9 tariff_3", "tariff_3_alt_url.json", session(T0, (C, 60, "20.45")), {},
     "5.63", "6.24"),
    ("10 tariff_4 monday", "tariff_4_complex.json",
     [charge(at(MONDAY, "09:30"), 165, "20", current=D(16)), park(at(MONDAY, "12:15"), 42)], {},
     "9.00", "10.30"),
    ("11 tariff_4 saturday", "tariff_4_complex.json",
     [charge(at(SATURDAY, "13:30"), 114, "30", current=D(43)), park(at(SATURDAY, "15:24"), 71)],
     {}, "12.375", "13.975"),
    ("12 tariff_5 free", "tariff_5_free_of_charge.json",
     session(T0, (C, 60, "20"), (P, 10, "0")), {}, "0.00", "0.00"),
    ("13 tariff_15", "tariff_15_reservation_5_euro_per_hour.json",
     session(T0, (R, 15, "0"), (C, 60, "20")), {}, "6.75", "7.60"),
    ("14 tariff_16", "tariff_16_reservation_2_euro_fee_5_euro_per_hour.json",
     session(T0, (R, 13, "0"), (C, 60, "20")), {}, "8.75", "10.00"),
    ("15a tariff_17", "tariff_17_reservation_with_expire_fee.json",
     session(T0, (R, 22, "0"), (C, 60, "20")), {}, "6.50", "7.30"),
    ("15b tariff_17 expired", "tariff_17_reservation_with_expire_fee.json",
     session(T0, (R, 60, "0")), {"reservation_expired": True}, "6.00", "7.20"),
    ("16a tariff_18", "tariff_18_reservation_with_expire_time.json",
     session(T0, (R, 22, "0"), (C, 60, "20")), {}, "7.00", "7.90"),
    ("16b tariff_18 expired", "tariff_18_reservation_with_expire_time.json",
     session(T0, (R, 90, "0")), {"reservation_expired": True}, "9.00", "10.80"),
    ("17 max_power", "tariffrestriction_example_max_power.json",
     [charge(T0, 10, "1", power=D(6)), charge(T0 + timedelta(minutes=10), 50, "40", power=D(48)),
      charge(T0 + timedelta(minutes=60), 7.5, "0.5", power=D(4))], {}, "20.30", None),
    ("18 max_duration", "tariffrestriction_example_max_duration.json",
     session(T0, (C, 30, "5"), (C, 10, "1.2")), {}, "0.30", None),
    ("19 tariff_14 16:55", "tariff_14_step_size.json",
     session(at(MONDAY, "16:55"), (C, 10, "2"), (P, 2, "0")), {}, "0.55", "0.55"),
    ("20 tariff_14 16:35", "tariff_14_step_size.json",
     session(at(MONDAY, "16:35"), (C, 35, "5")), {}, "1.30", "1.30"),
    ("21 tariff_14 19:40", "tariff_14_step_size.json",
     session(at(MONDAY, "19:40"), (C, 12, "2"), (P, 20, "0")), {}, "0.73", "0.73"),
    ("27 cdr_example", inline({"price_components": [
        {"type": "TIME", "price": 2.00, "vat": 10.0, "step_size": 300}]}),
     [Period(T0, T0 + timedelta(hours=1.973), Kind.CHARGING, D("15.342"))], {}, "4.00", "4.40"),
]


@pytest.mark.parametrize(("case", "tar", "periods", "kwargs", "excl", "incl"), CASES,
                         ids=[c[0] for c in CASES])
def test_spec_examples(case: str, tar: Tariff | str, periods: list[Period], kwargs: dict,
                       excl: str, incl: str | None) -> None:
    result = price(tariff(tar) if isinstance(tar, str) else tar, periods, "UTC", **kwargs)
    places = max(2, -D(excl).as_tuple().exponent)
    assert round_money(result.total.excl, places) == D(excl)
    if incl is not None:
        assert round_money(result.total.incl, places) == D(incl)


