"""Settling a CDR that switched tariffs mid-session (issue 17): the worker finds the
tariffs its periods name in the store when the CDR does not carry them, and the
engine prices each period with its own (the discrepancy check sees the engine's price)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis

from bridge.config import Settings
from bridge.journey.common import JourneyDeps
from bridge.journey.settle import end_on_session_data, estimate_refund, journey_settle
from bridge.ocpi.models import CDR, Session, Tariff
from bridge.orders import State
from bridge.store.orders import Order, OrderItem
from tests.conftest import ROOT

CC, PID, LOC = "IN", "TPC", "LOC1"


def tariff(tid: str, per_kwh: str) -> Tariff:
    return Tariff.model_validate({
        "country_code": CC, "party_id": PID, "id": tid, "currency": "INR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": per_kwh, "step_size": 1}]}],
        "last_updated": "2026-11-25T09:00:00Z"})


@pytest.fixture
async def deps(redis_client: aioredis.Redis, redis_url: str) -> AsyncIterator[JourneyDeps]:
    settings = Settings(redis_url=redis_url, beckn_subscriber_id="bpp.test",
                        public_url="http://127.0.0.1:9",
                        journey_pricing_policy=str(ROOT / "config" / "pricing.toml"))
    d = JourneyDeps.build(settings, redis_client)
    yield d
    await d.close()


async def an_order(deps: JourneyDeps) -> Order:
    oid = uuid.uuid4().hex
    txn = f"txn-{oid[:10]}"
    now = datetime.now(UTC)
    link = await deps.gateway.create_link(oid, Decimal("150"), "INR", "PREPAID", key=f"init:{oid}")
    await deps.gateway.pay(link.payment_id)
    order = Order(
        id=oid, transaction_id=txn, bap_id="bap.test", bap_uri="http://127.0.0.1:9/bap",
        state=State.ACTIVE, created=now, updated=now, token_uid=f"BKN{oid[:20].upper()}",
        item=OrderItem(item_id="x", cc=CC, pid=PID, location_id=LOC, evse_uid="EVSE1", connector_id="1",
                       tariff_id="T-DAY"),
        customer={"phone": f"+91{uuid.uuid4().int % 10**10:010d}"},
        payment={"mode": "PREPAID", "amount": "150.00", "currency": "INR", "id": link.payment_id,
                 "status": "PAID"},
        request={"context": {"domain": "beckn.one:deg:ev-charging", "action": "select", "version": "2.0.0",
                             "bap_id": "bap.test", "bap_uri": "http://127.0.0.1:9/bap",
                             "bpp_id": "bpp.test", "bpp_uri": "http://127.0.0.1/beckn",
                             "transaction_id": txn, "message_id": str(uuid.uuid4()),
                             "timestamp": now.isoformat(), "ttl": "PT30S"},
                 "start": now.isoformat(), "end": now.isoformat()},
        commands={"start_requested": now.isoformat()})
    assert await deps.orders.create(order)
    return order


def switching_cdr(order: Order, total: str, tariffs: list[Tariff] | None = None) -> CDR:
    doc: dict[str, Any] = {
        "country_code": CC, "party_id": PID, "id": f"CDR-{order.id[:12]}",
        "start_date_time": "2026-11-25T10:00:00Z", "end_date_time": "2026-11-25T10:30:00Z",
        "session_id": f"S-{order.id[:12]}", "authorization_reference": order.id,
        "cdr_token": {"country_code": "IN", "party_id": "BKN", "uid": order.token_uid,
                      "type": "APP_USER", "contract_id": "IN-BKN-C1"},
        "auth_method": "COMMAND",
        "cdr_location": {"id": LOC, "address": "80 Feet Rd", "city": "Bengaluru", "country": "IND",
                         "coordinates": {"latitude": "12.93520", "longitude": "77.62450"},
                         "evse_uid": "EVSE1", "evse_id": "IN*TPC*E1", "connector_id": "1",
                         "connector_standard": "IEC_62196_T2_COMBO", "connector_format": "CABLE",
                         "connector_power_type": "DC"},
        "currency": "INR",
        # 2 kWh under the day tariff, then 3 kWh under the fast-charging one
        "charging_periods": [
            {"start_date_time": "2026-11-25T10:00:00Z", "tariff_id": "T-DAY",
             "dimensions": [{"type": "ENERGY", "volume": 2}]},
            {"start_date_time": "2026-11-25T10:12:00Z", "tariff_id": "T-FAST",
             "dimensions": [{"type": "ENERGY", "volume": 3}]},
        ],
        "total_cost": {"excl_vat": total, "incl_vat": total}, "total_energy": 5,
        "total_time": 0.5, "last_updated": "2026-11-25T10:30:00Z"}
    if tariffs:
        doc["tariffs"] = [t.model_dump(mode="json", exclude_none=True) for t in tariffs]
    return CDR.model_validate(doc)


async def test_worker_prices_a_switching_cdr_with_the_stored_tariffs(deps: JourneyDeps) -> None:
    # engine: 2 x 16 + 3 x 20 = 92; the CDR says 100 (the CPO's record wins, the difference
    # is reported). Before, the engine could not price it and nothing was checked.
    await deps.ocpi.store.put("tariffs", tariff("T-DAY", "16"))
    await deps.ocpi.store.put("tariffs", tariff("T-FAST", "20"))
    order = await an_order(deps)
    cdr = switching_cdr(order, "100")
    await deps.ocpi.store.put("cdrs", cdr, create_only=True)
    assert await journey_settle({"journey": deps}, CC, PID, cdr.id) == "settled"
    settled = await deps.orders.get(order.transaction_id)
    assert settled is not None and settled.settlement is not None
    assert settled.settlement["discrepancy"]["engine_total"] == 92
    assert settled.settlement["discrepancy"]["cdr_total"] == 100


async def test_inline_tariffs_come_before_the_stored_ones(deps: JourneyDeps) -> None:
    # The store has a newer T-FAST at 25/kWh; the CDR carries the one that applied (20):
    # the engine gives 2 x 16 + 3 x 20 = 92, not the 107 of the stored one.
    await deps.ocpi.store.put("tariffs", tariff("T-DAY", "16"))
    await deps.ocpi.store.put("tariffs", tariff("T-FAST", "25"))
    order = await an_order(deps)
    cdr = switching_cdr(order, "107", tariffs=[tariff("T-FAST", "20")])
    await deps.ocpi.store.put("cdrs", cdr, create_only=True)
    assert await journey_settle({"journey": deps}, CC, PID, cdr.id) == "settled"
    settled = await deps.orders.get(order.transaction_id)
    assert settled is not None and settled.settlement is not None
    assert settled.settlement["discrepancy"]["engine_total"] == 92


def switching_session(order: Order, kwh_day: int, kwh_fast: int) -> Session:
    """The Session of a charge that switched tariffs (no CDR yet): COMPLETED, no total_cost."""
    return Session.model_validate({
        "country_code": CC, "party_id": PID, "id": f"S-{order.id[:12]}",
        "start_date_time": "2026-11-25T10:00:00Z", "end_date_time": "2026-11-25T10:30:00Z",
        "kwh": kwh_day + kwh_fast,
        "cdr_token": {"country_code": "IN", "party_id": "BKN", "uid": order.token_uid,
                      "type": "APP_USER", "contract_id": "IN-BKN-C1"},
        "auth_method": "COMMAND", "authorization_reference": order.id,
        "location_id": LOC, "evse_uid": "EVSE1", "connector_id": "1", "currency": "INR",
        "charging_periods": [
            {"start_date_time": "2026-11-25T10:00:00Z", "tariff_id": "T-DAY",
             "dimensions": [{"type": "ENERGY", "volume": kwh_day}]},
            {"start_date_time": "2026-11-25T10:12:00Z", "tariff_id": "T-FAST",
             "dimensions": [{"type": "ENERGY", "volume": kwh_fast}]},
        ],
        "status": "COMPLETED", "last_updated": "2026-11-25T10:30:00Z"})


async def test_provisional_settlement_of_a_session_that_switched_tariffs(deps: JourneyDeps) -> None:
    # The CDR is late: the order ends on the Session, priced period by period with the
    # stored tariffs it names: 2 x 16 + 3 x 20 = 92 (every period at the order's T-DAY
    # would be 80), + the policy's ₹10 service fee - its ₹20 offer above 5 kWh = 82 of the
    # 150 paid. Before, the Session was priced with the order's tariff only (70, refund 80).
    await deps.ocpi.store.put("tariffs", tariff("T-DAY", "16"))
    await deps.ocpi.store.put("tariffs", tariff("T-FAST", "20"))
    order = await an_order(deps)
    s = switching_session(order, 2, 3)
    await deps.ocpi.store.put("sessions", s)

    def with_session(o: Order) -> Order:
        o.session = {"id": s.id}
        return o

    _, order = await deps.orders.update(order.transaction_id, with_session)
    assert await estimate_refund(deps, order, datetime.now(UTC)) == Decimal("68")  # 150 - 82
    assert await end_on_session_data(deps, order, datetime.now(UTC)) == "ended"
    settled = await deps.orders.get(order.transaction_id)
    assert settled is not None and settled.settlement is not None
    assert settled.settlement["provisional"] and Decimal(str(settled.settlement["final_amount"])) == 82
