"""Orders reconciled by pull when the CPO's pushes are lost (issue 12, finding 8)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.journey.conftest import WALK_IN, World, state_of
from tests.journey.test_journeys import book, start


@pytest.fixture
def bridge_overrides() -> dict[str, Any]:
    return {"journey_reconcile_after": 1.0}


async def test_order_goes_active_without_a_single_session_push(world: World) -> None:
    """The charger starts but none of its Session pushes reaches the bridge (here the mock's
    offline fault: no PUT, no PATCH until the late CDR). The bridge pulls the Session from
    the CPO's sessions sender and the order goes ACTIVE; the driver is told."""
    txn, phone = "txn-nopush-1", "+919800002301"
    await world.mock("POST", "/admin/next-car", {"battery_kwh": 30, "soc": 0.5,
                                                 "target_soc": 0.9, "max_kw": 60})
    await book(world, txn, phone, kwh=2)
    await world.mock("POST", "/admin/faults/offline-charger", {"evse": WALK_IN[3],
                                                               "cdr_delay": 1200})
    active = await start(world, txn, phone)  # the on_update answering start-charging
    assert state_of(active)[0] == "ACTIVE", active
    order = await world.order(txn)
    assert order.session.get("id") and order.state.value in ("ACTIVE", "INTERRUPTED")
    # it keeps following the session by pull while the pushes stay away
    seen = order.session["seen"]
    for _ in range(100):
        order = await world.order(txn)
        if order.session["seen"] != seen:
            break
        await asyncio.sleep(0.1)
    assert order.session["seen"] != seen


async def test_order_goes_active_when_only_its_active_push_is_lost(world: World) -> None:
    """The chaos suite's case: serve was down while the CPO retried its PUT ACTIVE, so the
    bridge has the Session as PENDING; the meter PATCHes that follow arrive but carry no
    status. Pushes keep coming, so none is overdue, yet the order waits to go ACTIVE:
    after journey.reconcile_after s of waiting its Session is pulled; the order goes
    ACTIVE, is stopped at its target and settled. Before, it stayed CONFIRMED and
    charged until the car was full."""
    txn, phone = "txn-lostactive-1", "+919800002302"
    await world.mock("POST", "/admin/next-car", {"battery_kwh": 60, "soc": 0.2,
                                                 "target_soc": 0.9, "max_kw": 60})
    await book(world, txn, phone, kwh=2)
    await world.mock("POST", "/admin/faults/lost-active-push", {"count": 1})
    active = await start(world, txn, phone)
    assert state_of(active)[0] == "ACTIVE", active
    done = await world.bap.wait_for("on_update", txn, count=2, timeout=60)
    assert state_of(done)[0] == "COMPLETED", done
    order = await world.order(txn)
    assert order.commands.get("stop_requested"), "not stopped at its target"
    assert float(order.session["kwh"]) < 10, order.session  # 2 kWh asked, 42 kWh to full


async def test_an_order_that_ends_meanwhile_is_not_put_back_in_flight(redis_client,
                                                                      redis_url) -> None:
    """Found by the chaos suite: the reconciler read an order still ACTIVE, the
    settlement then completed it and took it out of the orders in flight, and the
    reconciler put it back (its next check time): 'still in flight' until the next pass."""
    from datetime import UTC, datetime, timedelta

    from bridge.config import Settings
    from bridge.journey.common import JourneyDeps
    from bridge.journey.reconcile import reconcile_once
    from bridge.orders import State
    from bridge.store.orders import INFLIGHT, Order, OrderItem, OrderStore
    from tests.conftest import ROOT

    settings = Settings(redis_url=redis_url, beckn_subscriber_id="bpp.test",
                        journey_pricing_policy=str(ROOT / "config" / "pricing.toml"),
                        journey_reconcile_after=3)
    deps = JourneyDeps.build(settings, redis_client)
    now = datetime.now(UTC)
    cc, pid, loc, evse, conn = WALK_IN
    order = Order(id="order-ends-1", transaction_id="txn-ends-1", bap_id="bap.test",
                  bap_uri="http://127.0.0.1:9/bap", state=State.ACTIVE, created=now,
                  updated=now, item=OrderItem(item_id="x", cc=cc, pid=pid, location_id=loc,
                                              evse_uid=evse, connector_id=conn),
                  session={"id": "S-1", "seen": now.isoformat()},
                  commands={"start_requested": now.isoformat()})
    assert await OrderStore(redis_client).create(order)
    await redis_client.zadd(INFLIGHT, {"txn-ends-1": int(now.timestamp() * 1000) - 1})
    read = deps.orders.get

    async def read_then_settled(txn: str) -> Order | None:
        o = await read(txn)
        await redis_client.zrem(INFLIGHT, txn)  # the settlement's step, right after the read
        return o

    deps.orders.get = read_then_settled  # type: ignore[method-assign]
    try:
        await reconcile_once(deps, now + timedelta(seconds=1))
        assert await redis_client.zscore(INFLIGHT, "txn-ends-1") is None
    finally:
        await deps.close()
