"""The driver pages served by a real bridge app (aiohttp on 127.0.0.1, a real Redis).

`site` serves orders written to Redis as the journey writes them; the end-to-end
browser tests are in tests/journey/test_driver_pages.py (the journey harness).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from bridge.beckn import signing
from bridge.config import Settings
from bridge.payments import SandboxGateway
from bridge.store.orders import Order, OrderStore
from tests.conftest import ROOT


@dataclass
class Site:
    url: str
    http: aiohttp.ClientSession
    redis: aioredis.Redis
    gateway: SandboxGateway

    async def store(self, order: Order) -> Order:
        assert await OrderStore(self.redis).create(order)
        return order

    async def link(self, order_id: str, amount: str, mode: str = "PREPAID",
                   key: str = "k") -> str:
        return (await self.gateway.create_link(order_id, Decimal(amount), "INR", mode,
                                               key=key)).payment_id

    async def order(self, txn: str) -> Order:
        o = await OrderStore(self.redis).get(txn)
        assert o is not None
        return o


@pytest.fixture
async def site(redis_url: str, tmp_path: Path) -> AsyncIterator[Site]:
    from bridge.app import build_app
    from bridge.extensions import app_extensions

    key_path = tmp_path / "bridge.key"
    key_path.write_bytes(signing.private_key_pem(signing.generate_private_key()))
    settings = Settings(redis_url=redis_url, public_url="http://127.0.0.1:9",
                        beckn_subscriber_id="bpp.pages.test", beckn_key_id="k1",
                        beckn_private_key=str(key_path),
                        journey_pricing_policy=str(ROOT / "config" / "pricing.toml"))
    server = TestServer(build_app(settings, extensions=app_extensions()), host="127.0.0.1")
    await server.start_server()
    redis = aioredis.Redis.from_url(redis_url)
    async with aiohttp.ClientSession() as http:
        yield Site(str(server.make_url("")).rstrip("/"), http, redis,
                   SandboxGateway(redis, settings.public_url))
    await redis.aclose()
    await server.close()
