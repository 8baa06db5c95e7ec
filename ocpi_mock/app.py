"""aiohttp application factory of the mock CPO."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from bridge.ocpi.transport import make_middleware
from ocpi_mock import admin, commands, ocpi_routes
from ocpi_mock.clock import SimClock
from ocpi_mock.config import MockConfig
from ocpi_mock.network import Network, load_network
from ocpi_mock.ocpi_routes import MOCK
from ocpi_mock.runtime import Mock


def _slow_mock(mock: Mock) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        if mock.faults.mock_delay and request.path.startswith("/ocpi"):
            await asyncio.sleep(mock.faults.mock_delay)  # fault: slow CPO platform
        return await handler(request)

    return middleware


def create_app(cfg: MockConfig, clock: SimClock | None = None,
               network: Network | None = None) -> web.Application:
    clock = clock or SimClock(cfg.speed, cfg.epoch)
    network = network or load_network(cfg.network, clock.now(), cfg.generate, cfg.seed)
    mock = Mock(cfg, clock, network)
    app = web.Application(middlewares=[
        _slow_mock(mock),
        make_middleware(ocpi_routes.make_authenticator(mock), mock.state.own_parties),
    ])
    app[MOCK] = mock
    ocpi_routes.add_routes(app)
    commands.add_routes(app)
    admin.add_routes(app)

    async def on_startup(_: web.Application) -> None:
        await mock.start()

    async def on_cleanup(_: web.Application) -> None:
        await mock.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
