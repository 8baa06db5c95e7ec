"""What a session has delivered: pure, no I/O.

While it charges, from the order's session snapshot (the Beckn `real-time-metrics`
in bridge.journey.wire and the driver pages both take the duration from
`session_duration`). Once a CDR was billed, from the CDR: the record the bill was
made on (its energy is the energy of the bill's lines), which may be newer than
the last session update (an offline charger reports late).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from bridge.ocpi.models import CDR
from bridge.orders import TERMINAL
from bridge.store.orders import Order

# OCPI SessionStatus values after which the session delivers nothing more.
FINISHED = frozenset({"COMPLETED", "INVALID"})


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo is not None else None


def session_over(order: Order) -> bool:
    """The session has ended: the CPO said so, or the order ended (e.g. on an outage)."""
    return order.session.get("status") in FINISHED or order.state in TERMINAL


def session_duration(order: Order, now: datetime) -> timedelta | None:
    """From the session's own start to its end; None without a start.

    Once the session is over the end is its `end` or else its last update, so the
    figure stays what was delivered however late it is read. While it goes on the
    end is `now`, but never before the CPO's last update: the CPO's clock may run
    ahead of ours (the mock's simulated time does), and the duration must not read
    less than the energy it reports was measured over.
    """
    s = order.session
    start = _when(s.get("start"))
    if start is None:
        return None
    end = _when(s.get("end"))
    last = _when(s.get("last_updated"))
    if end is None:
        if session_over(order):
            end = last
            if end is None:
                return None
        else:
            end = max(now, last) if last else now
    return max(end - start, timedelta(0))


def iso_minutes(d: timedelta) -> str:
    """`PT{minutes}M{seconds}S`, the form `session-duration` has always had."""
    secs = int(d.total_seconds())
    return f"PT{secs // 60}M{secs % 60}S"


@dataclass(frozen=True)
class Delivered:
    kwh: Decimal
    duration: timedelta | None
    source: str  # "cdr" (what was billed) or "session" (the last session update)


def delivered(order: Order, now: datetime, cdr: CDR | None = None) -> Delivered | None:
    """Energy and duration delivered: the billed CDR's when given (and the order's own),
    else the session snapshot's; None before any session."""
    if cdr is not None and cdr.id == order.cdr_id:
        return Delivered(Decimal(str(cdr.total_energy)),
                         max(cdr.end_date_time - cdr.start_date_time, timedelta(0)), "cdr")
    if not order.session:
        return None
    try:
        kwh = Decimal(str(order.session.get("kwh", "0")))
    except InvalidOperation:
        kwh = Decimal(0)
    return Delivered(kwh, session_duration(order, now), "session")
