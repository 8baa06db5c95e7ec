"""`bridge demo`'s walk-in journey, played by the demo code against the in-process world."""

from __future__ import annotations

import io

from bridge.demo.bap import Identity
from bridge.demo.client import Endpoints
from bridge.demo.journeys import DemoConfig, run_demo
from bridge.demo.render import Printer
from tests.conftest import free_port
from tests.journey.conftest import BAP_ID, BAP_KEY, World


async def test_demo_walk_in_journey(world: World) -> None:
    s = world.settings
    # The world's registry knows one BAP: the demo signs as that one, with its key.
    identity = Identity(BAP_ID, BAP_KEY, world.bap.key)
    cfg = DemoConfig(
        ends=Endpoints(bridge_url=s.public_url, mock_url=world.mock_url,
                       bpp_id=s.beckn_subscriber_id, domain=s.beckn_domain,
                       version=s.beckn_version),
        redis_url=s.redis_url, bridge_key=world.bap.bridge_public, bap_port=free_port(),
        journeys=("walk-in",), timeout=40, identity=identity,
        interrupt_after=s.journey_interrupt_after)
    out = io.StringIO()
    results = await run_demo(cfg, Printer(out))
    text = out.getvalue()
    print(text)
    assert results == {"walk-in": True}, text
    assert "✓ paid ₹" in text and "⇐ on_update (COMPLETED)  ✓ signed" in text
    assert "📱 SMS to +919800000101: Your start code" in text
