"""Every Beckn 2.0 LTS body the bridge sends, checked against the LTS OpenAPI as published
(both refs: core-v2.0.0-lts and release-v2.0.0-lts; tests/conformance/beckn/lts.py):
the LTS scenarios of tests/lts run again (imported, not copied) with every callback,
every Ack (each HTTP status) and every tracking PATCH their BAPs receive checked, and
every request the stand-in LTS BAP sends checked too (it must be a valid LTS BAP for the
journey to prove anything). 0 violations.
"""

from __future__ import annotations

import inspect as pyinspect
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from bridge.beckn import countersign, signing
from bridge.edge import error_body
from tests.conformance.beckn import lts as lts_schema
from tests.conformance.beckn import rc2
from tests.journey.conftest import World
from tests.lts import (
    test_lts_acks,
    test_lts_discover,
    test_lts_errors,
    test_lts_journey,
    test_lts_limits,
    test_lts_money,
)
from tests.lts.conftest import LtsBap
from tests.spec import require

Scenario = Callable[..., Awaitable[None]]


@dataclass
class LtsInspector:
    schema: lts_schema.Lts
    checked: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    violations: list[Any] = field(default_factory=list)

    def __call__(self, kind: str, body: Any) -> None:
        self.checked += 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        if kind.startswith("ack:"):
            self.violations += self.schema.ack(int(kind[4:]), body)
        elif kind.startswith("request:"):
            self.violations += self.schema.message(kind[8:], body)
        elif kind == "track":
            self.violations += self.schema.session_patch(body)
        else:
            self.violations += self.schema.message(kind, body)

    def report(self) -> str:
        lines = [f"{self.checked} bodies checked (lts): {self.by_kind}",
                 f"{len(self.violations)} violations"]
        return "\n".join(lines + [f"  {v}" for v in self.violations[:40]])

    def assert_clean(self, least: int = 1) -> None:
        print(self.report())
        assert self.checked >= least, self.report()
        assert not self.violations, self.report()


def scenarios(*modules: Any) -> list[Any]:
    return [pytest.param(fn, id=f"{m.__name__.rsplit('.', 1)[-1]}::{name}")
            for m in modules for name, fn in vars(m).items()
            if name.startswith("test_") and pyinspect.iscoroutinefunction(fn)]


@pytest.fixture
def profile() -> str:
    """The draft BAP of the harness in rc2 (the LTS scenarios run once, not per profile)."""
    return "rc2"


@pytest.fixture
def bridge_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings the scenario's own module runs its bridge with (`BRIDGE_OVERRIDES`,
    e.g. the small limits of tests/lts/test_lts_limits.py)."""
    callspec = getattr(request.node, "callspec", None)
    scenario = callspec.params.get("scenario") if callspec else None
    module = sys.modules.get(getattr(scenario, "__module__", ""))
    return dict(getattr(module, "BRIDGE_OVERRIDES", {}))


@pytest.fixture
def inspector() -> LtsInspector:
    for ref in lts_schema.REFS:
        require(lts_schema.spec.BECKN_SPEC / ref / lts_schema.FILE)
    require(rc2.RC2)
    return LtsInspector(lts_schema.shared())


@pytest.mark.slow
@pytest.mark.parametrize("scenario", scenarios(test_lts_journey, test_lts_errors, test_lts_acks,
                                               test_lts_money, test_lts_limits,
                                               test_lts_discover))
async def test_lts_scenario(scenario: Scenario, inspector: LtsInspector, world: World,
                            lts: LtsBap) -> None:
    lts.inspect = inspector
    world.bap.inspect = lambda kind, body: inspector(kind, body) if kind == "track" else None
    available = {"world": world, "lts": lts}
    await scenario(**{n: available[n] for n in pyinspect.signature(scenario).parameters})
    inspector.assert_clean()


def test_the_edges_nack(inspector: LtsInspector) -> None:
    """The NACK the HTTP edge answers an unreadable request on an LTS path with
    (bridge/edge.py), counter-signed as `bridge serve` does, is an LTS NackBadRequest."""
    signer = signing.Signer("bpp.example", "k1", signing.generate_private_key(), 300)

    def counter(ack: dict[str, Any]) -> str:
        return countersign.counter_sign(signer.sign_bytes, signer.subscriber_id, signer.key_id,
                                        ack, b"", "", time.time(), 300)

    for first in (b"POST /select?" + b"q" * 50, b"POST /discover HTTP/1.1\r\nX-Big: bbbb"):
        body = error_body(first, 400, "too long", counter)
        assert body is not None
        inspector("ack:400", orjson.loads(body))
    inspector.assert_clean(2)


def test_overlay_is_still_needed() -> None:
    """Each fix of the overlay applied to the published files: none is dead weight."""
    docs = lts_schema.load_documents()
    assert len(docs.applied) == len(lts_schema.OVERLAY), docs.applied


@pytest.mark.slow
@pytest.mark.parametrize("speed", [120])
async def test_lts_demo_journeys(inspector: LtsInspector, world: World, speed: int) -> None:
    """`bridge demo --profile lts`: every Ack, callback and PATCH its BAP gets, checked."""
    import io

    from bridge.demo.journeys import run_demo
    from bridge.demo.render import Printer
    from tests.lts.test_lts_demo import demo_config

    journeys = ("walk-in", "power-cut", "offline")
    out = io.StringIO()
    results = await run_demo(demo_config(world, journeys, inspect=inspector), Printer(out))
    assert results == dict.fromkeys(journeys, True), out.getvalue()
    inspector.assert_clean()
