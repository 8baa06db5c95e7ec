"""The order state machine: one table, no I/O.

One order per Beckn transaction. Every change of state is an `Event`; the
only allowed changes are the rows of `TRANSITIONS`. `transition()` answers the
new state or raises `TransitionError`, which carries the Beckn error code to
answer with (the request is refused and nothing changes).

    DRAFT -select-> QUOTED -init-> INITIALIZED -pay_started-> PAYMENT-PENDING
    QUOTED / INITIALIZED / PAYMENT-PENDING -confirm-> CONFIRMED (now) | RESERVED (future slot)
    CONFIRMED / RESERVED -session_active-> ACTIVE <-resumed- INTERRUPTED <-interrupted- ACTIVE
    ACTIVE / INTERRUPTED -completed-> COMPLETED
    CANCELLED, EXPIRED, FAILED from the states where they apply (see the table)

Which side-conditions must hold (payment made, OTP right, slot free) is the
action modules' business; this table says only what may follow what.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    DRAFT = "DRAFT"
    QUOTED = "QUOTED"
    INITIALIZED = "INITIALIZED"
    PAYMENT_PENDING = "PAYMENT-PENDING"
    CONFIRMED = "CONFIRMED"
    RESERVED = "RESERVED"
    ACTIVE = "ACTIVE"
    INTERRUPTED = "INTERRUPTED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    FAILED = "FAILED"


class Event(StrEnum):
    SELECT = "select"
    INIT = "init"
    PAY_STARTED = "pay_started"  # payment link opened / hold or mandate being set up
    PAID = "paid"  # payment captured or hold placed
    CONFIRM_NOW = "confirm_now"
    CONFIRM_RESERVED = "confirm_reserved"
    START = "start"  # update start-charging accepted, START_SESSION sent
    SESSION_ACTIVE = "session_active"
    INTERRUPTED = "interrupted"
    RESUMED = "resumed"
    STOP = "stop"  # update stop-charging / budget reached, STOP_SESSION sent
    COMPLETED = "completed"  # CDR settled, or a long outage ended it on the data so far
    CANCEL = "cancel"
    EXPIRE = "expire"  # quote / payment / no-show timers
    FAIL = "fail"  # the CPO refused or never answered the start


TERMINAL = frozenset({State.COMPLETED, State.CANCELLED, State.EXPIRED, State.FAILED})
PRE_CONFIRM = (State.QUOTED, State.INITIALIZED, State.PAYMENT_PENDING)

S = State
E = Event

# (from state, event) -> to state. The whole machine; nothing else decides.
TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.DRAFT, E.SELECT): S.QUOTED,
    (S.QUOTED, E.SELECT): S.QUOTED,  # a new quote replaces the old
    (S.INITIALIZED, E.SELECT): S.QUOTED,  # changing the order before paying
    (S.QUOTED, E.INIT): S.INITIALIZED,
    (S.INITIALIZED, E.INIT): S.INITIALIZED,  # billing details corrected
    (S.INITIALIZED, E.PAY_STARTED): S.PAYMENT_PENDING,
    (S.PAYMENT_PENDING, E.PAY_STARTED): S.PAYMENT_PENDING,
    (S.INITIALIZED, E.PAID): S.INITIALIZED,  # paid, waiting for confirm
    (S.PAYMENT_PENDING, E.PAID): S.INITIALIZED,
    (S.INITIALIZED, E.CONFIRM_NOW): S.CONFIRMED,
    (S.PAYMENT_PENDING, E.CONFIRM_NOW): S.CONFIRMED,  # postpaid / hold in progress
    (S.INITIALIZED, E.CONFIRM_RESERVED): S.RESERVED,
    (S.PAYMENT_PENDING, E.CONFIRM_RESERVED): S.RESERVED,
    (S.CONFIRMED, E.PAID): S.CONFIRMED,  # late payment event (postpaid, hold)
    (S.RESERVED, E.PAID): S.RESERVED,
    (S.ACTIVE, E.PAID): S.ACTIVE,
    (S.CONFIRMED, E.START): S.CONFIRMED,  # waiting for the CPO's session
    (S.RESERVED, E.START): S.RESERVED,
    (S.CONFIRMED, E.SESSION_ACTIVE): S.ACTIVE,
    (S.RESERVED, E.SESSION_ACTIVE): S.ACTIVE,
    (S.ACTIVE, E.SESSION_ACTIVE): S.ACTIVE,
    (S.INTERRUPTED, E.SESSION_ACTIVE): S.ACTIVE,
    (S.ACTIVE, E.INTERRUPTED): S.INTERRUPTED,
    (S.INTERRUPTED, E.INTERRUPTED): S.INTERRUPTED,
    (S.INTERRUPTED, E.RESUMED): S.ACTIVE,
    (S.ACTIVE, E.STOP): S.ACTIVE,  # waiting for the CPO's COMPLETED / CDR
    (S.INTERRUPTED, E.STOP): S.INTERRUPTED,
    (S.ACTIVE, E.COMPLETED): S.COMPLETED,
    (S.INTERRUPTED, E.COMPLETED): S.COMPLETED,
    (S.CONFIRMED, E.COMPLETED): S.COMPLETED,  # a CDR for a session we never saw ACTIVE
    (S.RESERVED, E.COMPLETED): S.COMPLETED,
    (S.DRAFT, E.CANCEL): S.CANCELLED,
    (S.QUOTED, E.CANCEL): S.CANCELLED,
    (S.INITIALIZED, E.CANCEL): S.CANCELLED,
    (S.PAYMENT_PENDING, E.CANCEL): S.CANCELLED,
    (S.CONFIRMED, E.CANCEL): S.CANCELLED,
    (S.RESERVED, E.CANCEL): S.CANCELLED,
    (S.QUOTED, E.EXPIRE): S.EXPIRED,
    (S.INITIALIZED, E.EXPIRE): S.EXPIRED,
    (S.PAYMENT_PENDING, E.EXPIRE): S.EXPIRED,
    (S.RESERVED, E.EXPIRE): S.EXPIRED,  # no-show after the grace period
    (S.CONFIRMED, E.EXPIRE): S.EXPIRED,  # walk-in that never plugged in
    (S.CONFIRMED, E.FAIL): S.FAILED,
    (S.RESERVED, E.FAIL): S.FAILED,
}


class TransitionError(Exception):
    """`event` is not allowed in `state`. `code` is the Beckn error code to answer."""

    def __init__(self, state: State, event: Event, code: str = "30016") -> None:
        super().__init__(f"order is {state.value}: {event.value} is not allowed now")
        self.state = state
        self.event = event
        self.code = code


def transition(state: State, event: Event) -> State:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise TransitionError(state, event) from None


def allowed_events(state: State) -> list[Event]:
    return [e for (s, e) in TRANSITIONS if s is state]
