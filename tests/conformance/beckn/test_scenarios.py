"""The discover, journey and demo scenarios, run again with every body their BAP
receives checked (tests/conformance/beckn/conftest.py: `Inspector`), in each wire
profile: 0 violations, and every kind of message seen at least once.

The scenarios are the tests of tests/beckn, tests/journey and tests/demo themselves
(imported, not copied); a scenario that fails fails here too. A parametrized scenario
runs its first case (the others send the same kinds of message). Not run here: the
journey tests that need fixtures of their own module (crash points, a reconcile
setting, a browser: test_commands_once, test_effects_once, test_reconcile,
test_driver_pages) and test_inbound_forms, an rc2 BAP's requests (the rc2 BAP of
test_whole_journey sends them, checked here).
"""

from __future__ import annotations

import inspect as pyinspect
import io
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bridge.demo.bap import Identity
from bridge.demo.client import Endpoints
from bridge.demo.journeys import DemoConfig, run_demo
from bridge.demo.render import Printer
from tests.beckn import test_discover, test_discover_forms
from tests.conformance.beckn.conftest import Inspector
from tests.conftest import free_port
from tests.journey import (
    test_after_the_charge,
    test_journeys,
    test_ownership,
    test_walk_in,
    test_whole_journey,
)
from tests.journey.conftest import BAP_ID, BAP_KEY, World

Scenario = Callable[..., Awaitable[None]]


def scenarios(*modules: Any) -> list[Any]:
    out = []
    for m in modules:
        for name, fn in vars(m).items():
            if name.startswith("test_") and pyinspect.iscoroutinefunction(fn):
                out.append(pytest.param(fn, id=f"{m.__name__.rsplit('.', 1)[-1]}::{name}"))
    return out


# the discover scenarios that talk to the bridge (not the catalog's memory figure)
DISCOVER = [p for p in scenarios(test_discover)
            if "bap" in pyinspect.signature(p.values[0]).parameters] + scenarios(
    test_discover_forms)  # the network's forms: routes, areas, windows, vehicles
JOURNEYS = scenarios(test_walk_in, test_journeys, test_after_the_charge, test_ownership,
                     test_whole_journey)


def first_cases(scenario: Scenario) -> dict[str, Any]:
    """The arguments of a parametrized scenario's first case."""
    out: dict[str, Any] = {}
    for mark in getattr(scenario, "pytestmark", []):
        if mark.name == "parametrize":
            names = [n.strip() for n in mark.args[0].split(",")] if isinstance(
                mark.args[0], str) else list(mark.args[0])
            first = mark.args[1][0]
            out.update(zip(names, first if len(names) > 1 else [first], strict=True))
    return out


@pytest.mark.parametrize("scenario", DISCOVER)
async def test_discover_scenario(scenario: Scenario, inspector: Inspector, bridge: Any, bap: Any,
                                 catalog: Any, bridge_key: Any, redis_client: Any) -> None:
    bap.inspect = inspector
    available = {"bridge": bridge, "bap": bap, "catalog": catalog, "bridge_key": bridge_key,
                 "redis_client": redis_client, **first_cases(scenario)}
    params = pyinspect.signature(scenario).parameters
    available["profile"] = inspector.profile  # this test's own
    await scenario(**{name: available[name] for name in params})
    inspector.assert_clean()


@pytest.mark.slow
@pytest.mark.parametrize("scenario", JOURNEYS)
async def test_journey_scenario(scenario: Scenario, inspector: Inspector, world: World,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    world.bap.inspect = inspector
    # a scenario that runs per profile (test_whole_journey: a BAP of that dialect) gets
    # this test's own
    available = {"world": world, "monkeypatch": monkeypatch, **first_cases(scenario),
                 "profile": inspector.profile}
    await scenario(**{name: available[name] for name in pyinspect.signature(scenario).parameters})
    inspector.assert_clean()


@pytest.mark.slow
@pytest.mark.parametrize("speed", [120])
async def test_demo_journeys(inspector: Inspector, world: World, speed: int) -> None:
    s = world.settings
    cfg = DemoConfig(
        ends=Endpoints(bridge_url=s.public_url, mock_url=world.mock_url,
                       bpp_id=s.beckn_subscriber_id, domain=s.beckn_domain,
                       version=s.beckn_version),
        redis_url=s.redis_url, bridge_key=world.bap.bridge_public, bap_port=free_port(),
        journeys=("walk-in", "power-cut"), timeout=60,
        identity=Identity(BAP_ID, BAP_KEY, world.bap.key),
        interrupt_after=s.journey_interrupt_after, inspect=inspector)
    out = io.StringIO()
    results = await run_demo(cfg, Printer(out))
    assert results == {"walk-in": True, "power-cut": True}, out.getvalue()
    inspector.assert_clean()
