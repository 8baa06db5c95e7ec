"""(a) of tests/test_pricing_agreement.py: the bridge's engine and the mock CPO's pricing
agree to the paisa on every worked case of TARIFF-CASES.md and on every OCPI 2.2.1
example tariff (read from the spec directory) over a set of session shapes."""

from __future__ import annotations

import pytest

from tests import spec
from tests.test_pricing_agreement import EU, TARIFF_CASES, Case, assert_agree, example_cases, price_both


def _cases() -> list[Case]:
    return TARIFF_CASES + (example_cases() if spec.OCPI_EXAMPLES.is_dir() else [])


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c.name)
def test_spec_cases_agree(case: Case) -> None:
    ours, theirs = price_both(case.tariff(), case.shape.periods, case.shape.start, case.shape.end, EU,
                              case.reservation)
    assert_agree(ours, theirs, case.name)
