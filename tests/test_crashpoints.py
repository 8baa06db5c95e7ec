"""Crash points (bridge/crashpoints.py): armed by name, fire once at the N-th pass."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bridge import crashpoints
from bridge.config import ConfigError, load_settings


def test_fires_at_the_nth_pass_then_never() -> None:
    crashpoints.arm("settle.money_moved@2")
    try:
        crashpoints.crash_point("settle.money_moved")
        crashpoints.crash_point("payments.applied")
        with pytest.raises(crashpoints.Crashed, match=r"settle\.money_moved"):
            crashpoints.crash_point("settle.money_moved")
        crashpoints.crash_point("settle.money_moved")  # fired once: disarmed
    finally:
        crashpoints.disarm()


def test_tracing_records_the_points_reached() -> None:
    with crashpoints.tracing() as seen:
        crashpoints.crash_point("command.sent")
        crashpoints.crash_point("order.changed")
    assert seen == ["command.sent", "order.changed"]


@pytest.mark.parametrize("spec", ["no.such.point", "settle.money_moved@0", "settle.money_moved@x"])
def test_unknown_or_bad_point_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"crash point|invalid literal"):
        load_settings({"BRIDGE_TEST_CRASH_POINT": spec}, path="/dev/null")


def test_armed_process_dies_by_sigkill_at_the_point() -> None:
    code = ("from bridge import crashpoints\n"
            "crashpoints.arm('command.sent', kill=True)\n"
            "print('before', flush=True)\n"
            "crashpoints.crash_point('command.sent')\n"
            "print('after', flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == -9
    assert proc.stdout == "before\n"
    assert "crash point command.sent: SIGKILL" in proc.stderr


def test_every_named_point_is_in_the_code() -> None:
    from pathlib import Path

    source = "\n".join(p.read_text() for p in Path(crashpoints.__file__).parent.rglob("*.py"))
    missing = [name for name in crashpoints.POINTS if f'crash_point("{name}")' not in source]
    assert missing == []


def test_several_points_the_first_reached_fires() -> None:
    crashpoints.arm("settle.recorded, command.sent@2")
    try:
        crashpoints.crash_point("command.sent")
        with pytest.raises(crashpoints.Crashed, match=r"command\.sent"):
            crashpoints.crash_point("command.sent")
    finally:
        crashpoints.disarm()


def test_armed_only_after_some_uptime() -> None:
    crashpoints.arm("command.sent", after=0.2)
    try:
        crashpoints.crash_point("command.sent")  # too early: passed, not counted
        import time

        time.sleep(0.25)
        with pytest.raises(crashpoints.Crashed):
            crashpoints.crash_point("command.sent")
    finally:
        crashpoints.disarm()
