"""What the bridge sends a Catalog Discovery Service, against the published rc2 schema:
every `catalog/publish` body of the publish scenarios (tests/beckn/test_catalog_publish.py,
imported, not copied: full publish, incremental changes, an EVSE out of order, withdrawals,
batches, the republish after a change-stream gap) validated by the generic validator
(`CatalogPublishRequest`, the core Catalog / Item / Offer, the EV packs)."""

from __future__ import annotations

import inspect as pyinspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.beckn import test_catalog_publish as tcp
from tests.beckn.test_catalog_publish import cds, pub_settings, world  # noqa: F401
from tests.conformance.beckn import rc2
from tests.conformance.beckn.conftest import Inspector
from tests.spec import require

Scenario = Callable[..., Awaitable[None]]

SCENARIOS = [
    tcp.test_full_publish_then_changes_reach_the_cds_like_discover,
    tcp.test_a_burst_of_changes_is_one_publish_per_cpo,
    tcp.test_batches_by_item_count_and_body_size,
    tcp.test_full_republish_after_a_change_stream_gap,
]


@pytest.fixture
def profile() -> str:
    return "rc2"  # the CDS gets the rc2 catalog whatever the BAPs' profiles


@pytest.mark.parametrize("scenario", [pytest.param(s, id=s.__name__) for s in SCENARIOS])
async def test_publish_bodies_are_rc2(scenario: Scenario, world: Any) -> None:  # noqa: F811
    require(rc2.RC2)
    inspector = Inspector("rc2", rc2.shared())
    world.cds.inspect = inspector
    params = pyinspect.signature(scenario).parameters
    await scenario(**{name: {"world": world}[name] for name in params})
    assert inspector.by_kind.get("catalog/publish", 0) >= 1
    inspector.assert_clean()


def test_a_withdrawal_stub_is_rc2() -> None:
    """The stub of a withdrawn item, in its inactive catalog, on its own."""
    from datetime import UTC, datetime

    import orjson

    from bridge.beckn import catalog_publish as cp
    from bridge.config import Settings
    from bridge.mapping.catalog import catalog_header

    require(rc2.RC2)
    s = Settings(beckn_subscriber_id="bpp.example.org", public_url="https://bpp.example.org")
    prov = {"beckn:id": "IN-TPC", "beckn:descriptor": {"@type": "beckn:Descriptor",
                                                       "schema:name": "Tata Power"}}
    stub = cp.withdrawal_item("IN:TPC:loc-1:e1:1", prov, "CCS2", 60.0)
    entry = cp.Entry("IN:TPC:loc-1", "IN:TPC:loc-1:e1:1", orjson.dumps(stub), None, "")
    ctx = cp.publish_context(s, datetime.now(UTC), "6d946b5e-ca7d-4c24-89cf-886e97728cd5",
                             "95a46878-cada-47b0-8602-80d764390b18")
    body = orjson.loads(cp.publish_body(ctx, catalog_header(prov, s.beckn_subscriber_id,
                                                            s.bpp_uri), [entry], False))
    assert rc2.shared().request("catalog/publish", body) == []
