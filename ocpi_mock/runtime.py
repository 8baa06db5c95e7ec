"""The running mock: config, clock, state, faults, HTTP client and background
tasks in one object, created by the app factory and handed to handlers."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import aiohttp
import structlog

from ocpi_mock.clock import SimClock
from ocpi_mock.config import MockConfig
from ocpi_mock.faults import Faults
from ocpi_mock.network import Network
from ocpi_mock.pusher import Pusher
from ocpi_mock.state import State

log = structlog.get_logger("ocpi_mock")


class Mock:
    def __init__(self, cfg: MockConfig, clock: SimClock, network: Network) -> None:
        self.cfg = cfg
        self.clock = clock
        self.state = State.from_network(network)
        self.faults = Faults()
        self.http: aiohttp.ClientSession | None = None
        self.pusher: Pusher | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.live: dict[str, Any] = {}  # session id -> simulator.LiveSession
        self.cuts: dict[str, str] = {}  # location id -> outcome of its power cut (resume|end)
        self.expiry_tasks: dict[str, asyncio.Task[Any]] = {}  # reservation id -> timer
        self.next_car: Any = None  # admin: the car of the next command-started session

    async def start(self) -> None:
        self.http = aiohttp.ClientSession()
        self.pusher = Pusher(self.http, self.cfg, self.state, self.faults)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.close()

    @property
    def push(self) -> Pusher:
        assert self.pusher is not None, "mock not started"
        return self.pusher

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """A background task that is tracked (cancelled at shutdown) and logs its failure."""
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self.tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("task.failed", task=name, error=repr(t.exception()))

        task.add_done_callback(done)
        return task

    @property
    def versions_url(self) -> str:
        return f"{self.cfg.base_url}/ocpi/versions"

    async def push_network(self, concurrency: int = 16) -> dict[str, int]:
        """PUT every tariff, then every location (with EVSEs and connectors).
        Tariffs first, so an eMSP that checks connector tariff_ids finds them."""
        sem = asyncio.Semaphore(concurrency)

        async def one(coro: Coroutine[Any, Any, None]) -> None:
            async with sem:
                await coro

        tariffs = list(self.state.tariffs.values())
        locations = list(self.state.locations.values())
        await asyncio.gather(*(one(self.push.put_tariff(t)) for t in tariffs))
        await asyncio.gather(*(one(self.push.put_location(loc)) for loc in locations))
        log.info("network.pushed", tariffs=len(tariffs), locations=len(locations))
        return {"tariffs": len(tariffs), "locations": len(locations)}
