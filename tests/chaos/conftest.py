"""The fault-injection suite (`make test-chaos`; not part of `make test`).

Marked `chaos` and deselected by default (pyproject addopts `-m "not chaos"`); `make
test-chaos` runs `pytest -m chaos tests/chaos`. At the end it prints the figures (faults
injected, journeys, money checked) and writes them to var/chaos-figures.json.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.stack import Audit, Stack, start_stack, stop_stack
from tests.conftest import ROOT

FIGURES: dict[str, Any] = {"scenarios": {}, "faults": defaultdict(int), "started": time.time()}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/chaos/" in item.nodeid:
            item.add_marker(pytest.mark.chaos)


# CHAOS_LOG_LEVEL=debug: serve and worker log every change they handle, and the logs in
# var/chaos-logs/ are kept whole (to follow one order through a failed run).
LOG_LEVEL = os.environ.get("CHAOS_LOG_LEVEL", "info")


@pytest.fixture
async def stack(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    marker = request.node.get_closest_marker("chaos_env")  # a scenario's own settings
    s = await _start(tmp_path, **(marker.kwargs if marker else {}))
    try:
        yield s
    except BaseException:
        raise
    finally:
        for name, n in s.faults.items():
            FIGURES["faults"][name] += n
        await stop_stack(s)
        keep_logs(s.tmp, tmp_path.name)


async def _start(tmp_path: Path, tries: int = 3, **env: str) -> Stack:
    """A fresh stack; started again (new ports, new directory) when it fails to come up:
    on a machine shared with other test runs a port picked free can be taken before a
    process binds it. The failed try's logs are kept like a scenario's."""
    for n in range(1, tries + 1):
        where = tmp_path / f"stack{n}"
        where.mkdir()
        try:
            return await start_stack(where, **{"BRIDGE_LOG_LEVEL": LOG_LEVEL, **env})
        except (AssertionError, OSError, RuntimeError):
            keep_logs(where, f"{tmp_path.name}-failed-start{n}")
            if n == tries:
                raise
    raise AssertionError("unreachable")


def keep_logs(tmp_path: Path, name: str | None = None) -> None:
    """The processes' logs of a scenario, kept in var/chaos-logs/ (the last 400 KB each)."""
    logs = ROOT / "var" / "chaos-logs" / (name or tmp_path.parent.name)
    logs.mkdir(parents=True, exist_ok=True)
    for f in tmp_path.glob("*.log"):
        (logs / f.name).write_bytes(f.read_bytes()[-400_000 if LOG_LEVEL == "info" else 0:])


def record(name: str, figures: Audit, seconds: float, faults: dict[str, int]) -> None:
    FIGURES["scenarios"][name] = {
        "journeys": figures.journeys, "completed": figures.completed,
        "money_checked_inr": str(figures.money_checked), "callbacks": figures.callbacks,
        "messages": figures.messages, "commands": figures.commands,
        "start_retries": figures.start_retries,
        "faults": dict(faults), "seconds": round(seconds, 1), "problems": figures.problems,
        "told": {k: dict(v) for k, v in figures.told.items()}}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    scenarios = FIGURES["scenarios"]
    if not scenarios:
        return
    faults = sum(sum(s["faults"].values()) for s in scenarios.values())
    journeys = sum(s["journeys"] for s in scenarios.values())
    completed = sum(s["completed"] for s in scenarios.values())
    money = sum(float(s["money_checked_inr"]) for s in scenarios.values())
    w = terminalreporter.write_line
    w("")
    w(f"chaos: {len(scenarios)} scenarios, {faults} faults injected, {completed}/{journeys} "
      f"journeys complete and audited, ₹{money:,.2f} checked against the gateway to the paisa")
    for name, s in scenarios.items():
        kinds = ", ".join(f"{k} ×{n}" for k, n in sorted(s["faults"].items()))
        w(f"  {name}: {s['completed']}/{s['journeys']} journeys, {s['seconds']} s; {kinds}; "
          f"callbacks {s['callbacks']}, SMS {s['messages']}, commands {s['commands']}; "
          f"problems {len(s['problems'])}")
    out = ROOT / "var" / "chaos-figures.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"scenarios": scenarios, "faults_injected": faults,
                               "journeys": journeys, "completed": completed,
                               "money_checked_inr": round(money, 2),
                               "seconds": round(time.time() - FIGURES["started"], 1)},
                              indent=2))
