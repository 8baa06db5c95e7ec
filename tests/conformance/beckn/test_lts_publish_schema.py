"""What the bridge sends an LTS Catalog Discovery Service (`beckn.publish_profile = "lts"`),
against the LTS OpenAPI as published (both refs): every `catalog/publish` body of the LTS
publish scenarios (tests/lts/test_lts_publish.py, imported, not copied: a full publish, a
withdrawal, a rejection) and every Ack the bridge answers the CDS's results with, and the
attribute bags against their EV packs."""

from __future__ import annotations

import inspect as pyinspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conformance.beckn import lts as lts_schema
from tests.conformance.beckn import rc2
from tests.conformance.beckn.test_lts_schema import LtsInspector
from tests.lts import test_lts_publish as tlp
from tests.lts.test_lts_publish import (  # noqa: F401
    bap,
    bridge_key,
    cds,
    pub_settings,
    settings,
    world,
)
from tests.spec import require

Scenario = Callable[..., Awaitable[None]]
SCENARIOS = [tlp.test_lts_publish_and_results, tlp.test_lts_withdrawal_and_rejection,
             tlp.test_lts_on_publish_refusals]


@pytest.fixture
def profile() -> str:
    return "rc2"


@pytest.mark.parametrize("scenario", [pytest.param(s, id=s.__name__) for s in SCENARIOS])
async def test_lts_publish_bodies(scenario: Scenario, world: Any) -> None:  # noqa: F811
    for ref in lts_schema.REFS:
        require(lts_schema.spec.BECKN_SPEC / ref / lts_schema.FILE)
    require(rc2.RC2)
    inspector = LtsInspector(lts_schema.shared())
    world.cds.inspect = inspector
    params = pyinspect.signature(scenario).parameters
    await scenario(**{name: {"world": world}[name] for name in params})
    inspector.assert_clean()
