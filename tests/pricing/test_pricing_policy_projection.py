"""Policy loading/validation (every error path) and the projection's charging model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bridge.mapping.policy import PolicyError, load_policy, parse_policy, phone_key
from bridge.mapping.projection import ChargingModel, ProjectionError, Usage, project
from tests.pricing.pricing_support import ROOT, D, inr_tariff

CONFIG = ROOT / "config" / "pricing.toml"


def test_the_shipped_policy_loads_and_merges() -> None:
    p = load_policy(CONFIG)
    tpc = p.terms("IN-TPC")
    assert tpc.service_fee == 10 and [s.id for s in tpc.surcharges] == ["congestion"]
    assert tpc.surcharges[0].per_kwh == 1 and tpc.surcharges[0].start_time == "18:00"
    assert p.terms("IN-TPC", "LOC-MALL-01").service_fee == 0  # location override
    assert p.terms("IN-TPC", "LOC-MALL-01").surcharges == tpc.surcharges  # the rest is inherited
    assert p.terms("in-tpc").service_fee == 10  # party keys are case-insensitive
    assert p.terms("IN-ZEO").overage_percent == 15 and p.terms("IN-STK").grace_minutes == 15
    assert p.terms("IN-NEW") == p.default
    assert [(t.min_hours_before, t.percent) for t in p.default.refund_terms] == [(4, 85), (0, 0)]
    assert p.loyalty_for("9887766554") is not None and p.loyalty_for(None) is None
    assert p.fleet("FLEET-ACME-01") is not None and p.fleet(None) is None and p.fleet("x") is None
    assert p.offers[0].applies("IN-TPC", "X", datetime(2026, 12, 31).date())
    assert p.discrepancy_winner.value == "CDR"


def test_amounts_are_decimals_even_from_toml_floats() -> None:
    p = parse_policy("[default]\nservice_fee = 10.1\nservice_fee_percent = 2\n")
    assert p.default.service_fee == Decimal("10.1") and isinstance(p.default.service_fee_percent, Decimal)


def test_phone_numbers_compare_by_last_ten_digits() -> None:
    assert phone_key("+91-98877 66554") == phone_key("09887766554") == "9887766554"


@pytest.mark.parametrize(("text", "message"), [
    ("currency = ", "not valid TOML"),
    ("[default]\nservice_fee = \"-1\"\n", "default.service_fee"),
    ("[default]\nservice_fee_percent = \"101\"\n", "default.service_fee_percent"),
    ("[default]\nsurprise = 1\n", "default.surprise"),
    ("[parties.TPC]\nservice_fee = \"1\"\n", "'TPC' is not COUNTRY-PARTY"),
    ("[locations.\"IN-TPC\"]\nservice_fee = \"1\"\n", "is not 'COUNTRY-PARTY/LOCATION_ID'"),
    ("[[offers]]\nid = \"o\"\ntitle = \"t\"\n", "exactly one of amount_off and percent_off"),
    ("[[loyalty]]\nphone = \"1\"\nprogram = \"p\"\namount_off = \"1\"\npercent_off = \"1\"\n",
     "exactly one of amount_off and percent_off"),
    ("[[default.surcharges]]\nid = \"c\"\ntitle = \"t\"\nper_kwh = \"1\"\nstart_time = \"25:00\"\n",
     "default.surcharges.0.start_time"),
    ("discrepancy_winner = \"BOTH\"\n", "discrepancy_winner"),
])
def test_invalid_policies_name_the_field(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(text)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "nope.toml")


def test_load_policy_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "pricing.toml"
    f.write_text("[default]\ngrace_minutes = -1\n")
    with pytest.raises(PolicyError, match=r"pricing.toml: default.grace_minutes"):
        load_policy(f)


# ----------------------------------------------------------------------- projection

START = datetime(2025, 7, 30, 6, 30, tzinfo=UTC)  # 12:00 in Asia/Kolkata


@pytest.mark.parametrize(("model", "kwargs", "kwh", "minutes", "limited"), [
    (ChargingModel(D(30)), {"energy_kwh": D(5)}, "5", 10, "energy"),
    (ChargingModel(D(50), car_max_kw=D(25)), {"energy_kwh": D(5)}, "5", 12, "energy"),  # car limit
    (ChargingModel(D(30)), {"duration": timedelta(minutes=30)}, "15", 30, "duration"),
    (ChargingModel(D(60), battery_kwh=D(40), soc_start_percent=D(50)), {"energy_kwh": D(8)}, "8", 8, "energy"),
    (ChargingModel(D(60), battery_kwh=D(40), soc_start_percent=D(95)), {"energy_kwh": D(10)}, "2", None,
     "battery"),
])
def test_projection_shapes(model: ChargingModel, kwargs: dict[str, object], kwh: str, minutes: int | None,
                           limited: str) -> None:
    pr = project(inr_tariff(), START, model, "Asia/Kolkata", **kwargs)  # type: ignore[arg-type]
    assert pr.energy_kwh == D(kwh) and pr.limited_by == limited
    if minutes is not None:
        assert pr.duration == timedelta(minutes=minutes)
    assert pr.result.total_cost.incl_vat == (D(kwh) * 16).quantize(D("0.01"))


def test_taper_above_80_percent_slows_charging() -> None:
    flat = project(inr_tariff(), START, ChargingModel(D(50), battery_kwh=D(50), soc_start_percent=D(60)),
                   "UTC", energy_kwh=D(10))
    taper = project(inr_tariff(), START, ChargingModel(D(50), battery_kwh=D(50), soc_start_percent=D(60)),
                    "UTC", energy_kwh=D(20))
    assert flat.duration == timedelta(minutes=12)  # 10 kWh to 80% at 50 kW
    assert taper.duration > timedelta(minutes=24)  # the next 10 kWh are slower
    assert len(taper.usage.periods) > 2


def test_budget_inverse_matches_the_forward_price() -> None:
    pr = project(inr_tariff(), START, ChargingModel(D(30)), "Asia/Kolkata", budget=D(100))
    assert pr.energy_kwh == D("6.25") and pr.limited_by == "budget"
    assert pr.result.total_cost.incl_vat == D("100.00")


def test_budget_capped_by_the_battery() -> None:
    pr = project(inr_tariff(), START, ChargingModel(D(30), battery_kwh=D(10), soc_start_percent=D(50)),
                 "Asia/Kolkata", budget=D(1000))
    assert pr.energy_kwh == D(5) and pr.limited_by == "battery"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "exactly one"),
    ({"energy_kwh": D(1), "budget": D(1)}, "exactly one"),
    ({"energy_kwh": D(-1)}, "must not be negative"),
    ({"duration": timedelta(minutes=-1)}, "must not be negative"),
])
def test_projection_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ProjectionError, match=message):
        project(inr_tariff(), START, ChargingModel(D(30)), "UTC", **kwargs)  # type: ignore[arg-type]


def test_zero_power_is_an_error() -> None:
    with pytest.raises(ProjectionError, match="positive"):
        project(inr_tariff(), START, ChargingModel(D(0)), "UTC", energy_kwh=D(1))


def test_usage_helpers() -> None:
    pr = project(inr_tariff(), START, ChargingModel(D(30)), "UTC", energy_kwh=D(5))
    u: Usage = pr.usage
    assert u.energy_kwh == 5 and u.parking_hours == 0 and pr.start == START
