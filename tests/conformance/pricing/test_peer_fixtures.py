"""A peer's fixtures as a regression suite: the Rust engine `ocpi-tariffs` and a Python
port (`reference/ocpi-tariffs-peer/` in the spec directory; its README and index.json).

Each case is priced by `bridge tariff price` (offline, with the case's tariff file and the
time zone the peer prices it in) and every figure the peer states is compared with ours
under the same OCPI name: costs to the cent (the peer's figures rounded half up to the
currency's minor unit, as the bridge rounds), quantities to the µ-unit. Where the peer
states its engine's own output (`rust_peer_output`) that is the figure compared, else
the CDR fields its integration test reads (`cdr_fields`).

Every case agrees except the differences below, each written down in docs/pricing.md
("The peer's fixtures"); for those the spec's figure is asserted, and a test checks that
each is still a difference, so the list cannot go stale.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from bridge.commands import tariff as cmd
from bridge.mapping.money import minor_unit
from tests import spec

PEER = spec.TARIFF_PEER
COSTS = ("total_cost", "total_energy_cost", "total_time_cost", "total_parking_cost", "total_fixed_cost",
         "total_reservation_cost")
QUANTITIES = ("total_energy", "total_time", "total_parking_time")
MICRO = Decimal("0.000001")

# (case, figure) -> (the figure we give, why). Written down in docs/pricing.md.
DIFFERENCES: dict[tuple[str, str], tuple[Any, str]] = {
    ("td__025kwh_min_price__cdr2_less_than_2kWh", "total_cost"): (
        {"excl_vat": "0.50", "incl_vat": "0.55"},
        "the peer never applies min_price; mod_tariffs Tariff.min_price: 'when the cost of a "
        "Charging Session is lower than this amount, the cost of the Session will be equal to "
        "this amount' (1.2 kWh x 0.25 = 0.30 < 0.50)"),
    ("hn__codeberg_issue_228__cdr", "total_time"): (
        "0.756944",
        "the Rust engine measures from the first period's start (12:00:00, before the CDR's "
        "start_date_time 12:20:06: its own warning periods_outside_start_end_date_time); "
        "mod_cdrs total_time is the session's duration, end - start, as the CDR itself says"),
}


def cases() -> list[Any]:
    index = PEER / "index.json"
    if not index.is_file():
        return spec.files(PEER, "*/expected.json")  # the skipped placeholder
    return [row["case"] for row in json.loads(index.read_text())]


def load(case: str, name: str) -> Any:
    return json.loads(spec.require(PEER / case / f"{name}.json").read_text())


def peer_figures(case: str) -> dict[str, Any]:
    expected = load(case, "expected")
    figures = dict(expected.get("cdr_fields", {}))
    figures.update({k: v for k, v in expected.get("rust_peer_output", {}).items() if k != "warnings"})
    return figures


def ours(case: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    tz = load(case, "source")["time_zone"]
    code = cmd.main(["price", str(PEER / case / "cdr.json"), "--tariff", str(PEER / case / "tariff.json"),
                     "--time-zone", tz, "--offline"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def cents(value: Any, currency: str) -> Decimal:
    return Decimal(str(value)).quantize(minor_unit(currency), ROUND_HALF_UP)


def compare(case: str, figure: str, peer: Any, got: dict[str, Any]) -> None:
    cur = got["currency"]
    if figure in COSTS:
        mine = got[figure]
        for part in ("excl_vat", "incl_vat"):
            if peer.get(part) is None:
                continue
            assert cents(mine[part], cur) == cents(peer[part], cur), (case, figure, part, mine, peer)
    else:
        assert Decimal(str(got[figure])).quantize(MICRO) == Decimal(str(peer)).quantize(MICRO), (
            case, figure, got[figure], peer)


@pytest.mark.parametrize("case", cases())
def test_peer_case(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    got = ours(case, capsys)
    figures = peer_figures(case)
    assert figures, case
    compared = 0
    for figure, peer in figures.items():
        if figure not in COSTS and figure not in QUANTITIES:
            continue
        spec_figure, _why = DIFFERENCES.get((case, figure), (peer, ""))
        compare(case, figure, spec_figure, got)
        compared += 1
    assert compared >= 3, (case, figures)


@pytest.mark.parametrize("key", list(DIFFERENCES), ids=["/".join(k) for k in DIFFERENCES])
def test_each_documented_difference_is_still_one(key: tuple[str, str], capsys: pytest.CaptureFixture[str]
                                                  ) -> None:
    case, figure = key
    got = ours(case, capsys)
    peer = peer_figures(case)[figure]
    with pytest.raises(AssertionError):
        compare(case, figure, peer, got)
    docs = (spec.ROOT / "docs" / "pricing.md").read_text()
    assert case in docs, f"{case} is not written down in docs/pricing.md"


def test_periods_outside_the_cdr_warn_as_the_rust_engine_does(capsys: pytest.CaptureFixture[str]) -> None:
    case = "hn__codeberg_issue_228__cdr"
    rust = load(case, "expected")["rust_peer_output"]["warnings"]
    assert rust == ["periods_outside_start_end_date_time"]
    got = ours(case, capsys)
    assert any("charging period 1 starts at 2025-08-20T12:00:00Z, before the session's start_date_time"
               in w for w in got["warnings"])


def test_the_cdrs_own_total_rounds_each_period(capsys: pytest.CaptureFixture[str]) -> None:
    # hn__codeberg_issue_228__cdr: the CDR says 1.83 / 2.21 (each hour rounded first); the
    # Rust engine and the bridge round once: 1.84 / 2.22. The spec sets no rounding rule;
    # within the CLI's one-minor-unit tolerance, so it matches the reported total.
    case = "hn__codeberg_issue_228__cdr"
    got = ours(case, capsys)
    assert got["total_cost"] == {"excl_vat": 1.84, "incl_vat": 2.22}
    assert got["reported_total_cost"] == {"excl_vat": 1.83, "incl_vat": 2.21} and got["matches_reported"]


def test_the_peer_directory_is_what_its_readme_says() -> None:
    readme = spec.require(PEER / "README.md").read_text()
    assert "ocpi-tariffs" in readme
    assert len(cases()) == 11
    assert all((PEER / c / n).is_file() for c in cases() for n in ("tariff.json", "cdr.json", "expected.json",
                                                                     "source.json"))

