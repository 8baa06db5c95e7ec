"""A start-charging is answered even when the order never goes ACTIVE in the bridge's eyes.

Found by the chaos suite: the CPO's PUT ACTIVE was lost (serve down while it retried)
and the CPO could not be asked (slow), so the charge ran and ended before the order
was promoted; it went CONFIRMED -> COMPLETED on its CDR. The start-charging is answered
on ACTIVE (or on its failure), so it never was: the BAP retried it and was told
"still being handled" for ever. Now the bill answers it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.journey.conftest import World, state_of, update_message
from tests.journey.test_journeys import book


@pytest.fixture
def bridge_overrides() -> dict[str, Any]:
    return {"journey_reconcile_after": 600.0}  # no pull before the charge is over


async def test_a_start_never_seen_active_is_answered_by_the_bill(world: World) -> None:
    txn, phone = "txn-never-active-1", "+919800002401"
    # a car nearly full: the session ends by itself within a simulated minute or two
    await world.mock("POST", "/admin/next-car", {"battery_kwh": 10, "soc": 0.85,
                                                 "target_soc": 0.9, "max_kw": 60})
    await book(world, txn, phone, kwh=2)
    await world.mock("POST", "/admin/faults/lost-active-push", {"count": 1})
    status, ack = await world.post("update", txn,
                                   update_message("start-charging", await world.otp(phone)))
    assert (status, ack["ack_status"]) == (200, "ACK"), ack
    answer = await world.bap.wait_for("on_update", txn, timeout=60)
    assert state_of(answer)[0] == "COMPLETED", answer  # the answer to start-charging
    order = await world.order(txn)
    assert order.state.value == "COMPLETED" and order.settlement
    finals = {m["context"]["message_id"] for m in world.bap.of("on_update", txn)
              if state_of(m)[0] == "COMPLETED"}
    assert len(finals) == 1, finals  # the bill told once: as that answer
    # (and the world's end check: every ACKed request got its on_update)
