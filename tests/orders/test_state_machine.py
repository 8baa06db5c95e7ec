"""The order state machine table: every allowed move, and refusals that change nothing."""

from __future__ import annotations

import pytest

from bridge.orders import (
    TERMINAL,
    TRANSITIONS,
    Event,
    State,
    TransitionError,
    allowed_events,
    transition,
)

S, E = State, Event


@pytest.mark.parametrize("path, end", [
    # reservation (use case 1)
    ([E.SELECT, E.INIT, E.PAY_STARTED, E.PAID, E.CONFIRM_RESERVED, E.START, E.SESSION_ACTIVE,
      E.STOP, E.COMPLETED], S.COMPLETED),
    # walk-in (use case 2), postpaid
    ([E.SELECT, E.INIT, E.CONFIRM_NOW, E.START, E.SESSION_ACTIVE, E.COMPLETED], S.COMPLETED),
    # power cut and recovery
    ([E.SELECT, E.INIT, E.PAID, E.CONFIRM_NOW, E.SESSION_ACTIVE, E.INTERRUPTED, E.RESUMED,
      E.INTERRUPTED, E.COMPLETED], S.COMPLETED),
    ([E.SELECT, E.INIT, E.PAID, E.CONFIRM_RESERVED, E.CANCEL], S.CANCELLED),
    ([E.SELECT, E.INIT, E.PAID, E.CONFIRM_RESERVED, E.EXPIRE], S.EXPIRED),
    ([E.SELECT, E.INIT, E.PAID, E.CONFIRM_NOW, E.START, E.FAIL], S.FAILED),
    ([E.SELECT, E.SELECT, E.INIT, E.SELECT, E.INIT, E.INIT], S.INITIALIZED),
])
def test_journeys(path: list[Event], end: State) -> None:
    state = S.DRAFT
    for event in path:
        state = transition(state, event)
    assert state is end


@pytest.mark.parametrize("state, event", [
    (S.DRAFT, E.INIT),
    (S.DRAFT, E.CONFIRM_NOW),
    (S.QUOTED, E.START),
    (S.INITIALIZED, E.START),
    (S.ACTIVE, E.CANCEL),  # charging: stop it, do not cancel
    (S.ACTIVE, E.SELECT),
    (S.COMPLETED, E.CANCEL),
    (S.CANCELLED, E.CONFIRM_NOW),
    (S.EXPIRED, E.START),
    (S.FAILED, E.SESSION_ACTIVE),
    (S.RESERVED, E.RESUMED),
])
def test_refused(state: State, event: Event) -> None:
    with pytest.raises(TransitionError) as info:
        transition(state, event)
    assert info.value.state is state and info.value.code
    assert state.value in str(info.value)


def test_terminal_states_have_no_way_out() -> None:
    for state in TERMINAL:
        assert allowed_events(state) == []


def test_every_state_is_reachable_from_draft() -> None:
    seen = {S.DRAFT}
    frontier = [S.DRAFT]
    while frontier:
        s = frontier.pop()
        for e in allowed_events(s):
            t = TRANSITIONS[(s, e)]
            if t not in seen:
                seen.add(t)
                frontier.append(t)
    assert seen == set(State)
