"""`session-duration` in real-time-metrics: the session's own start to its end or last update.

It was now - start: PT0M0S on a completed session whose CPO clock runs ahead of ours (the
mock at high speed), and hours on a session that ended long ago.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.journey.guide import session_metrics
from bridge.orders import State
from bridge.store.orders import Order

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def order(state: State, session: dict[str, str]) -> Order:
    return Order(id="o1", transaction_id="t1", bap_id="bap", bap_uri="http://bap", state=state,
                 created=T0, updated=T0, session=session)


def snap(status: str, minutes: float, **extra: str) -> dict[str, str]:
    return {"id": "S1", "status": status, "kwh": "4.2", "cost": "99.00", "start": T0.isoformat(),
            "last_updated": (T0 + timedelta(minutes=minutes)).isoformat(), **extra}


@pytest.mark.parametrize(("state", "session", "now", "expected"), [
    # finished: start to the last update, however late we are asked
    (State.COMPLETED, snap("COMPLETED", 30), T0 + timedelta(hours=3), "PT30M0S"),
    # the CPO's clock is ahead of ours (simulated time): still its own start to its end
    (State.COMPLETED, snap("COMPLETED", 30), T0 - timedelta(hours=1), "PT30M0S"),
    # an explicit end wins over the last update
    (State.COMPLETED, snap("COMPLETED", 45, end=(T0 + timedelta(minutes=40)).isoformat()),
     T0 + timedelta(hours=3), "PT40M0S"),
    # ended on the last session data after an outage: the session never said COMPLETED
    (State.COMPLETED, snap("ACTIVE", 12.5), T0 + timedelta(hours=2), "PT12M30S"),
    # charging: to now
    (State.ACTIVE, snap("ACTIVE", 10), T0 + timedelta(minutes=11, seconds=5), "PT11M5S"),
    # charging, CPO clock ahead: never less than what the CPO reported
    (State.ACTIVE, snap("ACTIVE", 10), T0 + timedelta(minutes=1), "PT10M0S"),
    (State.INTERRUPTED, snap("ACTIVE", 10), T0 + timedelta(minutes=20), "PT20M0S"),
    # over an hour stays in minutes (as before)
    (State.COMPLETED, snap("COMPLETED", 95), T0 + timedelta(hours=5), "PT95M0S"),
])
def test_session_duration(state: State, session: dict[str, str], now: datetime,
                          expected: str) -> None:
    assert session_metrics(order(state, session), now)["session-duration"] == expected


def test_no_start_no_duration() -> None:
    assert session_metrics(order(State.ACTIVE, {"kwh": "0"}), T0)["session-duration"] == ""
