"""Named crash points: where a fault-injection run kills the process (DESIGN principle 6).

Code that carries out an effect (moves money, sends a command, queues a callback
or an SMS) marks the instants between its steps with `crash_point("name")`.
Normally that costs one dictionary test and does nothing. When a point is armed,
reaching it ends the process there:

- `bridge serve` / `bridge worker` arm the point named by the setting
  `test_crash_point` (`BRIDGE_TEST_CRASH_POINT=name`, or `name@N` for the N-th
  time it is reached; several, comma-separated: the first reached fires, and the
  line it writes on stderr names it). The process sends itself SIGKILL at that line: nothing
  after it runs, no `finally`, no buffered write, exactly as `kill -9` would.
  The chaos suite (`tests/chaos/`) uses this, then restarts the process.
- Tests in one process call `arm(name)`: reaching the point raises `Crashed`, a
  `BaseException`, so no `except Exception` on the way swallows it, and the test
  then runs the same step again as a restarted process would.

`tracing()` records every point reached, so a test can run a step once to learn
its points and then crash at each of them in turn.

The names are listed in `POINTS` (and in docs/operations.md); `arm` refuses a
name that is not there, so a misspelt kill point cannot pass a test by never firing.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

POINTS: dict[str, str] = {
    "payments.before_apply": "a gateway operation checked, not yet applied",
    "payments.applied": "a gateway operation applied (with its idempotency key), not returned",
    "payments.link_created": "a payment link created (with its key), not returned",
    "settle.money_moved": "a settlement's refund/capture/release/link done, order not updated",
    "settle.recorded": "settlement, COMPLETED, callback and bill SMS written in one step",
    "release.money_moved": "cancel / no-show / failure refund done, order not updated",
    "command.uid_recorded": "an OCPI command's uid noted on the order, command not sent",
    "command.sent": "an OCPI command answered by the CPO, the answer not noted",
    "order.changed": "an order's change (and its outbox) written, nothing after it done",
    "callback.posted": "a callback delivered to the BAP, not marked delivered",
    "journey.event_handled": "an OCPI change handled by the journey consumer, not acknowledged",
    "beckn.checked": "a Beckn request found new (not a duplicate), its work not yet queued",
    "beckn.handled": "a Beckn request's work written, the ACK not sent",
    "ocpi.push_stored": "a CPO's push stored, the OCPI answer not sent",
}


class Crashed(BaseException):
    """Raised at an armed crash point in a test (stands for the process dying there)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"crash point {name}")
        self.name = name


_armed: dict[str, int] = {}  # name -> how many more times it is passed before it fires
_kill = False  # True in a real process: SIGKILL; False in tests: raise Crashed
_trace: list[str] | None = None
_not_before = 0.0  # time.monotonic() before which armed points are passed, not counted


def crash_point(name: str) -> None:
    if _trace is not None:
        _trace.append(name)
    if not _armed:
        return
    left = _armed.get(name)
    if left is None or (_not_before and time.monotonic() < _not_before):
        return
    if left > 1:
        _armed[name] = left - 1
        return
    del _armed[name]
    if _kill:
        os.write(2, f"crash point {name}: SIGKILL\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)
    raise Crashed(name)


def parse(spec: str) -> tuple[str, int]:
    """`name` or `name@N` -> (name, N); ValueError for an unknown name or a bad N."""
    name, _, nth = spec.strip().partition("@")
    if name not in POINTS:
        raise ValueError(f"unknown crash point {name!r}; known: {', '.join(sorted(POINTS))}")
    count = int(nth) if nth else 1
    if count < 1:
        raise ValueError(f"crash point {spec!r}: N must be at least 1")
    return name, count


def parse_all(specs: str) -> list[tuple[str, int]]:
    """A comma-separated list of `name` / `name@N`: the first one reached fires."""
    return [parse(spec) for spec in specs.split(",") if spec.strip()]


def arm(specs: str, *, kill: bool = False, after: float = 0.0) -> None:
    """Arm points (`name`, `name@N`, comma-separated); `kill=True` in a real process
    (SIGKILL at the first one reached; the line on stderr names it). `after`: only once
    the process has run that many seconds (a crash is not followed by another at once)."""
    global _kill, _not_before
    for name, count in parse_all(specs):
        _armed[name] = count
    _kill = kill
    _not_before = time.monotonic() + after if after else 0.0


def disarm() -> None:
    global _not_before
    _armed.clear()
    _not_before = 0.0


@contextmanager
def tracing() -> Iterator[list[str]]:
    """Record the crash points reached inside the block (in order, repeats kept)."""
    global _trace
    previous, _trace = _trace, []
    try:
        yield _trace
    finally:
        _trace = previous
