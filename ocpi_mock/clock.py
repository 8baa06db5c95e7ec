"""Simulated time. One `SimClock` is created at start-up and passed down;
nothing else calls `datetime.now()`.

Simulated time runs `speed` times faster than the wall clock, starting from
the real UTC time at creation (or a given epoch, for tests), so a 30-minute
charge takes 15 s at speed 120.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


class SimClock:
    def __init__(self, speed: float = 1.0, epoch: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._epoch = (epoch or datetime.now(UTC)).astimezone(UTC)
        self._mono0 = time.monotonic()

    def restart(self, epoch: datetime) -> None:
        """Make `epoch` the simulated time now (tests: at 7200x speed, a second of set-up
        would otherwise move a scenario's start by two hours)."""
        self._epoch = epoch.astimezone(UTC)
        self._mono0 = time.monotonic()

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._mono0) * self.speed
        # whole milliseconds: what OCPI DateTime carries on the wire
        ms = int(elapsed * 1000)
        return self._epoch + timedelta(milliseconds=ms)

    def real_seconds(self, sim_seconds: float) -> float:
        return max(0.0, sim_seconds / self.speed)

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(self.real_seconds(sim_seconds))

    async def sleep_until(self, when: datetime) -> None:
        await self.sleep((when - self.now()).total_seconds())
