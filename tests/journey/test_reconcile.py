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
