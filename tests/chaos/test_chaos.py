"""Fault injection with real processes (issue 12): after every fault, every journey
completes, every order's books and the gateway agree to the paisa, nothing is told
twice (callbacks, SMS), no command is sent twice, nothing is left in flight.

Each scenario runs a handful of concurrent journeys (walk-ins by kWh and by budget,
and bookings cancelled after confirm, which refund by the terms) on a fresh stack
(tests/chaos/stack.py) and injects its faults while they run:

- worker killed (SIGKILL, by itself) at each named crash point, restarted each time
- serve killed at each named crash point, restarted each time
- worker and serve killed at arbitrary moments
- Redis killed (SIGKILL) and stopped (SIGTERM), restarted from its AOF
- the BAP down for 150 s (time scaled by 0.1: 15 s, with the callback backoff scaled
  the same way), while orders charge and settle
- the CPO slow (answers after the bridge's time-out) and unreachable (SIGSTOP), and
  two sessions' PUT ACTIVE lost while their meter PATCHes arrive
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable

import pytest

from tests.chaos.conftest import record
from tests.chaos.stack import Audit, Journey, Stack, audit, sessions_at_cpo

KINDS = ("kwh", "budget", "cancel", "hold", "kwh", "budget")
# Seconds a scenario may take, faults and journeys (each takes 20-35 s, the tours 50-100 s,
# on a 2-core machine loaded 4-5 times over): six scenarios and their stacks stay under
# 12 minutes even when everything goes wrong, 5-7 when all is well.
BUDGET = 75.0
TOUR_BUDGET = 170.0  # the crash-point tours: up to 16 journeys, 9-14 kills
TOUR = [100.0, 20.0]  # of which the kills: every named point, then later instants


async def scenario(stack: Stack, name: str, faults: Callable[[list[Journey]], Awaitable[None]],
                   kinds: tuple[str, ...] = KINDS, spacing: float = 1.5,
                   keep_coming: int = 0, budget: float = BUDGET,
                   same_as_fault_free: bool = True) -> None:
    """Journeys of `kinds`, one every `spacing` s, while `faults` runs; with `keep_coming`,
    more (the kinds again) while the faults are still being injected, up to that many in
    all, so every stage of a journey meets the faults. Then the audit.

    The whole scenario (faults and journeys) has `budget` s, so the suite is bounded in
    time as in count: what is not done by then is stopped, the stack is brought back
    (every process up, unarmed) and the audit reports each unfinished journey at its
    step."""
    t0 = time.monotonic()
    journeys: list[Journey] = []
    tasks: list[asyncio.Task[None]] = []

    def spawn(kind: str) -> None:
        j = Journey(stack, kind, stack.charger(), f"+9197{len(journeys):02d}{int(t0) % 10**6:06d}")
        journeys.append(j)
        tasks.append(asyncio.create_task(j.play()))

    async def arrivals() -> None:
        for kind in kinds:
            spawn(kind)
            await asyncio.sleep(spacing)
        while len(journeys) < keep_coming and not injecting.done():
            spawn(kinds[len(journeys) % len(kinds)])
            await asyncio.sleep(spacing)

    injecting = asyncio.create_task(faults(journeys))
    coming = asyncio.create_task(arrivals())
    over = False
    try:
        async with asyncio.timeout(budget):
            await injecting
            await coming
            await asyncio.gather(*tasks)
    except TimeoutError:
        over = True
    finally:
        for t in (*tasks, coming, injecting):
            t.cancel()
        await asyncio.gather(*tasks, coming, injecting, return_exceptions=True)
    if over:
        await stack.revive()
    await stack.ready()
    await asyncio.sleep(2)  # settle the last writes (e.g. a top-up link's record)
    figures = Audit()
    problems = [f"over the scenario's budget of {budget:.0f} s"] if over else []
    problems += await audit(stack, journeys, figures, same_as_fault_free)
    problems += await sessions_at_cpo(stack, journeys)
    figures.problems = problems
    record(name, figures, time.monotonic() - t0, stack.faults)
    assert not problems, "\n".join(problems)


def rounds(points: list[str]) -> list[list[str]]:
    """Two rounds of a tour: the first instant listed of every named point (all must
    fire), then the later ones (`name@N`: its N-th pass in one process's life), tried
    in the time left: on a slow machine the journeys may not bring them about."""
    first: dict[str, str] = {}
    for p in points:
        first.setdefault(p.split("@")[0], p)
    return [list(first.values()), [p for p in points if p not in first.values()]]


# Points a tour arms but cannot always bring about. In the worker a payment link is made
# only for a top-up (init, and so the first link, is handled by serve, whose tour
# requires it): these journeys need one only when a kill has delayed their STOP past
# the overage provision, which a tour does some runs and not others (CI saw one without).
# The same `create_link` killed at that point is required in the serve tour and tested
# alone (tests/orders/test_payments.py::test_link_under_one_key_is_one_link).
BY_CHANCE = {"payments.link_created"}


def never_fired(points: list[str], missed: list[str], by_chance: frozenset[str] = frozenset()
                ) -> list[str]:
    """The named points that did not fire at all (every name must, but `by_chance`)."""
    left = list(missed)
    fired = set()
    for p in points:
        if p in left:
            left.remove(p)
        else:
            fired.add(p.split("@")[0])
    return sorted({p.split("@")[0] for p in points} - fired - by_chance)


async def when(journeys: list[Journey], step: str, n: int = 1, timeout: float = 120) -> None:
    """Until `n` journeys are at `step` or past it (or done)."""
    order = ["new", "select", "init", "pay", "confirm", "cancel", "start", "charging", "done"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for j in journeys if j.ok or j.error or
               order.index(j.step) >= order.index(step)) >= n:
            return
        await asyncio.sleep(0.1)


# Where a worker can die with work half done, all armed at once (the first reached
# fires, then the worker is restarted with the rest): a callback delivered but not
# marked, OCPI changes handled but not acknowledged, an order change, a START's uid noted
# / the CPO's answer not noted, a cancellation's money moved, a gateway operation checked
# / applied, a payment link made, a settlement's money moved / recorded.
WORKER_POINTS = [
    "callback.posted", "journey.event_handled", "order.changed", "command.uid_recorded",
    "command.sent", "payments.before_apply", "release.money_moved", "order.changed@3",
    "payments.applied", "settle.money_moved", "settle.recorded", "journey.event_handled@3",
    "payments.link_created", "settle.recorded@2",
]


async def test_worker_killed_at_every_crash_point(stack: Stack) -> None:
    async def faults(journeys: list[Journey]) -> None:
        missed = await stack.crash_tour(stack.worker, rounds(WORKER_POINTS), TOUR)
        assert not never_fired(WORKER_POINTS, missed, frozenset(BY_CHANCE)), \
            f"crash points never reached: {missed}"

    await scenario(stack, "worker kill -9 at crash points", faults, spacing=3, keep_coming=16,
                   budget=TOUR_BUDGET)


# serve: a request's duplicate check passed / its work written before the ACK, a payment
# link made, an order changed (with its answer), a CPO push stored before its answer.
SERVE_POINTS = [
    "beckn.checked", "beckn.handled", "payments.link_created", "order.changed",
    "beckn.handled@2", "ocpi.push_stored@3", "order.changed@3", "beckn.checked@2",
    "ocpi.push_stored@10",
]


async def test_serve_killed_at_every_crash_point(stack: Stack) -> None:
    async def faults(journeys: list[Journey]) -> None:
        missed = await stack.crash_tour(stack.serve, rounds(SERVE_POINTS), TOUR)
        assert not never_fired(SERVE_POINTS, missed), f"crash points never reached: {missed}"

    await scenario(stack, "serve kill -9 at crash points", faults, spacing=3, keep_coming=16,
                   budget=TOUR_BUDGET)


async def test_worker_and_serve_killed_at_any_moment(stack: Stack) -> None:
    async def faults(journeys: list[Journey]) -> None:
        for i in range(6):
            await asyncio.sleep(2.5)
            stack.kill9(stack.worker if i % 2 == 0 else stack.serve)

    await scenario(stack, "worker and serve kill -9 at arbitrary moments", faults)


async def test_redis_killed_and_restarted_from_its_aof(stack: Stack) -> None:
    server = stack.redis_server

    async def faults(journeys: list[Journey]) -> None:
        await when(journeys, "confirm", 2)
        assert server.proc is not None
        server.proc.kill()  # SIGKILL: what is acknowledged is in the AOF (page cache)
        server.proc.wait()
        stack.faults["Redis SIGKILL, down 2 s"] += 1
        await asyncio.sleep(2)
        server.start()
        await when(journeys, "charging", 3)
        server.stop()  # SIGTERM: Redis writes its AOF and exits
        stack.faults["Redis SIGTERM, down 2 s"] += 1
        await asyncio.sleep(2)
        server.start()
        await asyncio.sleep(6)
        server.restart()
        stack.faults["Redis SIGTERM, restarted at once"] += 1

    await scenario(stack, "Redis SIGKILL and SIGTERM with AOF", faults)
    assert stack.worker.starts == 1 and stack.serve.starts == 1  # they rode it out


async def test_bap_down_for_150_s_scaled(stack: Stack) -> None:
    """Time scaled by 0.1 (the stack's callback backoff is 0.1 s for 1 s): the BAP is down
    for 15 s while orders start, charge and settle; every on_update reaches it after."""
    async def faults(journeys: list[Journey]) -> None:
        await when(journeys, "start", 3)
        await stack.bap.go_down()
        stack.faults["BAP down 150 s (scaled: 15 s)"] += 1
        await asyncio.sleep(15)
        held_back = [j for j in journeys if not (j.ok or j.error)]
        await stack.bap.up()
        assert held_back, "no journey was waiting for the BAP: the outage tested nothing"

    await scenario(stack, "BAP down 150 s (scaled x0.1)", faults)


@pytest.mark.chaos_env(BRIDGE_JOURNEY_INTERRUPT_AFTER="6")  # its 10 s outage is told
async def test_cpo_slow_then_unreachable(stack: Stack) -> None:
    async def faults(journeys: list[Journey]) -> None:
        # two sessions' PUT ACTIVE lost (as while serve was down), their PATCHes not
        await stack.mock_call("POST", "/admin/faults/lost-active-push", {"count": 2})
        stack.faults["CPO's PUT ACTIVE lost (PATCHes arrive)"] += 2
        await when(journeys, "start", 1)
        # slower than the bridge's 2 s OCPI time-out: commands time out, are carried out
        # anyway, and are sent again with the same uid
        await stack.mock_call("POST", "/admin/faults/slow-mock", {"delay": 2.5})
        stack.faults["CPO slow (2.5 s answers, 2 s time-out) for 12 s"] += 1
        await asyncio.sleep(12)
        await stack.mock_call("POST", "/admin/faults/slow-mock", {"delay": 0})
        await when(journeys, "charging", 3)
        stack.mock.signal(signal.SIGSTOP)  # unreachable: connections hang, nothing pushed
        stack.faults["CPO unreachable (SIGSTOP) for 10 s"] += 1
        await asyncio.sleep(10)
        stack.mock.signal(signal.SIGCONT)

    # the driver is told of the interruption and the resumption: not a run without faults
    await scenario(stack, "CPO slow, then unreachable", faults, same_as_fault_free=False)


pytestmark = pytest.mark.chaos
