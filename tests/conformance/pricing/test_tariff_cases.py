"""Every worked example of TARIFF-CASES.md (the OCPI 2.2.1 answer key), table-driven.

Each row: case number, tariff, session shape, reservation, expected total
(excl, incl) exactly as the engine computes it before rounding, and the
rounded figures where the spec prints them. Times are local (Europe/Berlin).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest

from bridge.mapping.tariff import TariffResult, price
from bridge.ocpi.models import ReservationRestrictionType, Tariff
from tests.pricing.pricing_support import D, Shape, local, make_tariff, session, tariff

TZ = "Europe/Berlin"
RES = ReservationRestrictionType.RESERVATION
EXP = ReservationRestrictionType.RESERVATION_EXPIRES
MON = "2024-01-15"  # a Monday
SAT = "2024-01-20"


@dataclass
class Case:
    name: str
    tariff: Callable[[], Tariff]
    shape: Shape
    excl: str
    incl: str | None = None
    reservation: ReservationRestrictionType | None = None
    check: Callable[[TariffResult], None] | None = None


def ch(minutes: float | str, **dims: object) -> tuple[str, float | str, dict[str, object]]:
    return ("charge", minutes, dims)


def park(minutes: float | str) -> tuple[str, float | str, dict[str, object]]:
    return ("park", minutes, {})


def rsv(minutes: float | str) -> tuple[str, float | str, dict[str, object]]:
    return ("reserve", minutes, {})


def at(hhmm: str, day: str = MON) -> object:
    return local(f"{day} {hhmm}", TZ)


def t(name: str) -> Callable[[], Tariff]:
    return lambda: tariff(name)


def _energy_split_tariff() -> Tariff:  # case 24
    return make_tariff([
        {"price_components": [{"type": "ENERGY", "price": "0.20", "step_size": 500}],
         "restrictions": {"start_time": "00:00", "end_time": "17:00"}},
        {"price_components": [{"type": "ENERGY", "price": "0.27", "step_size": 500}]},
    ])


def _time_split_tariff() -> Tariff:  # case 25
    return make_tariff([
        {"price_components": [{"type": "TIME", "price": "5", "step_size": 600}],
         "restrictions": {"end_time": "17:00"}},
        {"price_components": [{"type": "TIME", "price": "7", "step_size": 600}]},
    ])


def _time_parking_tariff(step: int) -> Callable[[], Tariff]:  # cases 23, 26
    return lambda: make_tariff([
        {"price_components": [{"type": "TIME", "price": "1", "step_size": step},
                              {"type": "PARKING_TIME", "price": "2", "step_size": step}]},
    ])


def _energy_025(step: int) -> Callable[[], Tariff]:  # case 22
    comp = {"type": "ENERGY", "price": "0.25", "step_size": step}
    return lambda: make_tariff([{"price_components": [comp]}])


def _billed(time_min: int, parking_min: int) -> Callable[[TariffResult], None]:
    def check(r: TariffResult) -> None:
        assert r.billed_time * 60 == pytest.approx(time_min)
        assert r.billed_parking_time * 60 == pytest.approx(parking_min)
    return check


def _case24(r: TariffResult) -> None:
    assert r.billed_energy == D("5.5")
    after = [ln for ln in r.lines if ln.price == D("0.27")]
    assert [ln.quantity for ln in after] == [D("1.2")]
    assert r.exact["total_cost"].excl_vat == D("4.3") * D("0.20") + D("1.2") * D("0.27")


def _case25(r: TariffResult) -> None:
    after = [ln for ln in r.lines if ln.price == 7]
    assert after[0].quantity * 60 == pytest.approx(24)
    assert r.billed_time * 60 == pytest.approx(30)


def _case9(r: TariffResult) -> None:
    assert (r.total_energy_cost.excl_vat, r.total_energy_cost.incl_vat) == (D("5.13"), D("5.64"))
    assert r.billed_energy == D("20.5")


def _case10(r: TariffResult) -> None:
    assert r.billed_parking_time * 60 == pytest.approx(45)
    assert r.billed_time * 60 == pytest.approx(165)
    assert {ln.element_index for ln in r.lines} == {0, 1, 4}


def _case11(r: TariffResult) -> None:
    assert r.total_cost.excl_vat == D("12.38") and r.total_cost.incl_vat == D("13.98")
    assert {ln.element_index for ln in r.lines} == {0, 3, 5}


CASES = [
    Case("1 tariff_8 20 kWh", t("tariff_8_simple_025kwh.json"),
         session(at("10:00"), ch(60, energy=20)), "5.00", "5.50"),
    Case("2 tariff_9 20 kWh", t("tariff_9_025kwh_start.json"),
         session(at("10:00"), ch(60, energy=20)), "5.50", "6.10"),
    Case("3a tariff_12 20 kWh", t("tariff_12_025kwh_min_price.json"),
         session(at("10:00"), ch(60, energy=20)), "5.00", "5.50"),
    Case("3b tariff_12 under 2 kWh", t("tariff_12_025kwh_min_price.json"),
         session(at("10:00"), ch(10, energy="1.5")), "0.50", "0.55",
         check=lambda r: (r.price_limit == "min_price") or pytest.fail("min_price not reported")),
    Case("4 tariff_10 20 kWh + 40 min parking", t("tariff_10_025kwh_parking_start.json"),
         session(at("10:00"), ch(60, energy=20), park(40)), "7.00", "7.90", check=_billed(0, 45)),
    Case("5a tariff_6 50 kWh", t("tariff_6_025kwh_start_max_price.json"),
         session(at("10:00"), ch(90, energy=50)), "10.00", "11.00",
         check=lambda r: (r.price_limit == "max_price") or pytest.fail("max_price not reported")),
    Case("5b tariff_6 30 kWh", t("tariff_6_025kwh_start_max_price.json"),
         session(at("10:00"), ch(60, energy=30)), "8.00", "8.85"),
    Case("6 tariff_1 2.5 h", t("tariff_1_simple_2hour.json"),
         session(at("10:00"), ch(150, energy=10)), "5.00", "5.50"),
    Case("7 tariff_13 150 min + 42 min parking", t("tariff_13_simple_3hour_5parking.json"),
         session(at("10:00"), ch(150), park(42)), "11.25", "12.75", check=_billed(150, 45)),
    Case("8 tariff_2 2.5 h", t("tariff_2_alt_text.json"),
         session(at("10:00"), ch(150)), "4.75", "4.997"),
    Case("9 tariff_3 20.45 kWh", t("tariff_3_alt_url.json"),
         session(at("10:00"), ch(60, energy="20.45")), "5.625", "6.2375", check=_case9),
    Case("10 tariff_4 Monday 09:30", t("tariff_4_complex.json"),
         session(at("09:30"), ch(165, max_current=16), park(42)), "9.00", "10.30", check=_case10),
    Case("11 tariff_4 Saturday 13:30 (erratum #579)", t("tariff_4_complex.json"),
         session(at("13:30", SAT), ch(114, min_current=43), park(71)), "12.375", "13.975",
         check=_case11),
    Case("12a tariff_5 free, nothing", t("tariff_5_free_of_charge.json"),
         session(at("10:00")), "0", "0"),
    Case("12b tariff_5 free, a long session", t("tariff_5_free_of_charge.json"),
         session(at("10:00"), ch(300, energy=60), park(60)), "0", "0"),
    Case("13 tariff_15 15 min reservation + 20 kWh", t("tariff_15_reservation_5_euro_per_hour.json"),
         session(at("10:00"), rsv(15), ch(60, energy=20)), "6.75", "7.60", RES),
    Case("14 tariff_16 13 min reservation + 20 kWh",
         t("tariff_16_reservation_2_euro_fee_5_euro_per_hour.json"),
         session(at("10:00"), rsv(13), ch(60, energy=20)), "8.75", "10.00", RES),
    Case("15a tariff_17 22 min reservation + 20 kWh", t("tariff_17_reservation_with_expire_fee.json"),
         session(at("10:00"), rsv(22), ch(60, energy=20)), "6.50", "7.30", RES),
    Case("15b tariff_17 expired after 60 min", t("tariff_17_reservation_with_expire_fee.json"),
         session(at("10:00"), rsv(60)), "6.00", "7.20", EXP),
    Case("16a tariff_18 22 min reservation + 20 kWh", t("tariff_18_reservation_with_expire_time.json"),
         session(at("10:00"), rsv(22), ch(60, energy=20)), "7.00", "7.90", RES),
    Case("16b tariff_18 expired after 90 min", t("tariff_18_reservation_with_expire_time.json"),
         session(at("10:00"), rsv(90)), "9.00", "10.80", EXP),
    Case("17 max_power, power derived from energy/time", t("tariffrestriction_example_max_power.json"),
         session(at("10:00"), ch(10, energy=1), ch(50, energy=40), ch("7.5", energy="0.5")), "20.30"),
    Case("17b max_power, MIN/MAX_POWER dimensions", t("tariffrestriction_example_max_power.json"),
         session(at("10:00"), ch(10, energy=1, min_power=5, max_power=6),
                 ch(50, energy=40, min_power=47, max_power=48),
                 ch("7.5", energy="0.5", min_power=4, max_power=4)), "20.30"),
    Case("18 max_duration 40 min", t("tariffrestriction_example_max_duration.json"),
         session(at("10:00"), ch(30, energy=5), ch(10, energy="1.2")), "0.30"),
    Case("19 tariff_14 16:55 charge 10, park 2", t("tariff_14_step_size.json"),
         session(at("16:55"), ch(10), park(2)), "0.55", "0.55", check=_billed(10, 15)),
    Case("20 tariff_14 16:35 charge 35", t("tariff_14_step_size.json"),
         session(at("16:35"), ch(35)), "1.30", "1.30", check=_billed(45, 0)),
    Case("21 tariff_14 19:40 charge 12, park 20 (erratum a57ecb6)", t("tariff_14_step_size.json"),
         session(at("19:40"), ch(12), park(20)), "0.73", "0.73",
         check=lambda r: (r.unpriced["PARKING_TIME"] * 60 == pytest.approx(12))
         or pytest.fail("parking after 20:00 should be unpriced")),
    Case("22a 115.2 Wh step 1", _energy_025(1), session(at("10:00"), ch(1, energy="0.1152")), "0.029"),
    Case("22b 115.2 Wh step 25", _energy_025(25), session(at("10:00"), ch(1, energy="0.1152")), "0.03125"),
    Case("22c 115.2 Wh step 500", _energy_025(500), session(at("10:00"), ch(1, energy="0.1152")), "0.125"),
    Case("23 step 300: 21 min charging + 7 min parking", _time_parking_tariff(300),
         session(at("10:00"), ch(21), park(7)), str(D(21) / 60 + D(10) / 60 * 2), check=_billed(21, 10)),
    Case("24 energy step 500 across 17:00", _energy_split_tariff,
         session(at("16:00"), ch(60, energy="4.3"), ch(30, energy="1.1")), "1.184", check=_case24),
    Case("25 time step 600 across 17:00", _time_split_tariff,
         session(at("16:54"), ch(28)), str(D(6) / 60 * 5 + D(24) / 60 * 7), check=_case25),
    Case("26 step 600: 21 min + 16 min parking", _time_parking_tariff(600),
         session(at("10:00"), ch(21), park(16)), str(D(21) / 60 + D(20) / 60 * 2), check=_billed(21, 20)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tariff_cases(case: Case) -> None:
    r = price(case.tariff(), case.shape.periods, start=case.shape.start, end=case.shape.end,
              time_zone=TZ, reservation=case.reservation)
    exact = r.exact["total_cost"]
    assert exact.excl_vat == pytest.approx(D(case.excl), abs=D("1e-12"))
    if case.incl is not None:
        assert exact.incl_vat == pytest.approx(D(case.incl), abs=D("1e-12"))
    if case.check is not None:
        case.check(r)


def test_case_27_cdr_example() -> None:
    from bridge.mapping.tariff import price_cdr
    from bridge.ocpi.models import CDR
    from tests.pricing.pricing_support import example

    cdr = CDR.model_validate(example("cdr_example.json"))
    r = price_cdr(cdr, "Europe/Brussels")
    assert (r.total_cost.excl_vat, r.total_cost.incl_vat) == (D("4.00"), D("4.40"))
    assert r.billed_time == 2
    assert r.total_cost.excl_vat == cdr.total_cost.excl_vat
    assert r.total_cost.incl_vat == cdr.total_cost.incl_vat


def test_rounded_figures_of_case_9() -> None:
    shape = session(at("10:00"), ch(60, energy="20.45"))
    r = price(tariff("tariff_3_alt_url.json"), shape.periods, start=shape.start, end=shape.end, time_zone=TZ)
    assert (r.total_cost.excl_vat, r.total_cost.incl_vat) == (D("5.63"), D("6.24"))
    assert (r.total_fixed_cost.excl_vat, r.total_fixed_cost.incl_vat) == (D("0.50"), D("0.60"))


def test_case_8_rounds_to_5_00() -> None:
    shape = session(at("10:00"), ch(150))
    r = price(tariff("tariff_2_alt_text.json"), shape.periods, start=shape.start, end=shape.end, time_zone=TZ)
    assert r.total_cost.incl_vat == Decimal("5.00")
