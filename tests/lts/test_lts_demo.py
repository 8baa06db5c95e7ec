"""`bridge demo --profile lts`: the demo's journeys played by a BAP speaking Beckn 2.0 LTS
(bridge/demo/lts.py) on the journey harness: every Ack counter-signed by the bridge and
checked, every callback counter-signed back, each bill balanced to the paisa."""

from __future__ import annotations

import io
from typing import Any

import pytest

from bridge.demo.bap import Identity
from bridge.demo.client import Endpoints
from bridge.demo.journeys import DemoConfig, run_demo
from bridge.demo.render import Printer
from tests.conftest import free_port
from tests.journey.conftest import BAP_KEY, LTS_BAP, World


def demo_config(world: World, journeys: tuple[str, ...], inspect: Any = None) -> DemoConfig:
    s = world.settings
    return DemoConfig(
        ends=Endpoints(bridge_url=s.public_url, mock_url=world.mock_url,
                       bpp_id=s.beckn_subscriber_id, domain=s.beckn_domain,
                       version=s.beckn_version),
        redis_url=s.redis_url, bridge_key=world.bap.bridge_public, bap_port=free_port(),
        journeys=journeys, timeout=60, identity=Identity(LTS_BAP, BAP_KEY, world.bap.lts_key),
        interrupt_after=s.journey_interrupt_after, profile="lts", inspect=inspect)


@pytest.mark.slow
@pytest.mark.parametrize("speed", [120])
async def test_the_demo_in_lts(world: World, speed: int) -> None:
    out = io.StringIO()
    journeys = ("walk-in", "power-cut", "offline")
    results = await run_demo(demo_config(world, journeys), Printer(out))
    text = out.getvalue()
    assert results == dict.fromkeys(journeys, True), text
    assert "POST /select (signed)  ← ACK (counter-signed ✓)" in text, text
    assert "every Ack of the bridge counter-signed (LTS)" in text
    assert "/beckn/" not in text
