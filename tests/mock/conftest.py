"""Fixtures of the mock CPO tests: the mock and the eMSP double, both real
aiohttp servers on 127.0.0.1, simulated time fast enough that a session takes
well under a second."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from bridge.ocpi.client import OcpiClient
from ocpi_mock.app import create_app
from ocpi_mock.config import MockConfig
from ocpi_mock.ocpi_routes import MOCK
from ocpi_mock.runtime import Mock
from tests.conftest import ROOT, free_port
from tests.mock.emsp_double import EmspDouble

FAST = MockConfig(network=ROOT / "config" / "networks" / "india.toml", speed=3600,
                  tick_seconds=180, push_attempts=3, push_backoff=0.02, push_timeout=5,
                  command_timeout=1, start_delay_seconds=30, park_after_full_seconds=360)


@dataclass
class MockServer:
    url: str
    mock: Mock
    http: aiohttp.ClientSession

    async def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(method, f"{self.url}{path}",
                                     data=orjson.dumps(body) if body is not None else None
                                     ) as resp:
            return resp.status, await resp.json()

    def ocpi(self, token: str) -> OcpiClient:
        return OcpiClient(self.http, token, timeout=5)


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture
async def emsp() -> AsyncIterator[EmspDouble]:
    double = EmspDouble()
    port = free_port()
    double.base_url = f"http://127.0.0.1:{port}"
    runner = await _serve(double.app(), port)
    yield double
    await runner.cleanup()


@pytest.fixture
def mock_config() -> MockConfig:
    port = free_port()
    return replace(FAST, port=port, public_url=f"http://127.0.0.1:{port}")


@pytest.fixture
async def cpo(mock_config: MockConfig) -> AsyncIterator[MockServer]:
    app = create_app(mock_config)
    runner = await _serve(app, mock_config.port)
    async with aiohttp.ClientSession() as http:
        yield MockServer(mock_config.base_url, app[MOCK], http)
    await runner.cleanup()


@pytest.fixture
async def connected(cpo: MockServer, emsp: EmspDouble) -> MockServer:
    status, data = await cpo.admin("POST", "/admin/connect",
                                   {"versions_url": emsp.versions_url(), "token": emsp.token_a})
    assert status == 200, data
    return cpo
