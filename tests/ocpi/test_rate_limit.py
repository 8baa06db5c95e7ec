"""Each CPO platform has a request budget (a Redis token bucket shared by every serve
process): over it, HTTP 429 with the OCPI envelope and Retry-After, and nothing written."""

from __future__ import annotations

import aiohttp
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from bridge.app import build_app
from tests.conftest import free_port
from tests.ocpi.conftest import Bridge, Ocpi, location, make_settings, register_cpo
from tests.ocpi.cpo_double import CpoDouble


async def test_over_the_budget_is_429_and_changes_nothing(redis_url: str, cpo_double: CpoDouble,
                                                         http: aiohttp.ClientSession) -> None:
    port = free_port()
    settings = make_settings(redis_url, port).replace(ocpi_rate_limit="4/s burst 4")
    redis = aioredis.Redis.from_url(redis_url)
    server = TestServer(build_app(settings, redis=aioredis.Redis.from_url(redis_url)),
                        host="127.0.0.1", port=port)
    await server.start_server()
    try:
        bridge = Bridge(url=settings.public_url, settings=settings, server=server, redis=redis)
        cpo: Ocpi = await register_cpo(bridge, cpo_double, http)  # its own token, its own bucket
        answers = [await cpo.call("PUT", f"/ocpi/2.2.1/locations/IN/TPC/L{i}", location(f"L{i}"))
                   for i in range(6)]
        statuses = [status for status, _, _ in answers]
        assert statuses.count(429) >= 1 and statuses[0] in (200, 201)
        status, body, headers = next(a for a in answers if a[0] == 429)
        assert body["status_code"] == 2000 and "too many requests" in body["status_message"]
        assert int(headers["Retry-After"]) >= 1
        refused = [i for i, (s, _, _) in enumerate(answers) if s == 429]
        for i in refused:
            assert not await redis.exists(f"obb:ocpi:locations:IN:TPC:l{i}")
    finally:
        await server.close()
        await redis.aclose()


async def test_a_body_that_trickles_is_408_in_the_envelope(redis_url: str, cpo_double: CpoDouble,
                                                           http: aiohttp.ClientSession) -> None:
    import asyncio
    import base64

    import orjson

    port = free_port()
    settings = make_settings(redis_url, port).replace(body_timeout=1.0)
    redis = aioredis.Redis.from_url(redis_url)
    server = TestServer(build_app(settings, redis=aioredis.Redis.from_url(redis_url)),
                        host="127.0.0.1", port=port)
    await server.start_server()
    try:
        bridge = Bridge(url=settings.public_url, settings=settings, server=server, redis=redis)
        cpo: Ocpi = await register_cpo(bridge, cpo_double, http)
        body = orjson.dumps(location("L1"))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        auth = base64.b64encode(cpo.token.encode()).decode()  # type: ignore[union-attr]
        writer.write(f"PUT /ocpi/2.2.1/locations/IN/TPC/L1 HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Token {auth}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        length = 0
        while (line := await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        payload = await asyncio.wait_for(reader.readexactly(length), 5)
        writer.close()
        assert status_line.split()[1] == b"408"
        assert orjson.loads(payload)["status_code"] == 2001
        assert not await redis.exists("obb:ocpi:locations:IN:TPC:l1")
    finally:
        await server.close()
        await redis.aclose()
